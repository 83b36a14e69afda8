"""The visualizer's window: a panel of widgets on the left, the rendered image on the right.

Each frame the widgets' settings make a RenderRequest; a new one goes to the render worker, and the
newest finished result is shown. The window never waits for the renderer.
"""

import dataclasses
import json
import os
import sys
import time

from imgui_bundle import imgui

import dnnlib
import gen_images
from gui_utils import imgui_utils
from gui_utils import text as gui_text
from gui_utils.gl_texture import QuadProgram, Texture
from gui_utils.layout import fit_image
from viz.capture_widget import CaptureWidget
from viz.equivariance_widget import EquivarianceWidget
from viz.latent_widget import LatentWidget
from viz.layer_widget import LayerWidget
from viz.performance_widget import PerformanceWidget
from viz.pickle_widget import PickleWidget
from viz.renderer import RenderRequest
from viz.scale_widget import ScaleWidget
from viz.stylemix_widget import StyleMixWidget
from viz.trunc_noise_widget import TruncNoiseWidget

PANEL_WIDTH_EM = 25  # Panel width in font heights.

WIDGET_CLASSES = [PickleWidget, LatentWidget, StyleMixWidget, TruncNoiseWidget, ScaleWidget, EquivarianceWidget,
                  LayerWidget, PerformanceWidget, CaptureWidget]


def script_fields():
    """{panel name: {field: type}} of every panel, for parsing command files before a window exists."""
    return {cls.panel_name: dict(cls.script_fields) for cls in WIDGET_CLASSES}


def _log_to_stderr(message):
    print(message, file=sys.stderr, flush=True)


class Visualizer:
    def __init__(self, window, worker, capture_dir, browse_dir, script_runner=None, log=_log_to_stderr):
        self.window = window
        self.worker = worker
        self.script_runner = script_runner
        self.log = log
        self.widgets = [
            PickleWidget(self, browse_dir), LatentWidget(self), StyleMixWidget(self), TruncNoiseWidget(self),
            ScaleWidget(self), EquivarianceWidget(self), LayerWidget(self), PerformanceWidget(self),
            CaptureWidget(self, capture_dir),
        ]
        self.panels = {widget.panel_name: widget for widget in self.widgets}
        self.shown_result = None        # The result whose image is on screen.
        self.network = None             # NetworkInfo of the shown result.
        self.layers = []                # Its layers (kept while a render fails).
        self.frame_request = None       # The request built this frame.
        self.view = (0, 0, 0, 0, 0.0)   # Image rectangle in framebuffer pixels: x, y, width, height, zoom.
        self.view_area = (0, 0, 0, 0)   # The area right of the panel, in framebuffer pixels.
        self._submitted = None
        self._texture = None
        self._quad = QuadProgram()
        self._after_render = []
        self._mouse_events = []
        self._dragging = False
        self._last_frame = None
        self._logged_error = None
        self.last_error = None          # The newest error shown (a --script run exits non-zero after one).

    # Properties the widgets read.

    @property
    def gui_fps(self):
        return self.window.fps

    @property
    def rendering(self):
        return self.worker.busy

    @property
    def current_network(self):
        """NetworkInfo of the pickle chosen now; None until its first result is in (e.g. just after loading)."""
        network = self.network
        return network if network is not None and network.pkl == self.panels['pickle'].current else None

    @property
    def shown_error(self):
        return self.shown_result.error if self.shown_result is not None else None

    @property
    def shown_channels(self):
        return self.shown_result.channels if self.shown_result is not None else (0, 0, 0)

    def window_fps_limit(self, fps):
        self.window.fps_limit = fps

    def after_render(self, fn):
        """Runs `fn()` once this frame is drawn, before it is shown (window captures)."""
        self._after_render.append(fn)

    # The frame.

    def frame(self):
        now = time.perf_counter()
        dt = now - self._last_frame if self._last_frame is not None else 0.0
        self._last_frame = now
        self.window.begin_frame(before_new_frame=self._feed_mouse_events)
        self._take_result()
        for widget in self.widgets:
            widget.update(dt)
        self._draw_panel()
        self._handle_view_mouse()
        self.frame_request = RenderRequest(**self._request_fields())
        if self.frame_request != self._submitted:
            self.worker.submit(self.frame_request)
            self._submitted = self.frame_request
        self._draw_view_overlay()
        self.window.render(draw_before_gui=self._draw_image)
        callbacks, self._after_render = self._after_render, []
        for fn in callbacks:
            fn()
        if self.script_runner is not None:
            self.script_runner.step(self)
        self.window.present()

    def _request_fields(self):
        fields = {}
        for widget in self.widgets:
            fields.update(widget.request_fields())
        return fields

    def _take_result(self):
        result = self.worker.latest_result()
        if result is None or result is self.shown_result:
            return
        new_network = result.network is None or self.network is None or result.network.pkl != self.network.pkl
        stopped_early = result.request.stop_at_layer and result.request.layer
        # Keep the full list while a render stops early (or fails), so later layers stay selectable.
        if new_network or (result.layers and not stopped_early):
            self.layers = result.layers
        self.shown_result = result
        self.network = result.network
        if result.image is not None:
            if self._texture is None:
                self._texture = Texture()
            self._texture.upload(result.image)
        if result.error and result.error != self._logged_error:
            self.log(f'error: {result.error}')
            self.last_error = result.error
        self._logged_error = result.error

    def _draw_panel(self):
        width, height = self.window.window_size
        panel_width = min(PANEL_WIDTH_EM * imgui.get_font_size(), width * 0.6)
        imgui.set_next_window_pos((0, 0))
        imgui.set_next_window_size((panel_width, height))
        flags = (imgui.WindowFlags_.no_title_bar | imgui.WindowFlags_.no_resize | imgui.WindowFlags_.no_move
                 | imgui.WindowFlags_.no_collapse | imgui.WindowFlags_.no_bring_to_front_on_focus)
        imgui.begin('Panels', None, flags)
        for widget in self.widgets:
            if not widget.visible:
                continue
            flags = imgui.TreeNodeFlags_.default_open if widget.default_open else 0
            if imgui.collapsing_header(widget.title, flags):
                with imgui_utils.scoped_id(widget.panel_name):
                    widget.draw()
        imgui.end()

        ratio = self.window.pixel_ratio
        fb_width, fb_height = self.window.framebuffer_size
        x0 = int(round(panel_width * ratio))
        self.view_area = (x0, 0, fb_width - x0, fb_height)
        image = self._shown_image()
        if image is not None:
            self.view = fit_image(image.shape[1], image.shape[0], *self.view_area)
        else:
            self.view = (x0, 0, 0, 0, 0.0)

    def _shown_image(self):
        result = self.shown_result
        return result.image if result is not None and result.error is None else None

    def _draw_image(self):
        x, y, width, height, _zoom = self.view
        if self._texture is not None and self._shown_image() is not None and width > 0:
            fb_width, fb_height = self.window.framebuffer_size
            self._quad.draw(self._texture, x, y, width, height, fb_width, fb_height)

    def _draw_view_overlay(self):
        ratio = self.window.pixel_ratio
        x, y, width, height = (v / ratio for v in self.view_area)
        draw_list = imgui.get_background_draw_list()
        font_size = imgui.get_font_size()
        result = self.shown_result
        message = None
        if result is None or (self.rendering and result.request.pkl != self.frame_request.pkl):
            message = f'Loading {self.frame_request.pkl} ...' if self.frame_request.pkl else None
        if message is None and result is not None and result.error:
            message = result.error
        if message is None and self.frame_request.pkl == '':
            message = 'No network loaded: enter a pickle path or URL in the Pickle panel'
        if message:
            gui_text.draw_text_box(draw_list, message, x, y, width, height, font_size * 1.6,
                                   color=(1.0, 0.55, 0.5, 1.0) if result is not None and result.error else (1, 1, 1, 1))
        if result is not None and result.notes:
            gui_text.draw_text_box(draw_list, '\n'.join(result.notes), x, y + height - font_size * 4, width,
                                   font_size * 3, font_size)

    # Mouse: dragging the image moves the latent.

    def _handle_view_mouse(self):
        io = imgui.get_io()
        ratio = self.window.pixel_ratio
        mouse_x = io.mouse_pos.x * ratio
        over_view = not io.want_capture_mouse and mouse_x >= self.view_area[0]
        if imgui.is_mouse_clicked(0) and over_view:
            self._dragging = True
        if self._dragging:
            if imgui.is_mouse_down(0):
                if io.mouse_delta.x or io.mouse_delta.y:
                    self.panels['latent'].drag(io.mouse_delta.x, io.mouse_delta.y)
            else:
                self._dragging = False

    def _feed_mouse_events(self):
        if self._mouse_events:
            x, y, down = self._mouse_events.pop(0)
            io = imgui.get_io()
            io.add_mouse_pos_event(x, y)
            io.add_mouse_button_event(0, down)

    # The interface of the script runner (and the capture panel).

    def set_field(self, panel, field, value):
        setattr(self.panels[panel], field, value)

    def load_pickle(self, pkl):
        self.panels['pickle'].load(pkl)

    def image_is_current(self):
        """True when this frame shows the result (image or error) of this frame's settings."""
        return self.shown_result is not None and self.shown_result.request == self.frame_request

    def view_center(self):
        """Centre of the image view, in window coordinates (those of mouse events)."""
        x, y, width, height = self.view_area
        ratio = self.window.pixel_ratio
        return ((x + width / 2) / ratio, (y + height / 2) / ratio)

    def add_mouse_event(self, x, y, down):
        """Queues a synthetic mouse position and left-button state for the next frame."""
        self._mouse_events.append((x, y, down))

    def resolve_path(self, path):
        """Paths of command files are relative to the capture folder."""
        return path if os.path.isabs(path) else os.path.join(self.panels['capture'].directory, path)

    def save_image(self, path):
        image = self._shown_image()
        if image is None:
            raise ValueError(f'no image to save ({self.shown_error or "nothing rendered yet"})')
        _write_png(image, path)
        self.log(f'saved {path}')

    def save_window(self, path):
        _write_png(self.window.read_pixels(), path)
        self.log(f'saved {path}')

    def write_state(self, path):
        result = self.shown_result
        x, y, width, height, zoom = self.view
        state = dict(
            request=dataclasses.asdict(self.frame_request),
            shown_request=dataclasses.asdict(result.request) if result is not None else None,
            image_is_current=self.image_is_current(),
            error=self.shown_error,
            notes=list(result.notes) if result is not None else [],
            network=dataclasses.asdict(self.network) if self.network is not None else None,
            layers=[dict(name=layer.name, shape=list(layer.shape), dtype=layer.dtype) for layer in self.layers],
            channels=list(self.shown_channels),
            image_shape=list(result.image.shape) if result is not None and result.image is not None else None,
            view=dict(x=x, y=y, width=width, height=height, zoom=zoom),
            framebuffer_size=list(self.window.framebuffer_size),
            window_size=list(self.window.window_size),
            panels={widget.panel_name: widget.state() for widget in self.widgets},
            visible_panels=[widget.panel_name for widget in self.widgets if widget.visible],
            render_seconds=result.render_seconds if result is not None else None,
            rendering=self.rendering,
            gui_fps=self.gui_fps,
        )
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        text = json.dumps(state, indent=1).encode('utf-8')
        dnnlib.util.write_atomically(path, lambda f: f.write(text))

    def request_close(self):
        self.window.request_close()

    def close(self):
        if self._texture is not None:
            self._texture.delete()
        self._quad.delete()


def _write_png(image, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    gen_images.save_image(image, path)
