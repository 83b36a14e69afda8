"""Equivariance panel: translate and rotate the StyleGAN3 input (so its output moves), animate both,
and optionally transform the output back to see what is not equivariant."""

from imgui_bundle import imgui

from gui_utils import imgui_utils
from viz.widget import Widget


class EquivarianceWidget(Widget):
    panel_name = 'eq'
    title = 'Equivariance'
    script_fields = {'translate_x': float, 'translate_y': float, 'rotate': float, 'animate_translate': bool,
                     'translate_speed': float, 'animate_rotate': bool, 'rotate_speed': float, 'untransform': bool}
    default_open = False

    def __init__(self, viz):
        super().__init__(viz)
        self.translate_x = 0.0      # In image widths.
        self.translate_y = 0.0
        self.rotate = 0.0           # Degrees.
        self.animate_translate = False
        self.translate_speed = 0.1  # Image widths per second, along x.
        self.animate_rotate = False
        self.rotate_speed = 10.0    # Degrees per second.
        self.untransform = False

    @property
    def usable(self):
        network = self.viz.network
        return network is not None and network.has_input_transform

    def update(self, dt):
        if not self.usable:
            return
        if self.animate_translate:
            self.translate_x += self.translate_speed * dt
        if self.animate_rotate:
            self.rotate = (self.rotate + self.rotate_speed * dt + 180) % 360 - 180

    def draw(self):
        if self.viz.network is not None and not self.usable:
            imgui_utils.dim_text('Needs a network with an input transform (StyleGAN3).')
        font_size = imgui.get_font_size()
        with imgui_utils.disabled(not self.usable):
            with imgui_utils.item_width(font_size * 10):
                self.translate_x, self.translate_y = imgui_utils.drag_float2(
                    'Translate', (self.translate_x, self.translate_y), 0.002, -10, 10, '%.3f')
                self.rotate = imgui_utils.slider_float('Rotate', self.rotate, -180, 180, '%.1f deg')
            _, self.animate_translate = imgui.checkbox('Animate translation', self.animate_translate)
            imgui.same_line()
            with imgui_utils.item_width(font_size * 5):
                self.translate_speed = imgui_utils.slider_float('##tspeed', self.translate_speed, -1, 1, '%.2f /s')
            _, self.animate_rotate = imgui.checkbox('Animate rotation', self.animate_rotate)
            imgui.same_line()
            with imgui_utils.item_width(font_size * 5):
                self.rotate_speed = imgui_utils.slider_float('##rspeed', self.rotate_speed, -90, 90, '%.0f deg/s')
            _, self.untransform = imgui.checkbox('Untransform the output', self.untransform)
            imgui_utils.tooltip('Moves the output back: an equivariant network then shows a still image.')
            imgui.same_line()
            if imgui.button('Reset'):
                self.translate_x = self.translate_y = self.rotate = 0.0
                self.animate_translate = self.animate_rotate = False

    def request_fields(self):
        network = self.viz.current_network
        if network is None or not network.has_input_transform:
            return {}  # A transform is an error on other networks (and on a new pickle, until it is known).
        return dict(translate=(self.translate_x, self.translate_y), rotate=self.rotate, untransform=self.untransform)
