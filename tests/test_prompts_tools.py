"""Text prompts in gen_images.py and gen_video.py, on a tiny text-to-image StyleGAN-T network with stand-in
encoders: the images are the generator's for the prompt's embedding, grids agree with the single images, and
prompts that do not fit the network are refused in one line."""

import click
import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

import gen_images
import stylegan_t_networks
from helpers import run_python
from test_gen_video import _read_video as read_video
from tool_networks import images_to_uint8, save_network_pkl, tiny_generator

RED, BLUE = 'a red bicycle', 'a blue house'
SIZE = stylegan_t_networks.RESOLUTION


@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp('prompts')
    text_pkl = stylegan_t_networks.text_network(tmp_path_factory)
    return dict(root=root, text_pkl=text_pkl, G=stylegan_t_networks.load_generator(text_pkl),
                uncond_pkl=stylegan_t_networks.build_unconditional_network(root),
                sg2_pkl=save_network_pkl(tiny_generator(), root / 'sg2.pkl'),
                cond_pkl=save_network_pkl(tiny_generator(c_dim=3), root / 'cond.pkl'))


def _gen(*args):
    return run_python(['gen_images.py'] + [str(a) for a in args])


def _read_png(path):
    return np.array(PIL.Image.open(path))


def _embedding(G, prompt):
    from training import encoders
    return encoders.encode_prompts(G, [prompt])


def _expected(G, seed, prompt, psi=1.0):
    """The image that G draws for the prompt and the seed's latent (the tools' own z of the seed)."""
    z = torch.from_numpy(gen_images.seed_to_z(seed, G.z_dim))
    with torch.no_grad():
        img = G(z, _embedding(G, prompt), truncation_psi=psi, noise_mode='const', force_fp32=True)
    return images_to_uint8(img)[0]


def _tiles(grid, num_rows, num_cols):
    assert grid.shape[:2] == (num_rows * SIZE, num_cols * SIZE)
    return [[grid[r * SIZE:(r + 1) * SIZE, c * SIZE:(c + 1) * SIZE] for c in range(num_cols)] for r in range(num_rows)]


def test_prompt_renders_the_generator_for_its_embedding(nets, tmp_path):
    G = nets['G']
    r = _gen(f'--network={nets["text_pkl"]}', '--seeds=0,3', f'--prompt={RED}', '--trunc=0.7', f'--outdir={tmp_path}')
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['seed0000.png', 'seed0003.png']
    for seed in (0, 3):
        np.testing.assert_array_equal(_read_png(tmp_path / f'seed{seed:04d}.png'), _expected(G, seed, RED, psi=0.7))
    other_prompt = _expected(G, 0, BLUE, psi=0.7)
    assert np.abs(_read_png(tmp_path / 'seed0000.png').astype(int) - other_prompt.astype(int)).mean() > 1


def test_prompts_file_writes_every_prompt_and_seed_and_their_grids(nets, tmp_path):
    """Blank lines, surrounding spaces, CRLF line ends and a byte-order mark do not make or change prompts."""
    G = nets['G']
    prompts_file = tmp_path / 'prompts.txt'
    prompts_file.write_bytes(f'\ufeff{RED}\r\n\r\n   \n  {BLUE}  \n\n'.encode('utf-8'))
    outdir = tmp_path / 'out'
    r = _gen(f'--network={nets["text_pkl"]}', '--seeds=1,2,5', f'--prompts={prompts_file}', '--trunc=0.5,1',
             f'--outdir={outdir}')
    assert r.returncode == 0, r.stderr
    assert f'prompt00: {RED}' in r.stdout and f'prompt01: {BLUE}' in r.stdout
    seeds, psis = [1, 2, 5], ['0.5', '1']
    singles = [f'seed{s:04d}-prompt{p:02d}-trunc{psi}.png' for s in seeds for p in range(2) for psi in psis]
    assert sorted(p.name for p in outdir.iterdir()) == sorted(singles + [f'prompt-grid-trunc{psi}.png' for psi in psis])
    for psi in psis:
        tiles = _tiles(_read_png(outdir / f'prompt-grid-trunc{psi}.png'), 2, len(seeds))  # A row per prompt.
        for row in range(2):
            for col, seed in enumerate(seeds):
                np.testing.assert_array_equal(tiles[row][col], _read_png(outdir / f'seed{seed:04d}-prompt{row:02d}-trunc{psi}.png'))
    np.testing.assert_array_equal(_read_png(outdir / 'seed0005-prompt01-trunc0.5.png'), _expected(G, 5, BLUE, psi=0.5))
    np.testing.assert_array_equal(_read_png(outdir / 'seed0002-prompt00-trunc1.png'), _expected(G, 2, RED))


def test_prompt_images_with_one_truncation_keep_plain_names(nets):
    G = nets['G']
    labels = [_embedding(G, RED), _embedding(G, BLUE)]
    with torch.no_grad():
        images = list(gen_images.prompt_images(G, [4, 7], labels, truncation_psis=[0.8], noise_mode='const', force_fp32=True))
    names = [name for name, _ in images]
    assert names == ['seed0004-prompt00.png', 'seed0007-prompt00.png', 'seed0004-prompt01.png', 'seed0007-prompt01.png',
                     'prompt-grid.png']
    np.testing.assert_array_equal(images[2][1], _expected(G, 4, BLUE, psi=0.8))
    assert images[-1][1].shape == (2 * SIZE, 2 * SIZE, 3)


def _average_image(G, prompt):
    """w_avg in the latent part of w, the prompt's normalised embedding in the rest: the image of psi = 0."""
    text = F.normalize(_embedding(G, prompt), dim=1)
    ws = torch.cat([G.mapping.w_avg.reshape(1, -1), text], dim=1).unsqueeze(1).repeat(1, G.num_ws, 1)
    with torch.no_grad():
        return images_to_uint8(G.synthesis(ws, noise_mode='const', force_fp32=True))[0]


def test_truncation_grid_under_a_prompt(nets, tmp_path):
    G = nets['G']
    r = _gen(f'--network={nets["text_pkl"]}', '--seeds=3,6', f'--prompt={RED}', '--trunc=0.5,1', '--grid', f'--outdir={tmp_path}')
    assert r.returncode == 0, r.stderr
    tiles = _tiles(_read_png(tmp_path / 'trunc-grid.png'), 2, 3)
    for row, seed in enumerate([3, 6]):
        np.testing.assert_array_equal(tiles[row][0], _average_image(G, RED))
        np.testing.assert_array_equal(tiles[row][1], _expected(G, seed, RED, psi=0.5))
        np.testing.assert_array_equal(tiles[row][2], _expected(G, seed, RED))
    with torch.no_grad():  # The style-mixing grid starts from the same image.
        mixed = gen_images.style_mixing_grid(G, [3], [6], [0, 1], _embedding(G, RED), truncation_psi=1, noise_mode='const',
                                             force_fp32=True)
    np.testing.assert_array_equal(_tiles(mixed, 2, 2)[0][0], _average_image(G, RED))


@pytest.mark.parametrize('case', ['no_text_encoder', 'unconditional_stylegan_t', 'class_network', 'text_without_prompt',
                                  'prompt_and_prompts', 'class_with_text', 'empty_prompts_file', 'not_utf8',
                                  'missing_prompts_file', 'empty_prompt', 'prompts_with_grid'])
def test_unfitting_prompts_are_refused_in_one_line(nets, tmp_path, case):
    root = nets['root']
    (root / 'blank.txt').write_text('\n   \n\n')
    (root / 'latin1.txt').write_bytes('caf\xe9 au lait\n'.encode('latin-1'))
    (root / 'two.txt').write_text(f'{RED}\n{BLUE}\n')
    text = f'--network={nets["text_pkl"]}'
    args, message = {
        'no_text_encoder': ([f'--network={nets["sg2_pkl"]}', f'--prompt={RED}'], '--prompt: this network has no text encoder'),
        'unconditional_stylegan_t': ([f'--network={nets["uncond_pkl"]}', f'--prompts={root / "two.txt"}'],
                                     '--prompts: this network has no text encoder'),
        'class_network': ([f'--network={nets["cond_pkl"]}', f'--prompt={RED}'], 'pick a class with --class=0..2'),
        'text_without_prompt': ([text], 'describe the image with --prompt'),
        'prompt_and_prompts': ([text, f'--prompt={RED}', f'--prompts={root / "two.txt"}'], 'use one of them'),
        'class_with_text': ([text, f'--prompt={RED}', '--class=1'], '--class: this network is conditioned on text'),
        'empty_prompts_file': ([text, f'--prompts={root / "blank.txt"}'], 'holds no prompts'),
        'not_utf8': ([text, f'--prompts={root / "latin1.txt"}'], 'is not UTF-8 text'),
        'missing_prompts_file': ([text, f'--prompts={root / "missing.txt"}'], '--prompts: no such file'),
        'empty_prompt': ([text, '--prompt= '], '--prompt is empty'),
        'prompts_with_grid': ([text, f'--prompts={root / "two.txt"}', '--grid'], 'writes its own grid'),
    }[case]
    r = _gen(*args, '--seeds=0', f'--outdir={tmp_path / "out"}')
    assert r.returncode != 0 and 'Traceback' not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert not (tmp_path / 'out').exists()


def test_tools_without_prompts_refuse_text_networks(nets):
    """style_mixing.py and projector.py build their label with make_label, which must not ask for a class."""
    with pytest.raises(click.ClickException, match='takes no prompts: use gen_images.py or gen_video.py with --prompt'):
        gen_images.make_label(nets['G'], None, torch.device('cpu'))

# ----------------------------------------------------------------------------
# gen_video.py


def test_video_under_a_prompt(nets, tmp_path):
    G = nets['G']
    output = tmp_path / 'lerp.mp4'
    r = run_python(['gen_video.py', f'--network={nets["text_pkl"]}', '--seeds=0-1', f'--prompt={RED}', '--w-frames=3',
                    '--trunc=0.7', f'--output={output}'])
    assert r.returncode == 0, r.stderr
    frames = read_video(output)
    assert frames.shape == (2 * 3, SIZE, SIZE, 3)  # Two keyframes, three frames from each to the next.
    assert [p.name for p in tmp_path.iterdir()] == ['lerp.mp4']

    def error(frame, expected):
        return np.abs(frame.astype(np.float32) - expected.astype(np.float32)).mean()

    # Frames 0 and 3 are the keyframes under the prompt (H.264 with 4:2:0 chroma is lossy: close, not equal).
    # Another prompt changes the tiny network's image less than another seed does, hence the smaller margin.
    for frame_idx, seed in ((0, 0), (3, 1)):
        under_prompt = error(frames[frame_idx], _expected(G, seed, RED, psi=0.7))
        assert under_prompt < 20
        assert under_prompt * 2 < error(frames[frame_idx], _expected(G, 1 - seed, RED, psi=0.7))
        assert under_prompt * 1.3 < error(frames[frame_idx], _expected(G, seed, BLUE, psi=0.7))


@pytest.mark.parametrize('network, args, message', [
    ('text_pkl', [], 'describe the image with --prompt'),
    ('text_pkl', [f'--prompt={RED}', '--class=0'], '--class: this network is conditioned on text'),
    ('sg2_pkl', [f'--prompt={RED}'], '--prompt: this network has no text encoder'),
    ('text_pkl', ['--prompt='], '--prompt is empty'),
])
def test_video_refuses_unfitting_prompts(nets, tmp_path, network, args, message):
    r = run_python(['gen_video.py', f'--network={nets[network]}', '--seeds=0', *args, f'--output={tmp_path / "x.mp4"}'])
    assert r.returncode != 0 and 'Traceback' not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert not list(tmp_path.iterdir())
