"""Performance panel: frame rate of the window, render time, the frame-rate cap, FP32/FP16."""

from imgui_bundle import imgui

from gui_utils import imgui_utils
from viz.widget import Widget


class PerformanceWidget(Widget):
    panel_name = 'perf'
    title = 'Performance'
    script_fields = {'fps_limit': int, 'force_fp32': bool}
    default_open = False

    def __init__(self, viz):
        super().__init__(viz)
        self.fps_limit = 60
        self.force_fp32 = True

    def update(self, dt):
        self.viz.window_fps_limit(self.fps_limit)

    def draw(self):
        fps = self.viz.gui_fps
        imgui.text(f'Window: {fps:.1f} frames/s' + (f' ({1000 / fps:.1f} ms)' if fps > 0 else ''))
        result = self.viz.shown_result
        if result is not None and result.render_seconds > 0:
            imgui.text(f'Render: {result.render_seconds * 1000:.1f} ms ({1 / result.render_seconds:.1f} images/s)')
        if self.viz.rendering:
            imgui.same_line()
            imgui.text_colored(imgui.ImVec4(1.0, 0.8, 0.3, 1.0), 'rendering...')
        with imgui_utils.item_width(imgui.get_font_size() * 8):
            _, self.fps_limit = imgui.slider_int('Frame-rate cap', self.fps_limit, 5, 240)
        imgui_utils.tooltip('A lower cap leaves more CPU time to the renderer.')

        network = self.viz.network
        cuda = network is not None and network.device.startswith('cuda')
        fp16_possible = cuda and network.has_fp16_layers
        with imgui_utils.disabled(not fp16_possible):
            changed, fp16 = imgui.checkbox('FP16 layers', not self.force_fp32 and fp16_possible)
            if changed and fp16_possible:
                self.force_fp32 = not fp16
        if network is not None:
            if not cuda:
                imgui_utils.tooltip('FP16 needs a CUDA GPU: on the CPU every layer runs in FP32.')
            elif not network.has_fp16_layers:
                imgui_utils.tooltip('This network has no layers built for FP16 (num_fp16_res=0).')
            else:
                imgui_utils.tooltip('Run the layers built for FP16 in FP16 (faster, slightly different images).')
            imgui_utils.dim_text(f'Device: {network.device}')

    def request_fields(self):
        return dict(force_fp32=self.force_fp32)
