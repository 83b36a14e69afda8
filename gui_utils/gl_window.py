"""A GLFW window with an OpenGL 3.3 core context and a Dear ImGui context (imgui-bundle's native
GLFW and OpenGL3 backends).

    window = GlWindow('Title', 1280, 800)
    while not window.should_close:
        window.begin_frame()
        ... imgui calls ...
        window.render(draw_before_gui=...)   # optional GL drawing under the GUI
        window.present()
    window.close()
"""

import ctypes
import os
import time

# imgui_bundle first: importing it points the glfw package at imgui_bundle's own libglfw, so that
# both share one GLFW state (two copies of the library would not see each other's windows).
import imgui_bundle
from imgui_bundle import imgui
import glfw
from OpenGL import GL

from gui_utils.gl_texture import read_framebuffer


class WindowError(RuntimeError):
    """The window or its OpenGL context could not be created; the message says why and what to do."""


_HEADLESS_HINT = ("on a machine without a screen, run it under Xvfb: xvfb-run -s '-screen 0 1280x1024x24' "
                  "python visualizer.py ... (Debian packages xvfb and libgl1-mesa-dri)")


def _font_path():
    path = os.path.join(os.path.dirname(imgui_bundle.__file__), 'assets', 'fonts', 'DroidSans.ttf')
    return path if os.path.isfile(path) else None


class GlWindow:
    def __init__(self, title, width, height, font_size=16, fps_limit=60):
        self.font_size = font_size
        self.fps_limit = fps_limit
        self._glfw_errors = []
        self._last_present = None
        self._frame_times = []
        self._window = None

        glfw.set_error_callback(lambda code, message: self._glfw_errors.append(
            message.decode(errors='replace') if isinstance(message, bytes) else str(message)))
        if not glfw.init():
            raise WindowError(f'cannot start GLFW ({self._last_glfw_error()}); {_HEADLESS_HINT}')
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        self._window = glfw.create_window(width, height, title, None, None)
        if not self._window:
            error = self._last_glfw_error()
            glfw.terminate()
            raise WindowError(f'cannot open an OpenGL 3.3 window ({error}); {_HEADLESS_HINT}')
        glfw.make_context_current(self._window)
        glfw.swap_interval(0)  # Frame pacing is ours (fps_limit), so a slow vsync cannot stall the loop.

        imgui.create_context()
        io = imgui.get_io()
        io.set_ini_filename(None)  # No imgui.ini next to wherever the tool was started.
        imgui.style_colors_dark()
        font = _font_path()
        if font is not None:
            io.fonts.add_font_from_file_ttf(font, font_size)
        imgui.get_style().font_size_base = font_size
        window_address = ctypes.cast(self._window, ctypes.c_void_p).value
        imgui.backends.glfw_init_for_opengl(window_address, True)
        imgui.backends.opengl3_init('#version 330 core')

    def _last_glfw_error(self):
        return self._glfw_errors[-1] if self._glfw_errors else 'no reason given'

    @property
    def gl_info(self):
        """'version / renderer' of the OpenGL context, for logs."""
        return f'{GL.glGetString(GL.GL_VERSION).decode()} / {GL.glGetString(GL.GL_RENDERER).decode()}'

    @property
    def should_close(self):
        return bool(glfw.window_should_close(self._window))

    def request_close(self):
        glfw.set_window_should_close(self._window, True)

    @property
    def framebuffer_size(self):
        return glfw.get_framebuffer_size(self._window)

    @property
    def window_size(self):
        return glfw.get_window_size(self._window)

    @property
    def pixel_ratio(self):
        """Framebuffer pixels per window unit (2 on high-DPI screens that scale windows)."""
        width, _ = self.window_size
        return self.framebuffer_size[0] / width if width else 1.0

    @property
    def fps(self):
        """Frames per second over the last second or so."""
        times = self._frame_times
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 and times[-1] > times[0] else 0.0

    def begin_frame(self, before_new_frame=None):
        """Polls events and starts the ImGui frame; `before_new_frame()` may queue extra input events."""
        glfw.poll_events()
        imgui.backends.opengl3_new_frame()
        imgui.backends.glfw_new_frame()
        if before_new_frame is not None:
            before_new_frame()
        imgui.new_frame()

    def render(self, draw_before_gui=None):
        """Finishes the ImGui frame and draws it; `draw_before_gui()` draws with GL underneath it."""
        imgui.render()
        width, height = self.framebuffer_size
        GL.glViewport(0, 0, width, height)
        GL.glClearColor(0.10, 0.10, 0.11, 1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        if draw_before_gui is not None:
            draw_before_gui()
        imgui.backends.opengl3_render_draw_data(imgui.get_draw_data())

    def read_pixels(self):
        """What `render` drew, as uint8 [height, width, 3] (before `present`)."""
        width, height = self.framebuffer_size
        return read_framebuffer(width, height)

    def present(self):
        """Shows the frame, then sleeps what is left of the frame time under `fps_limit`."""
        glfw.swap_buffers(self._window)
        now = time.perf_counter()
        if self.fps_limit and self._last_present is not None:
            delay = self._last_present + 1 / self.fps_limit - now
            if delay > 0:
                time.sleep(delay)
                now = time.perf_counter()
        self._last_present = now
        self._frame_times = [t for t in self._frame_times if t > now - 1] + [now]

    def close(self):
        if self._window is None:
            return
        imgui.backends.opengl3_shutdown()
        imgui.backends.glfw_shutdown()
        imgui.destroy_context()
        glfw.destroy_window(self._window)
        glfw.terminate()
        self._window = None
