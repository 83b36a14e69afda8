"""End-to-end tests of projector.py with a stand-in for the VGG16 feature network."""

import textwrap

import imageio
import numpy as np
import PIL.Image
import pytest
import torch

import projector
from metrics import metric_utils
from helpers import run_python
from tool_networks import images_to_uint8, save_network_pkl, tiny_generator

# Keeps the VGG16 LPIPS call convention (float [0, 255] NCHW in, features out); its features are the
# image itself, pooled to 16x16 and scaled, so that the distance is a plain pixel distance.
VGG_STANDIN = '''
import torch

class PixelFeatures(torch.nn.Module):
    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        assert img.ndim == 4 and img.shape[1] == 3 and img.dtype == torch.float32
        assert return_lpips and not resize_images
        return torch.nn.functional.adaptive_avg_pool2d(img / 255, [16, 16]).flatten(1)
'''


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('projector')
    (root / 'pixel_features_mod.py').write_text(VGG_STANDIN)
    r = run_python(['-c', textwrap.dedent(f'''
        import sys, torch
        sys.path.insert(0, {str(root)!r})
        import pixel_features_mod
        torch.jit.save(torch.jit.script(pixel_features_mod.PixelFeatures()), {str(root / 'vgg16.pt')!r})
    ''')])
    assert r.returncode == 0, r.stderr

    # Target: the network's own image of a known w, halfway between the average and a random w.
    G = tiny_generator(img_resolution=16)
    with torch.no_grad():
        z = torch.from_numpy(np.random.RandomState(5).randn(1, G.z_dim).astype(np.float32))
        ws = G.mapping(z, None, truncation_psi=0.5)
        target = images_to_uint8(G.synthesis(ws, noise_mode='const'))[0]
    PIL.Image.fromarray(target).save(root / 'target.png')
    return dict(root=root, G=G, ws=ws, target=target, net_pkl=save_network_pkl(G, root / 'net.pkl'))


def _mean_abs_error(a, b):
    return np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean()


def _start_and_final_error(G, ws, target):
    """Mean absolute pixel error against the target at the start (w_avg) and for the projected latents."""
    with torch.no_grad():
        proj = images_to_uint8(G.synthesis(torch.as_tensor(ws), noise_mode='const'))[0]
        start = images_to_uint8(G.synthesis(G.mapping.w_avg[None, None].repeat(1, G.num_ws, 1), noise_mode='const'))[0]
    return _mean_abs_error(start, target), _mean_abs_error(proj, target), proj


def test_projection_recovers_target(workspace, tmp_path):
    root, G = workspace['root'], workspace['G']
    outdir = tmp_path / 'out'
    r = run_python(['projector.py', f'--network={workspace["net_pkl"]}', f'--target={root / "target.png"}',
                    f'--outdir={outdir}', '--num-steps=80'], env=dict(STYLEGAN_VGG16_PKL=str(root / 'vgg16.pt')))
    assert r.returncode == 0, r.stderr

    np.testing.assert_array_equal(np.array(PIL.Image.open(outdir / 'target.png')), workspace['target'])
    with np.load(outdir / 'projected_w.npz') as data:
        ws = data['w']
    assert ws.shape == (1, G.num_ws, G.w_dim) and ws.dtype == np.float32
    assert np.all(ws == ws[:, :1])  # One w shared by all layers.

    # proj.png is what the projected latents render to, and is much closer to the target than the start (w_avg).
    start_error, final_error, proj = _start_and_final_error(G, ws, workspace['target'])
    np.testing.assert_array_equal(np.array(PIL.Image.open(outdir / 'proj.png')), proj)
    assert final_error < 0.2 * start_error, (start_error, final_error)

    reader = imageio.get_reader(str(outdir / 'proj.mp4'))
    frames = [frame for frame in reader]
    reader.close()
    assert len(frames) == 80 and frames[0].shape == (16, 32, 3)  # Target | projection, one frame per step.


def test_projection_in_w_plus(workspace):
    G = workspace['G']
    with open(workspace['root'] / 'vgg16.pt', 'rb') as f:
        vgg16 = metric_utils.load_detector(f)
    target = workspace['target'].transpose(2, 0, 1)
    torch.manual_seed(0)
    states = list(projector.project(G, target, vgg16, torch.zeros([1, 0]), num_steps=80, w_plus=True, w_avg_samples=1000))
    assert [s.step for s in states] == list(range(80))
    ws = states[-1].ws.numpy()
    assert ws.shape == (1, G.num_ws, G.w_dim) and not np.all(ws == ws[:, :1])  # One w per layer.
    assert states[-1].dist < 0.1 * states[0].dist
    start_error, final_error, _ = _start_and_final_error(G, ws, workspace['target'])
    assert final_error < 0.35 * start_error, (start_error, final_error)  # W+ has more to fit than W.


def test_missing_vgg16_is_a_clear_error(workspace, tmp_path):
    root = workspace['root']
    r = run_python(['projector.py', f'--network={workspace["net_pkl"]}', f'--target={root / "target.png"}',
                    f'--outdir={tmp_path}', '--num-steps=2', f'--vgg16={root / "no-vgg16.pkl"}'])
    errors = [line for line in r.stderr.splitlines() if line.startswith('Error:')]
    assert r.returncode != 0 and 'Traceback' not in r.stderr
    assert len(errors) == 1 and 'VGG16' in errors[0] and 'STYLEGAN_VGG16_PKL' in errors[0] and '--vgg16' in errors[0]


def test_learning_rate_schedule_and_noise_penalty():
    lrs = [projector.learning_rate(step / 100, 0.1, 0.25, 0.05) for step in range(100)]
    assert lrs[0] == 0 and np.isclose(lrs[5], 0.1) and np.isclose(max(lrs), 0.1)
    assert all(a <= b for a, b in zip(lrs[:5], lrs[1:6])) and all(a >= b for a, b in zip(lrs[75:], lrs[76:]))

    gen = torch.Generator().manual_seed(0)
    white = [torch.randn([32, 32], generator=gen), torch.randn([8, 8], generator=gen)]
    smooth = [torch.nn.functional.interpolate(torch.randn([1, 1, 16, 16], generator=gen), scale_factor=2)[0, 0]]
    assert projector.noise_regularization(white) < 0.05  # About (1/num_pixels) per term: small, not zero.
    assert projector.noise_regularization(smooth) > 10 * projector.noise_regularization(white)

    # By hand for a 16x16 map: squared lag-1 autocorrelations along x and y, at 16x16 and pooled to 8x8.
    x = torch.randn([1, 1, 16, 16], generator=gen)
    x = x / x.square().mean().sqrt()
    expected = (x * x.roll(1, 3)).mean() ** 2 + (x * x.roll(1, 2)).mean() ** 2
    pooled = torch.nn.functional.avg_pool2d(x, 2)
    expected += (pooled * pooled.roll(1, 3)).mean() ** 2 + (pooled * pooled.roll(1, 2)).mean() ** 2
    assert torch.allclose(projector.noise_regularization([x[0, 0]]), expected)
