"""The README's Quick start main job, end to end (shortened training, same steps)."""

import os
import re

import imageio.v2 as imageio
import pytest

from helpers import run_python


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path):
    outdir = tmp_path / 'qs'
    result = run_python(['quickstart.py', f'--outdir={outdir}', '--kimg=0.064', '--num-images=32', '--resolution=16'],
                        timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'All done' in result.stdout
    assert os.path.isfile(outdir / 'demo-16x16.zip')
    assert sorted(os.listdir(outdir / 'images')) == [f'seed{i:04d}.png' for i in range(8)]
    assert sorted(os.listdir(outdir / 'grids')) == ['mix-grid.png', 'trunc-grid.png']
    assert {'loss_D.png', 'loss_G.png', 'sec_per_kimg.png'} <= set(os.listdir(outdir / 'plots'))
    assert re.search(r'\d+% of 256 generated images hold a disc or square \(demo images: 100%\)', result.stdout)
    reader = imageio.get_reader(str(outdir / 'video.mp4'))
    frames = [frame for frame in reader]
    assert len(frames) == 4 * 10 and frames[0].shape == (16, 32, 3)
    assert 'network-snapshot-' in (outdir / 'quickstart.log').read_text()


def test_quickstart_refuses_a_non_empty_outdir(tmp_path):
    (tmp_path / 'something').write_text('x')
    result = run_python(['quickstart.py', f'--outdir={tmp_path}'])
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert 'not empty' in result.stderr


def test_shape_check_tells_demo_shapes_from_blobs():
    """The check behind the Quick start's verdict: every demo image passes; smooth noise and blurred shapes do not."""
    import numpy as np
    import scipy.ndimage

    import quickstart
    rnd = np.random.RandomState(7)
    demo = [quickstart.render_demo_image(rnd, 32) for _ in range(40)]
    assert all(quickstart.holds_demo_shape(img) for img in demo)
    noise = np.random.RandomState(0).uniform(0, 255, size=(40, 32, 32, 3))
    blobs = [scipy.ndimage.gaussian_filter(img, (3, 3, 0)) for img in noise]
    blobs = [((b - b.mean()) * (60 / b.std()) + 128).clip(0, 255).astype(np.uint8) for b in blobs]
    assert not any(quickstart.holds_demo_shape(img) for img in blobs)
    blurred = [scipy.ndimage.gaussian_filter(img.astype(np.float64), (2, 2, 0)).astype(np.uint8) for img in demo]
    assert sum(quickstart.holds_demo_shape(img) for img in blurred) < len(blurred) / 4
