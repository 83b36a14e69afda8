"""Inference grids: gen_images.py --grid / --mix-seeds and style_mixing.py, tile by tile against single renders."""

import os

import numpy as np
import PIL.Image
import pytest
import torch

from helpers import run_python
from tool_networks import images_to_uint8, save_network_pkl, tiny_generator

SIZE = 16  # tiny_generator's resolution.


@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp('grids')
    G = tiny_generator(seed=3)
    G.mapping.w_avg.copy_(torch.randn([G.w_dim]))  # A fresh network's w_avg is 0; make truncation visible.
    cond = tiny_generator(c_dim=3, seed=4)
    return dict(root=root, G=G, pkl=save_network_pkl(G, root / 'G.pkl'), cond_pkl=save_network_pkl(cond, root / 'cond.pkl'))


def _read_png(path):
    return np.array(PIL.Image.open(path))


def _tiles(grid, num_rows, num_cols):
    assert grid.shape[:2] == (num_rows * SIZE, num_cols * SIZE)
    return [[grid[r * SIZE:(r + 1) * SIZE, c * SIZE:(c + 1) * SIZE] for c in range(num_cols)] for r in range(num_rows)]


def _average_w_image(G):
    ws = G.mapping.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1)
    return images_to_uint8(G.synthesis(ws, noise_mode='const', force_fp32=True))[0]


def _ws(G, seed, psi):
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim).astype(np.float32))
    return G.mapping(z, torch.zeros([1, 0]), truncation_psi=psi)


def test_truncation_grid_tiles_equal_the_single_renders(tmp_path, nets):
    seeds, psis = [0, 5, 9], ['0.5', '0.7', '1']
    r = run_python(['gen_images.py', f'--network={nets["pkl"]}', '--seeds=0,5,9', '--trunc=0.5,0.7,1', f'--outdir={tmp_path / "single"}'])
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / 'single')) == sorted(f'seed{s:04d}-trunc{p}.png' for s in seeds for p in psis)
    r = run_python(['gen_images.py', f'--network={nets["pkl"]}', '--seeds=0,5,9', '--trunc=0.5,0.7,1', '--grid',
                    f'--outdir={tmp_path / "grid"}'])
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path / 'grid') == ['trunc-grid.png']
    tiles = _tiles(_read_png(tmp_path / 'grid' / 'trunc-grid.png'), len(seeds), len(psis) + 1)
    base = _average_w_image(nets['G'])
    for row, seed in enumerate(seeds):
        np.testing.assert_array_equal(tiles[row][0], base)
        for col, psi in enumerate(psis):
            np.testing.assert_array_equal(tiles[row][col + 1], _read_png(tmp_path / 'single' / f'seed{seed:04d}-trunc{psi}.png'))
    assert not np.array_equal(tiles[0][1], tiles[0][3])  # Truncation changes the image.
    # A render with one --trunc value is the official seedNNNN.png, and the same image.
    r = run_python(['gen_images.py', f'--network={nets["pkl"]}', '--seeds=5', '--trunc=0.7', f'--outdir={tmp_path / "one"}'])
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path / 'one') == ['seed0005.png']
    np.testing.assert_array_equal(_read_png(tmp_path / 'one' / 'seed0005.png'), tiles[1][2])


def test_style_mixing_grids_of_gen_images_and_of_the_script(tmp_path, nets):
    G = nets['G']
    rows, cols, layers = [1, 2], [7, 8, 9], [0, 1, 2]
    r = run_python(['gen_images.py', f'--network={nets["pkl"]}', '--seeds=1,2', '--mix-seeds=7-9', '--mix-layers=0-2',
                    '--trunc=0.7', f'--outdir={tmp_path / "gi"}'])
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path / 'gi') == ['mix-grid.png']
    grid = _read_png(tmp_path / 'gi' / 'mix-grid.png')
    tiles = _tiles(grid, len(rows) + 1, len(cols) + 1)
    np.testing.assert_array_equal(tiles[0][0], _average_w_image(G))
    with torch.no_grad():
        for col, col_seed in enumerate(cols):
            expected = images_to_uint8(G.synthesis(_ws(G, col_seed, 0.7), noise_mode='const', force_fp32=True))[0]
            np.testing.assert_array_equal(tiles[0][col + 1], expected)
        for row, row_seed in enumerate(rows):
            w_row = _ws(G, row_seed, 0.7)
            np.testing.assert_array_equal(tiles[row + 1][0], images_to_uint8(G.synthesis(w_row, noise_mode='const', force_fp32=True))[0])
            for col, col_seed in enumerate(cols):
                mixed = w_row.clone()
                mixed[:, layers] = _ws(G, col_seed, 0.7)[:, layers]
                expected = images_to_uint8(G.synthesis(mixed, noise_mode='const', force_fp32=True))[0]
                np.testing.assert_array_equal(tiles[row + 1][col + 1], expected)

    # style_mixing.py with StyleGAN2-ADA's options: the same grid, and every tile alone.
    r = run_python(['style_mixing.py', f'--network={nets["pkl"]}', '--rows=1,2', '--cols=7-9', '--styles=0-2', '--trunc=0.7',
                    f'--outdir={tmp_path / "sm"}'])
    assert r.returncode == 0, r.stderr
    expected_files = {'grid.png'} | {f'{s}-{s}.png' for s in (1, 2, 7, 8, 9)} | {f'{a}-{b}.png' for a in (1, 2) for b in (7, 8, 9)}
    assert set(os.listdir(tmp_path / 'sm')) == expected_files
    np.testing.assert_array_equal(_read_png(tmp_path / 'sm' / 'grid.png'), grid)
    np.testing.assert_array_equal(tiles[2][3], _read_png(tmp_path / 'sm' / '2-9.png'))
    np.testing.assert_array_equal(tiles[0][2], _read_png(tmp_path / 'sm' / '8-8.png'))


@pytest.mark.parametrize('network, args, message', [
    ('pkl', ['--seeds=1', '--mix-seeds=2', '--mix-layers=40'], 'style input 40 does not exist'),
    ('cond_pkl', ['--seeds=1', '--mix-seeds=2', '--mix-layers=0-2'], '--class'),
    ('pkl', ['--seeds=1', '--mix-seeds=2', '--trunc=0.5,1'], 'single --trunc value'),
    ('pkl', ['--seeds=1', '--trunc=0.5,,1'], 'an entry is empty'),
    ('pkl', ['--seeds=1', '--trunc=0.5,nan'], 'not a finite number'),
])
def test_bad_grid_options_get_one_line(tmp_path, nets, network, args, message):
    r = run_python(['gen_images.py', f'--network={nets[network]}', f'--outdir={tmp_path / "out"}'] + args)
    assert r.returncode != 0 and 'Traceback' not in r.stderr
    assert message in r.stderr
    assert not os.path.exists(tmp_path / 'out')


def test_style_mixing_script_on_a_conditional_network(tmp_path, nets):
    r = run_python(['style_mixing.py', f'--network={nets["cond_pkl"]}', '--rows=1', '--cols=2', '--styles=0-2', '--class=2',
                    f'--outdir={tmp_path}'])
    assert r.returncode == 0, r.stderr
    assert _read_png(tmp_path / 'grid.png').shape == (2 * SIZE, 2 * SIZE, 3)
