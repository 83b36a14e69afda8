"""Latent panel: the seed (fractional seeds blend their neighbours), dragging the image moves through
seeds, animation, the class of conditional networks and the prompt of text-to-image networks."""

import numpy as np
from imgui_bundle import imgui

import gen_images
from gui_utils import imgui_utils
from viz.widget import Widget

SEEDS_PER_PIXEL = 0.01  # Dragging the image by 100 pixels moves one seed.


class LatentWidget(Widget):
    panel_name = 'latent'
    title = 'Latent'
    script_fields = {'seed': float, 'animate': bool, 'speed': float, 'class_idx': int, 'prompt': str}

    def __init__(self, viz):
        super().__init__(viz)
        self.seed = 0.0
        self.animate = False
        self.speed = 0.25       # Seeds per second while animating.
        self.class_idx = 0
        self.prompt = ''        # Kept across networks, so that text-to-image networks can be compared on one prompt.

    def set_seed(self, seed):
        self.seed = float(np.clip(seed, 0, gen_images.MAX_SEED))

    def drag(self, dx, _dy):
        """Moves the seed with a mouse drag across the image view (dx pixels to the right)."""
        self.set_seed(self.seed + dx * SEEDS_PER_PIXEL)

    def update(self, dt):
        if self.animate:
            seed = self.seed + self.speed * dt
            self.set_seed(seed if seed <= gen_images.MAX_SEED else 0)

    def draw(self):
        with imgui_utils.item_width(imgui.get_font_size() * 8):
            changed, seed = imgui_utils.number_input('##seed', self.seed, float, 0, gen_images.MAX_SEED)
            if changed:
                self.set_seed(seed)
        imgui_utils.tooltip('Fractional seeds blend the two neighbouring seeds in W. Dragging the image left '
                            'or right moves the seed too.')
        imgui.same_line()
        if imgui.button('-##seed'):
            self.set_seed(np.ceil(self.seed) - 1)
        imgui.same_line()
        if imgui.button('+##seed'):
            self.set_seed(np.floor(self.seed) + 1)
        imgui.same_line()
        if imgui_utils.button('Snap', enabled=self.seed != np.round(self.seed)):
            self.set_seed(np.round(self.seed))
        imgui.same_line()
        imgui.text('Seed')

        _, self.animate = imgui.checkbox('Animate', self.animate)
        imgui.same_line()
        with imgui_utils.item_width(imgui.get_font_size() * 8):
            self.speed = imgui_utils.slider_float('Seeds/s', self.speed, -5, 5, '%.2f', imgui.SliderFlags_.logarithmic)

        network = self.viz.network
        if network is not None and network.has_text_encoder:
            self.draw_prompt()
        elif network is not None and network.c_dim > 0:
            with imgui_utils.item_width(imgui.get_font_size() * 8):
                _, self.class_idx = imgui.input_int(f'Class (0..{network.c_dim - 1})', self.class_idx)

    def draw_prompt(self):
        with imgui_utils.item_width(-imgui.get_font_size() * 4):
            _, self.prompt = imgui.input_text_with_hint('Prompt', 'describe the image', self.prompt)
        imgui_utils.tooltip('The text this network draws; the image follows as you type.')

    def request_fields(self):
        fields = dict(seed=self.seed, class_idx=self.class_idx)
        if self.prompt:  # Empty is the request's default; other networks ignore the prompt.
            fields['prompt'] = self.prompt
        return fields
