"""Runs a Renderer on a background thread, so the window stays responsive while a network renders.

Only the newest request matters: one submitted while another renders replaces any request that has
not started yet. PyTorch releases the GIL inside its operators, so a thread is enough on the CPU too.
"""

import threading

from viz.renderer import Renderer


class RenderWorker:
    def __init__(self, renderer=None):
        self.renderer = renderer if renderer is not None else Renderer()
        self._cond = threading.Condition()
        self._pending = None        # The newest request not started yet.
        self._rendering = None      # The request being rendered now.
        self._result = None         # The newest finished RenderResult.
        self._closed = False
        self._thread = threading.Thread(target=self._run, name='renderer', daemon=True)
        self._thread.start()

    def submit(self, request):
        """Queues `request` in place of any request that has not started."""
        with self._cond:
            self._pending = request
            self._cond.notify_all()

    def latest_result(self):
        """The newest finished RenderResult, or None before the first one."""
        with self._cond:
            return self._result

    @property
    def busy(self):
        with self._cond:
            return self._pending is not None or self._rendering is not None

    def wait_for(self, request, timeout=None):
        """Blocks until the result of `request` (or of a newer one) is the latest; returns it, or None on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._result is not None and self._result.request == request
                                or self._closed, timeout=timeout)
            return self._result if self._result is not None and self._result.request == request else None

    def close(self, timeout=10):
        """Stops the thread; a render still running after `timeout` seconds is left to finish on its own."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                request, self._pending, self._rendering = self._pending, None, self._pending
            result = self.renderer.render(request)  # Never raises: errors come back in the result.
            with self._cond:
                self._rendering = None
                self._result = result
                self._cond.notify_all()
