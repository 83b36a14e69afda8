"""Truncation and noise panel: psi, the truncation cutoff, the noise mode and the seed of random noise."""

from imgui_bundle import imgui

from gui_utils import imgui_utils
from viz.widget import Widget

NOISE_MODES = ['const', 'random', 'none']


class TruncNoiseWidget(Widget):
    panel_name = 'trunc'
    title = 'Truncation & noise'
    script_fields = {'psi': float, 'use_cutoff': bool, 'cutoff': int, 'noise_mode': str, 'noise_seed': int}

    def __init__(self, viz):
        super().__init__(viz)
        self.psi = 1.0
        self.use_cutoff = False
        self.cutoff = 0
        self.noise_mode = 'const'
        self.noise_seed = 0

    def draw(self):
        network = self.viz.network
        num_ws = network.num_ws if network is not None else 0
        with imgui_utils.item_width(imgui.get_font_size() * 10):
            self.psi = imgui_utils.slider_float('Psi', self.psi, -1, 2, '%.2f')
        imgui_utils.tooltip('Pulls w towards the average w: 1 = none, 0 = the average image, < 0 = the opposite.')
        _, self.use_cutoff = imgui.checkbox('Cutoff', self.use_cutoff)
        imgui.same_line()
        with imgui_utils.disabled(not self.use_cutoff or network is None), imgui_utils.item_width(imgui.get_font_size() * 8):
            _, self.cutoff = imgui.slider_int('ws truncated', self.cutoff, 0, num_ws)
        imgui_utils.tooltip('Truncate only the first ws (the coarse layers).')

        has_noise = network is not None and network.has_noise
        with imgui_utils.disabled(not has_noise), imgui_utils.item_width(imgui.get_font_size() * 8):
            _, self.noise_mode = imgui_utils.combo('Noise', self.noise_mode, NOISE_MODES)
            with imgui_utils.disabled(self.noise_mode != 'random'):
                _, self.noise_seed = imgui_utils.number_input('Noise seed', self.noise_seed, int, 0, 2 ** 63 - 1)
        if network is not None and not has_noise:
            imgui_utils.dim_text('This network has no noise inputs.')

    def request_fields(self):
        return dict(psi=self.psi, cutoff=self.cutoff if self.use_cutoff else None, noise_mode=self.noise_mode,
                    noise_seed=self.noise_seed)
