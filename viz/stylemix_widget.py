"""Style mixing panel: the ws of a range of layers come from a second seed."""

from imgui_bundle import imgui

import gen_images
from gui_utils import imgui_utils
from viz.widget import Widget


class StyleMixWidget(Widget):
    panel_name = 'mix'
    title = 'Style mixing'
    script_fields = {'enabled': bool, 'seed': int, 'start': int, 'end': int}
    default_open = False

    def __init__(self, viz):
        super().__init__(viz)
        self.enabled = False
        self.seed = 1
        self.start = -1         # -1 until a network is known: then the fine half of its layers.
        self.end = -1

    def update(self, dt):
        network = self.viz.network
        if network is not None and self.start < 0:
            self.start, self.end = network.num_ws // 2, network.num_ws

    def draw(self):
        network = self.viz.network
        num_ws = network.num_ws if network is not None else 0
        _, self.enabled = imgui.checkbox('Mix styles', self.enabled)
        with imgui_utils.disabled(not self.enabled or network is None):
            with imgui_utils.item_width(imgui.get_font_size() * 8):
                _, self.seed = imgui_utils.number_input('Mix seed', self.seed, int, 0, gen_images.MAX_SEED)
                _, start, end = imgui.drag_int_range2('Layers', max(self.start, 0), max(self.end, 0), 0.05, 0, num_ws,
                                                      'from %d', 'to %d')
                self.start, self.end = min(start, end), max(start, end)
        imgui_utils.tooltip('The ws [from, to) come from the mix seed: low indices set the coarse structure, '
                            'high ones the fine detail and colour.')
        if network is not None:
            imgui_utils.dim_text(f'{network.num_ws} ws in this network')

    def request_fields(self):
        if not self.enabled or self.start < 0:
            return {}
        return dict(mix_seed=self.seed, mix_range=(self.start, self.end))
