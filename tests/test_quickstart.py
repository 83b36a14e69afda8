"""The README's Quick start main job, end to end (shortened training, same steps)."""

import os

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
    reader = imageio.get_reader(str(outdir / 'video.mp4'))
    frames = [frame for frame in reader]
    assert len(frames) == 4 * 10 and frames[0].shape == (16, 32, 3)
    assert 'network-snapshot-' in (outdir / 'quickstart.log').read_text()


def test_quickstart_refuses_a_non_empty_outdir(tmp_path):
    (tmp_path / 'something').write_text('x')
    result = run_python(['quickstart.py', f'--outdir={tmp_path}'])
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert 'not empty' in result.stderr
