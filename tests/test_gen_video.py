"""End-to-end tests of gen_video.py: a real mp4 is written and read back."""

import imageio
import numpy as np
import pytest
import torch

import gen_video
from helpers import run_python
from tool_networks import save_network_pkl, tiny_generator


@pytest.fixture(scope='module')
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp('gen_video')
    G = tiny_generator(img_resolution=16)
    return G, save_network_pkl(G, root / 'net.pkl')


def test_grid_takes_both_official_spellings():
    assert gen_video.parse_grid('4x2') == gen_video.parse_grid('4,2') == (4, 2)
    for bad in ('4', '4x', 'x2', '0,2', '4;2', '4x2x1'):
        with pytest.raises(Exception, match='WxH or W,H'):
            gen_video.parse_grid(bad)


def _read_video(path):
    reader = imageio.get_reader(str(path))
    try:
        return np.stack([frame for frame in reader])
    finally:
        reader.close()


def test_video_frame_count_size_and_content(net, tmp_path):
    G, pkl = net
    output = tmp_path / 'lerp.mp4'
    r = run_python(['gen_video.py', f'--network={pkl}', '--seeds=0-3', '--grid=2,1', '--w-frames=3', f'--output={output}'])
    assert r.returncode == 0, r.stderr
    frames = _read_video(output)
    assert frames.shape == (2 * 3, 16, 2 * 16, 3)  # seeds / (W*H) keyframes * w_frames frames; the grid side by side.
    assert [p.name for p in tmp_path.iterdir()] == ['lerp.mp4']  # No temporary file left behind.

    # Frame 0 shows keyframe 0 of each cell: each cell takes consecutive seeds as its keyframes (0, 1 | 2, 3).
    seeds = gen_video.keyframe_seeds([0, 1, 2, 3], None, 2, 1)
    assert seeds.tolist() == [[[0, 1], [2, 3]]]
    def keyframe(seed_a, seed_b):
        zs = torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in (seed_a, seed_b)]))
        with torch.no_grad():
            img = G(zs.to(torch.float32), None, noise_mode='const')
        return gen_video.layout_grid(img, 2, 1).astype(np.float32)

    def error(frame, expected):
        return np.abs(frame.astype(np.float32) - expected).mean()

    # Frames 0 and 3 (t = 0 and 1) are keyframes 0 and 1; lossy H.264 with 4:2:0 chroma keeps them close, not exact.
    key0, key1 = keyframe(0, 2), keyframe(1, 3)
    assert error(frames[0], key0) < 20 and error(frames[0], key0) * 3 < error(frames[0], key1)
    assert error(frames[3], key1) < 20 and error(frames[3], key1) * 3 < error(frames[3], key0)


def test_num_keyframes_and_shuffle(net, tmp_path):
    _, pkl = net
    output = tmp_path / 'shuffled.mp4'
    r = run_python(['gen_video.py', f'--network={pkl}', '--seeds=5,9', '--shuffle-seed=1', '--num-keyframes=3',
                    '--w-frames=2', f'--output={output}'])
    assert r.returncode == 0, r.stderr
    assert _read_video(output).shape == (3 * 2, 16, 16, 3)

    r = run_python(['gen_video.py', f'--network={pkl}', '--seeds=0-2', '--grid=2x1', f'--output={tmp_path / "x.mp4"}'])
    assert r.returncode != 0 and 'Traceback' not in r.stderr and 'divisible' in r.stderr


def test_keyframe_seeds_and_looping_interpolation():
    seeds = gen_video.keyframe_seeds([1, 2, 3], 4, 1, 2, shuffle_seed=None)
    assert seeds.tolist() == [[[1, 2, 3, 1]], [[2, 3, 1, 2]]]
    shuffled = gen_video.keyframe_seeds([1, 2, 3], 4, 1, 2, shuffle_seed=7)
    assert sorted(shuffled.flatten().tolist()) == sorted(seeds.flatten().tolist())

    keyframes = np.random.RandomState(0).randn(4, 2, 3)
    interp = gen_video.looping_interpolator(keyframes)
    for k in range(4):
        np.testing.assert_allclose(interp(k), keyframes[k], atol=1e-12)
    np.testing.assert_allclose(interp(4.0), keyframes[0], atol=1e-12)  # Loops back to the first keyframe...
    np.testing.assert_allclose(interp(3.999), interp(4.001), atol=1e-2)  # ... continuously.


def test_creps_scale(tmp_path):
    """--scale renders a CREPS network at int(16 * scale) pixels per grid cell; odd frame sizes and other
    networks are refused before anything is written."""
    import creps_networks
    pkl = save_network_pkl(creps_networks.tiny_generator(img_resolution=16), tmp_path / 'creps.pkl')
    output = tmp_path / 'scaled.mp4'
    r = run_python(['gen_video.py', f'--network={pkl}', '--seeds=0-3', '--grid=2x1', '--w-frames=2', '--scale=1.5',
                    f'--output={output}'])
    assert r.returncode == 0, r.stderr
    assert _read_video(output).shape == (2 * 2, 24, 2 * 24, 3)

    cases = [(pkl, '--scale=0.5625', 'even frame width'),
             (save_network_pkl(tiny_generator(img_resolution=16), tmp_path / 'sg2.pkl'), '--scale=2', 'not a CREPS network')]
    for network, scale, message in cases:
        r = run_python(['gen_video.py', f'--network={network}', '--seeds=0', scale, f'--output={tmp_path / "bad.mp4"}'])
        errors = [line for line in r.stderr.splitlines() if line.startswith('Error:')]
        assert r.returncode != 0 and 'Traceback' not in r.stderr
        assert len(errors) == 1 and message in errors[0], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['creps.pkl', 'scaled.mp4', 'sg2.pkl']
