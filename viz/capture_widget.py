"""Capture panel: save the shown image (at its own resolution) or the whole window as PNG."""

import os
import re

from imgui_bundle import imgui

from gui_utils import imgui_utils
from viz.widget import Widget


def next_capture_path(directory, kind):
    """DIR/NNNNN-KIND.png, numbered one past the highest number already in DIR."""
    numbers = [int(m.group(1)) for name in (os.listdir(directory) if os.path.isdir(directory) else [])
               for m in [re.match(r'(\d+)-', name)] if m]
    return os.path.join(directory, f'{max(numbers, default=-1) + 1:05d}-{kind}.png')


class CaptureWidget(Widget):
    panel_name = 'capture'
    title = 'Capture'
    script_fields = {'directory': str}
    default_open = False

    def __init__(self, viz, directory):
        super().__init__(viz)
        self.directory = directory
        self.message = ''

    def draw(self):
        with imgui_utils.item_width(-imgui.get_font_size() * 4):
            _, self.directory = imgui.input_text('Folder', self.directory)
        has_image = self.viz.shown_result is not None and self.viz.shown_result.image is not None
        if imgui_utils.button('Save image', enabled=has_image):
            self._save(lambda path: self.viz.save_image(path), 'image')
        imgui_utils.tooltip('The shown image (or layer, or spectrum) at its own resolution.')
        imgui.same_line()
        if imgui.button('Save window'):
            self.viz.after_render(lambda: self._save(lambda path: self.viz.save_window(path), 'window'))
        if self.message:
            imgui_utils.dim_text(self.message)

    def _save(self, save, kind):
        try:
            path = next_capture_path(self.directory, kind)
            save(path)
            self.message = f'Saved {path}'
        except (OSError, ValueError) as e:
            self.message = f'Could not save: {e}'
