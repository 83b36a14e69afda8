"""The render thread: the newest request wins, results come back in order, errors do not stop it."""

import threading

import numpy as np
import torch

from tool_networks import fixture_generator, save_network_pkl
from viz.render_worker import RenderWorker
from viz.renderer import Renderer, RenderRequest, RenderResult


class GatedRenderer:
    """Records what it renders; each render waits until the test opens the gate."""

    def __init__(self):
        self.rendered = []
        self.started = threading.Semaphore(0)
        self.gate = threading.Semaphore(0)

    def render(self, request):
        self.started.release()
        self.gate.acquire()
        self.rendered.append(request)
        return RenderResult(request=request, image=np.zeros([1, 1, 3], np.uint8))


def test_newest_request_replaces_waiting_ones():
    renderer = GatedRenderer()
    worker = RenderWorker(renderer)
    try:
        first, second, third = (RenderRequest(seed=s) for s in (1, 2, 3))
        worker.submit(first)
        assert renderer.started.acquire(timeout=60)
        assert worker.busy
        worker.submit(second)
        worker.submit(third)  # Replaces `second`, which has not started.
        renderer.gate.release()
        assert renderer.started.acquire(timeout=60)
        renderer.gate.release()
        result = worker.wait_for(third, timeout=60)
        assert result is not None and result.request == third
        assert renderer.rendered == [first, third]
        assert not worker.busy
    finally:
        for _ in range(3):
            renderer.gate.release()
        worker.close()


def test_real_renderer_on_its_thread(tmp_path):
    G, _ = fixture_generator('sg2-32-uncond')
    pkl = save_network_pkl(G, tmp_path / 'sg2.pkl')
    worker = RenderWorker(Renderer(device=torch.device('cpu')))
    try:
        assert worker.latest_result() is None
        bad = RenderRequest(pkl=str(tmp_path / 'missing.pkl'))
        worker.submit(bad)
        assert 'no such file' in worker.wait_for(bad, timeout=120).error
        good = RenderRequest(pkl=pkl, seed=7)
        worker.submit(good)  # The thread carries on after an error.
        result = worker.wait_for(good, timeout=120)
        assert result.error is None
        np.testing.assert_array_equal(result.image, Renderer(device=torch.device('cpu')).render(good).image)
        assert worker.latest_result() is result
    finally:
        worker.close()
