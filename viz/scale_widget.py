"""Scale panel, for CREPS networks only: render at a multiple of the trained resolution."""

from imgui_bundle import imgui

from gui_utils import imgui_utils
from viz.widget import Widget


class ScaleWidget(Widget):
    panel_name = 'scale'
    title = 'Rendering scale (CREPS)'
    script_fields = {'scale': float}

    def __init__(self, viz):
        super().__init__(viz)
        self.scale = 1.0

    @property
    def visible(self):
        network = self.viz.network
        return network is not None and network.is_creps

    def draw(self):
        network = self.viz.network
        with imgui_utils.item_width(imgui.get_font_size() * 10):
            self.scale = imgui_utils.slider_float('Scale', self.scale, 0.125, 8, '%.3fx', imgui.SliderFlags_.logarithmic)
        for preset in (0.5, 1.0, 2.0, 4.0):
            if imgui.button(f'{preset:g}x'):
                self.scale = preset
            imgui.same_line()
        imgui.new_line()
        size = int(network.img_resolution * self.scale)
        imgui_utils.dim_text(f'{size} x {size} pixels (trained at {network.img_resolution})')

    def request_fields(self):
        network = self.viz.current_network  # A scale is an error on other networks, and on a new pickle until known.
        return dict(scale=self.scale) if network is not None and network.is_creps else {}
