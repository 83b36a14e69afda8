"""Layer panel: show any layer's output instead of the image, pick its channels, normalise them, or
view the magnitude of their 2-D Fourier transform."""

from imgui_bundle import imgui

from gui_utils import imgui_utils
from viz.widget import Widget


class LayerWidget(Widget):
    panel_name = 'layer'
    title = 'Layers'
    script_fields = {'name': str, 'base_channel': int, 'num_channels': int, 'normalize': bool,
                     'brightness_db': float, 'fft': bool, 'fft_range_db': float, 'fft_window': bool,
                     'stop_at_layer': bool}

    def __init__(self, viz):
        super().__init__(viz)
        self.name = ''              # '' = the output image.
        self.base_channel = 0
        self.num_channels = 3
        self.normalize = True
        self.brightness_db = 0.0
        self.fft = False
        self.fft_range_db = 50.0
        self.fft_window = True
        self.stop_at_layer = False
        self._scrolled_to = ''

    def draw(self):
        layers = self.viz.layers
        font_size = imgui.get_font_size()
        if imgui.begin_list_box('##layers', (-1, font_size * 10)):
            if imgui.selectable('Output image', self.name == '')[0]:
                self.name = ''
            for layer in layers:
                channels, height, width = layer.shape
                label = f'{layer.name}  {channels} x {height} x {width}  {layer.dtype}'
                selected = self.name == layer.name
                if imgui.selectable(label, selected)[0]:
                    self.name = self._scrolled_to = layer.name
                elif selected and self._scrolled_to != self.name:
                    imgui.set_scroll_here_y()  # Chosen elsewhere (a command file): bring it into view.
                    self._scrolled_to = self.name
            imgui.end_list_box()
        if not layers:
            imgui_utils.dim_text('The layers appear after the first image.')

        shown = self.viz.shown_channels
        is_layer = self.name != ''
        with imgui_utils.disabled(not is_layer):
            total = shown[2] if is_layer else 0
            with imgui_utils.item_width(font_size * 10):
                _, self.base_channel = imgui.slider_int('First channel', self.base_channel, 0, max(total - 1, 0))
            if imgui.radio_button('1 channel (grey)', self.num_channels == 1):
                self.num_channels = 1
            imgui.same_line()
            if imgui.radio_button('3 channels (RGB)', self.num_channels == 3):
                self.num_channels = 3
            if is_layer and total:
                imgui_utils.dim_text(f'Showing channels {shown[0]}..{shown[0] + shown[1] - 1} of {total}')
            _, self.normalize = imgui.checkbox('Normalise', self.normalize)
            imgui_utils.tooltip('Divide each channel by its largest magnitude.')
            imgui.same_line()
            with imgui_utils.item_width(font_size * 7):
                self.brightness_db = imgui_utils.slider_float('Gain', self.brightness_db, -40, 40, '%+.1f dB')
            _, self.stop_at_layer = imgui.checkbox('Stop at this layer', self.stop_at_layer)
            imgui_utils.tooltip('Skip the layers after this one: faster, and the output image is not computed.')

        _, self.fft = imgui.checkbox('FFT magnitude', self.fft)
        imgui_utils.tooltip('The centred 2-D spectrum of the shown channels, in dB below its peak.')
        with imgui_utils.disabled(not self.fft):
            imgui.same_line()
            _, self.fft_window = imgui.checkbox('Kaiser window', self.fft_window)
            with imgui_utils.item_width(font_size * 10):
                self.fft_range_db = imgui_utils.slider_float('Range', self.fft_range_db, 10, 120, '%.0f dB')

    def update(self, dt):
        # A layer name from an earlier network: back to the output image once this network's layers are known.
        layers = self.viz.layers
        if self.name and layers and all(layer.name != self.name for layer in layers):
            self.name = ''

    def request_fields(self):
        return dict(layer=self.name, base_channel=self.base_channel, num_channels=self.num_channels,
                    normalize=self.normalize, brightness_db=self.brightness_db, fft=self.fft,
                    fft_range_db=self.fft_range_db, fft_window=self.fft_window,
                    stop_at_layer=self.stop_at_layer and self.name != '')
