"""Pickle panel: load a network pickle by path or URL, from the recent list, or by browsing a folder."""

import os

from imgui_bundle import imgui

from gui_utils import imgui_utils
from viz.widget import Widget

MAX_RECENT = 12

# The pretrained networks NVIDIA publishes on NGC, offered in the Recent list as the official visualizer does.
_NGC = 'https://api.ngc.nvidia.com/v2/models/nvidia/research'
PRETRAINED = [f'{_NGC}/stylegan3/versions/1/files/stylegan3-{cfg}-{data}.pkl' for cfg in ('r', 't') for data in (
    'afhqv2-512x512', 'ffhq-1024x1024', 'ffhqu-1024x1024', 'ffhqu-256x256', 'metfaces-1024x1024',
    'metfacesu-1024x1024')] + [f'{_NGC}/stylegan2/versions/1/files/stylegan2-{data}.pkl' for data in (
    'afhqcat-512x512', 'afhqdog-512x512', 'afhqv2-512x512', 'afhqwild-512x512', 'brecahad-512x512',
    'celebahq-256x256', 'cifar10-32x32', 'ffhq-1024x1024', 'ffhq-256x256', 'ffhq-512x512', 'ffhqu-1024x1024',
    'ffhqu-256x256', 'lsundog-256x256', 'metfaces-1024x1024', 'metfacesu-1024x1024')]


def add_recent(recent, pkl):
    """The recent list with `pkl` first, without duplicates, at most MAX_RECENT long."""
    return ([pkl] + [p for p in recent if p != pkl])[:MAX_RECENT]


def list_folder(directory):
    """(sub-folders, network pickles) of `directory`, sorted by name; hidden entries left out."""
    folders, pickles = [], []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name.lower()):
        if entry.name.startswith('.'):
            continue
        if entry.is_dir():
            folders.append(entry.name)
        elif entry.is_file() and entry.name.lower().endswith('.pkl'):
            pickles.append(entry.name)
    return folders, pickles


def conditioning_summary(network):
    """', text prompts', ', 10 classes' or '' for the network summary line (a text network's c_dim counts
    embedding entries, not classes)."""
    if network.has_text_encoder:
        return ', text prompts'
    return f', {network.c_dim} classes' if network.c_dim else ''


class PickleWidget(Widget):
    panel_name = 'pickle'
    title = 'Pickle'
    script_fields = {}

    def __init__(self, viz, browse_dir):
        super().__init__(viz)
        self.path = ''          # The text field.
        self.current = ''       # The pickle in use.
        self.recent = []
        self.browse_dir = os.path.abspath(browse_dir)
        self._browse_error = ''

    def load(self, pkl):
        pkl = pkl.strip()
        self.path = self.current = pkl
        if pkl:
            self.recent = add_recent(self.recent, pkl)

    def draw(self):
        font_size = imgui.get_font_size()
        with imgui_utils.item_width(-font_size * 3):
            changed, self.path = imgui.input_text('##pkl', self.path, imgui.InputTextFlags_.enter_returns_true)
        imgui_utils.tooltip('A network pickle: a local path or an http(s):// URL. Enter loads it.')
        if changed:
            self.load(self.path)
        imgui.same_line()
        if imgui.button('Load'):
            self.load(self.path)

        if imgui.button('Recent...'):
            imgui.open_popup('recent_pickles')
        if imgui.begin_popup('recent_pickles'):
            for pkl in self.recent + [None] + [url for url in PRETRAINED if url not in self.recent]:
                if pkl is None:
                    imgui.separator()
                    imgui_utils.dim_text('Pretrained (NGC)')
                elif imgui.selectable(pkl, pkl == self.current)[0]:
                    self.load(pkl)
            imgui.end_popup()
        imgui.same_line()
        if imgui.button('Browse...'):
            imgui.open_popup('browse_pickles')
        self._draw_browser()

        network = self.viz.network
        if network is not None and network.pkl == self.current:
            imgui_utils.dim_text(f'{network.kind}, {network.img_resolution}x{network.img_resolution}, '
                                 f'{network.img_channels} channels{conditioning_summary(network)}')
        error = self.viz.shown_error
        if error and network is None:  # A pickle that did not load; other errors show over the image only.
            imgui_utils.error_text(error)

    def _draw_browser(self):
        if not imgui.begin_popup('browse_pickles'):
            return
        imgui.text(self.browse_dir)
        imgui.separator()
        try:
            folders, pickles = list_folder(self.browse_dir)
            self._browse_error = ''
        except OSError as e:
            folders, pickles = [], []
            self._browse_error = f'Cannot list this folder: {e.strerror}'
        if imgui.selectable('..', False, imgui.SelectableFlags_.no_auto_close_popups)[0]:
            self.browse_dir = os.path.dirname(self.browse_dir)
        for folder in folders:
            if imgui.selectable(f'{folder}/', False, imgui.SelectableFlags_.no_auto_close_popups)[0]:
                self.browse_dir = os.path.join(self.browse_dir, folder)
        for pkl in pickles:
            if imgui.selectable(pkl, False)[0]:
                self.load(os.path.join(self.browse_dir, pkl))
        if self._browse_error:
            imgui_utils.error_text(self._browse_error)
        elif not folders and not pickles:
            imgui_utils.dim_text('No sub-folders or .pkl files here.')
        imgui.end_popup()

    def request_fields(self):
        return dict(pkl=self.current)
