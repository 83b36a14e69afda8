"""End-to-end tests of gen_images.py on the reference fixture networks, run as a subprocess."""

import pickle

import numpy as np
import PIL.Image
import pytest
import torch

import creps_networks
from helpers import run_python
from tool_networks import fixture_generator, images_to_uint8, save_network_pkl, tiny_generator


@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp('gen_images')
    sg2, _ = fixture_generator('sg2-32-uncond')
    sg3, _ = fixture_generator('sg3t-32-uncond')
    cond = tiny_generator(c_dim=3)
    gray = tiny_generator(img_channels=1)
    creps, creps_io = creps_networks.fixture_generator()
    with open(root / 'not_a_network.pkl', 'wb') as f:
        pickle.dump({'weights': [1, 2, 3]}, f)
    return dict(root=root, sg2=sg2, sg3=sg3, cond=cond, gray=gray, creps=creps, creps_io=creps_io,
                sg2_pkl=save_network_pkl(sg2, root / 'sg2.pkl'), sg3_pkl=save_network_pkl(sg3, root / 'sg3t.pkl'),
                cond_pkl=save_network_pkl(cond, root / 'cond.pkl'), gray_pkl=save_network_pkl(gray, root / 'gray.pkl'),
                creps_pkl=save_network_pkl(creps, root / 'creps.pkl'))


def _gen(*args):
    return run_python(['gen_images.py'] + [str(a) for a in args])


def _read_png(path):
    return np.array(PIL.Image.open(path))


def _seed_z(seed, z_dim):
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).to(torch.float32)


@pytest.mark.parametrize('fixture', ['sg2-32-uncond', 'sg3t-32-uncond'])
def test_fixture_reference_image_after_uint8_conversion(fixture):
    """The official network's output, converted to uint8, equals ours converted the same way (up to rare ties)."""
    G, io = fixture_generator(fixture)
    with torch.no_grad():
        ours = G(torch.from_numpy(io['z']), torch.from_numpy(io['c']), truncation_psi=0.7, noise_mode='const', force_fp32=True)
    ours_uint8 = images_to_uint8(ours).astype(np.int32)
    ref_uint8 = images_to_uint8(torch.from_numpy(io['img_psi07_const'])).astype(np.int32)
    diff = np.abs(ours_uint8 - ref_uint8)
    assert diff.max() <= 1 and (diff != 0).mean() < 1e-3  # A float rounding may flip a value sitting on a boundary.


def test_seeds_match_network_and_are_deterministic(nets, tmp_path):
    G = nets['sg2']
    first = _gen(f'--network={nets["sg2_pkl"]}', '--seeds=0-1,5', '--trunc=0.7', '--noise-mode=const', f'--outdir={tmp_path / "a"}')
    assert first.returncode == 0, first.stderr
    second = _gen(f'--network={nets["sg2_pkl"]}', '--seeds=0-1,5', '--trunc=0.7', f'--outdir={tmp_path / "b"}')
    assert second.returncode == 0, second.stderr
    assert sorted(p.name for p in (tmp_path / 'a').iterdir()) == ['seed0000.png', 'seed0001.png', 'seed0005.png']
    for seed in (0, 1, 5):
        name = f'seed{seed:04d}.png'
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes()
        with torch.no_grad():
            img = G(_seed_z(seed, G.z_dim), torch.zeros([1, 0]), truncation_psi=0.7, noise_mode='const', force_fp32=True)
        expected = images_to_uint8(img)[0]
        png = _read_png(tmp_path / 'a' / name)
        assert png.shape == (32, 32, 3) and png.dtype == np.uint8
        np.testing.assert_array_equal(png, expected)
    assert not np.array_equal(_read_png(tmp_path / 'a' / 'seed0000.png'), _read_png(tmp_path / 'a' / 'seed0001.png'))


def test_stylegan3_translate_and_rotate(nets, tmp_path):
    G = nets['sg3']
    runs = {'identity': ['--translate=0,0', '--rotate=0'], 'moved': ['--translate=0.25,-0.1', '--rotate=30']}
    for name, extra in runs.items():
        r = _gen(f'--network={nets["sg3_pkl"]}', '--seeds=3', f'--outdir={tmp_path / name}', *extra)
        assert r.returncode == 0, r.stderr
    identity, moved = (_read_png(tmp_path / name / 'seed0003.png') for name in runs)
    assert np.abs(moved.astype(int) - identity.astype(int)).mean() > 1

    # Both equal the network rendered with the same transforms set in the test (the inverse of rotate-then-translate).
    # The identity replaces whatever transform the pickle holds (the fixture's is deliberately not the identity).
    angle = np.radians(30)
    m = np.array([[np.cos(angle), np.sin(angle), 0.25], [-np.sin(angle), np.cos(angle), -0.1], [0, 0, 1]])
    for png, transform in ((identity, np.eye(3)), (moved, np.linalg.inv(m))):
        G.synthesis.input.transform.copy_(torch.from_numpy(transform))
        with torch.no_grad():
            img = G(_seed_z(3, G.z_dim), torch.zeros([1, 0]), noise_mode='const', force_fp32=True)
        np.testing.assert_array_equal(png, images_to_uint8(img)[0])


def test_projected_w_and_grayscale_and_class(nets, tmp_path):
    G = nets['gray']
    with torch.no_grad():
        ws = G.mapping(torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(1)), None)
    np.savez(tmp_path / 'projected_w.npz', w=ws.numpy())
    r = _gen(f'--network={nets["gray_pkl"]}', f'--projected-w={tmp_path / "projected_w.npz"}', f'--outdir={tmp_path / "out"}')
    assert r.returncode == 0, r.stderr
    for idx in range(2):
        image = PIL.Image.open(tmp_path / 'out' / f'proj{idx:02d}.png')
        assert image.mode == 'L'
        with torch.no_grad():
            expected = images_to_uint8(G.synthesis(ws[idx:idx + 1], noise_mode='const'))[0, :, :, 0]
        np.testing.assert_array_equal(np.array(image), expected)

    # Conditional network: the class is a one-hot label.
    C = nets['cond']
    r = _gen(f'--network={nets["cond_pkl"]}', '--seeds=4', '--class=2', f'--outdir={tmp_path / "cond"}')
    assert r.returncode == 0, r.stderr
    with torch.no_grad():
        img = C(_seed_z(4, C.z_dim), torch.tensor([[0.0, 0.0, 1.0]]), noise_mode='const')
    np.testing.assert_array_equal(_read_png(tmp_path / 'cond' / 'seed0004.png'), images_to_uint8(img)[0])

    # Unconditional network with --class: a warning, not an error.
    r = _gen(f'--network={nets["gray_pkl"]}', '--seeds=0', '--class=1', f'--outdir={tmp_path / "warn"}')
    assert r.returncode == 0, r.stderr
    assert 'ignored' in r.stderr and (tmp_path / 'warn' / 'seed0000.png').is_file()


def test_creps_scale(nets, tmp_path):
    """--scale renders a CREPS network at int(32 * scale) pixels; at scale 2 its images are those of the public
    release (fixture io img_scale2) after the uint8 conversion."""
    from training import networks_creps
    G, io = nets['creps'], nets['creps_io']
    np.savez(tmp_path / 'projected_w.npz', w=io['ws_psi1'].numpy())
    r = _gen(f'--network={nets["creps_pkl"]}', f'--projected-w={tmp_path / "projected_w.npz"}', '--scale=2',
             f'--outdir={tmp_path / "proj"}')
    assert r.returncode == 0, r.stderr
    assert 'Rendering at 64x64' in r.stdout
    for idx in range(3):
        png = _read_png(tmp_path / 'proj' / f'proj{idx:02d}.png').astype(np.int32)
        expected = images_to_uint8(io['img_scale2'][idx:idx + 1])[0].astype(np.int32)
        assert png.shape == (64, 64, 3)
        diff = np.abs(png - expected)
        assert diff.max() <= 1 and (diff != 0).mean() < 1e-3  # A float rounding may flip a value on a boundary.

    for scale, size in [(1, 32), (0.5, 16), (1.5, 48)]:
        r = _gen(f'--network={nets["creps_pkl"]}', '--seeds=7', '--trunc=0.7', f'--scale={scale}',
                 f'--outdir={tmp_path / str(scale)}')
        assert r.returncode == 0, r.stderr
        with torch.no_grad(), networks_creps.rendering_scale(G, scale):
            expected = images_to_uint8(G(_seed_z(7, G.z_dim), torch.zeros([1, 0]), truncation_psi=0.7))[0]
        png = _read_png(tmp_path / str(scale) / 'seed0007.png')
        assert png.shape == (size, size, 3)
        np.testing.assert_array_equal(png, expected)
    assert G.synthesis.b4.input.coords.shape[1] == 32  # The test's own renderings were restored too.

    # Grids are rendered at the scale too: the image of w_avg, then the image of seed 7.
    r = _gen(f'--network={nets["creps_pkl"]}', '--seeds=7', '--trunc=0.7', '--scale=2', '--grid', f'--outdir={tmp_path / "grid"}')
    assert r.returncode == 0, r.stderr
    with torch.no_grad(), networks_creps.rendering_scale(G, 2):
        expected = images_to_uint8(G(_seed_z(7, G.z_dim), torch.zeros([1, 0]), truncation_psi=0.7))[0]
    grid = _read_png(tmp_path / 'grid' / 'trunc-grid.png')
    assert grid.shape == (64, 128, 3)
    np.testing.assert_array_equal(grid[:, 64:], expected)


@pytest.mark.parametrize('case', ['no_class', 'class_out_of_range', 'missing_pickle', 'not_a_network',
                                  'translate_stylegan2', 'bad_projected_w', 'scale_stylegan2', 'scale_too_small',
                                  'scale_zero'])
def test_errors_are_one_line(nets, tmp_path, case):
    root = nets['root']
    outdir = f'--outdir={tmp_path / "out"}'
    args = {
        'no_class': [f'--network={nets["cond_pkl"]}', '--seeds=0', outdir],
        'class_out_of_range': [f'--network={nets["cond_pkl"]}', '--seeds=0', '--class=3', outdir],
        'missing_pickle': [f'--network={root / "missing.pkl"}', '--seeds=0', outdir],
        'not_a_network': [f'--network={root / "not_a_network.pkl"}', '--seeds=0', outdir],
        'translate_stylegan2': [f'--network={nets["sg2_pkl"]}', '--seeds=0', '--translate=0.1,0', outdir],
        'bad_projected_w': [f'--network={nets["sg2_pkl"]}', f'--projected-w={root / "not_a_network.pkl"}', outdir],
        'scale_stylegan2': [f'--network={nets["sg2_pkl"]}', '--seeds=0', '--scale=2', outdir],
        'scale_too_small': [f'--network={nets["creps_pkl"]}', '--seeds=0', '--scale=0.02', outdir],
        'scale_zero': [f'--network={nets["creps_pkl"]}', '--seeds=0', '--scale=0', outdir],
    }[case]
    r = _gen(*args)
    expected = {'no_class': '--class=0..2', 'class_out_of_range': 'out of range', 'missing_pickle': 'no such file',
                'not_a_network': 'not a network pickle', 'translate_stylegan2': 'StyleGAN3',
                'bad_projected_w': 'cannot read', 'scale_stylegan2': '--scale: Generator is not a CREPS network',
                'scale_too_small': 'smallest scale for this network is 0.03125', 'scale_zero': '--scale'}[case]
    assert r.returncode != 0
    assert 'Traceback' not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and expected in errors[0], r.stderr
    assert not list(tmp_path.glob('out/*.png'))
