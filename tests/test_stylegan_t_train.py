"""StyleGAN-T end to end on the CPU with stand-in encoders: a caption folder through dataset_tool.py, train.py
with an exact continuation, gen_images.py --prompt and calc_metrics.py; option refusals; and (slow) a tiny
model that learns to follow colour words."""

import json
import os

import numpy as np
import PIL.Image
import pytest
import torch

import legacy
import stylegan_t_standins
from helpers import run_python
from test_train import assert_same_networks, load_snapshot, newest_snapshot, only_run_dir, read_stats

pytest.importorskip('open_clip')
pytest.importorskip('timm')

COLOURS = {'red': (220, 40, 40), 'blue': (40, 60, 220)}
# 2 iterations per 0.008 kimg at batch 4, a tick (and snapshot) after every iteration.
TINY = ['--cfg=stylegan-t', '--gpus=1', '--batch=4', '--batch-gpu=2', '--cbase=256', '--cmax=32', '--res-blocks=1',
        '--workers=0', '--tick=0.004', '--snap=1', '--metrics=none', '--blur-init=2', '--blur-fade-kimg=0.01']


def draw_shapes(folder, count, size=32, seed=0):
    """Discs and squares, red or blue, on grey, each with a caption file naming colour and shape."""
    rnd = np.random.RandomState(seed)
    os.makedirs(folder, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for idx in range(count):
        colour, shape = list(COLOURS)[idx % 2], ['disc', 'square'][(idx // 2) % 2]
        img = np.full([size, size, 3], 128, dtype=np.uint8)
        cy, cx = rnd.randint(size // 3, size - size // 3, size=2)
        radius = rnd.randint(size // 6, size // 4 + 1)
        inside = ((yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2) if shape == 'disc' else \
            ((abs(yy - cy) <= radius) & (abs(xx - cx) <= radius))
        img[inside] = COLOURS[colour]
        PIL.Image.fromarray(img).save(os.path.join(folder, f'shape{idx:03d}.png'))
        with open(os.path.join(folder, f'shape{idx:03d}.txt'), 'w') as f:
            f.write(f'a {colour} {shape}\n')


def draw_uncaptioned_shapes(folder, count):
    """The shapes without caption files: a dataset for an unconditional generator."""
    draw_shapes(folder, count=count, size=16)
    for name in os.listdir(folder):
        if name.endswith('.txt'):
            os.remove(os.path.join(folder, name))
    return folder


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('stylegan_t')
    paths = stylegan_t_standins.build(root / 'encoders')
    draw_shapes(root / 'shapes', count=32)
    result = run_python(['dataset_tool.py', f'--source={root / "shapes"}', f'--dest={root / "shapes.zip"}'])
    assert result.returncode == 0, result.stderr
    return dict(root=root, data=str(root / 'shapes.zip'), env=stylegan_t_standins.environment(paths), paths=paths)


def train(workspace, args, timeout=900):
    return run_python(['train.py'] + [str(arg) for arg in args], env=workspace['env'], timeout=timeout)


def test_caption_run_continues_exactly_renders_prompts_and_measures(workspace, tmp_path):
    common = ['--data', workspace['data'], '--img-resolution=16'] + TINY
    first_out = tmp_path / 'first'
    result = train(workspace, ['--outdir', first_out, '--kimg=0.008'] + common)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run_dir = only_run_dir(first_out)
    assert os.path.basename(run_dir) == '00000-stylegan-t-shapes-gpus1-batch4'
    options = json.load(open(os.path.join(run_dir, 'training_options.json')))
    assert options['training_set_kwargs']['use_labels'] and options['training_set_kwargs']['resize_resolution'] == 16
    assert options['G_kwargs']['c_dim'] == stylegan_t_standins.CLIP_CONFIG['embed_dim']
    assert options['loss_kwargs'] == dict(class_name='training.loss.StyleGANTLoss', blur_init_sigma=2,
                                          blur_fade_kimg=0.01, clip_weight=0)
    captions = open(os.path.join(run_dir, 'captions.txt')).read().split()
    assert {'red', 'blue', 'disc', 'square'} <= set(captions)
    first = load_snapshot(newest_snapshot(run_dir))
    G = first['G_ema']
    assert type(G).__module__ == 'training.networks_stylegan_t' and G.img_resolution == 16

    # The snapshot's text encoder is the stand-in CLIP's.
    from training import encoders
    clip_net = encoders.load_clip(workspace['paths']['clip_model'], workspace['paths']['clip'])
    import open_clip
    reference = torch.nn.functional.normalize(clip_net.encode_text(open_clip.tokenize(['a red disc'])), dim=-1)
    torch.testing.assert_close(encoders.encode_prompts(G, ['a red disc']), reference, atol=1e-5, rtol=0)

    result = train(workspace, ['--outdir', first_out, '--resume', run_dir, '--kimg=0.016'] + common)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert [round(s['Progress/kimg']['mean'] * 1000) for s in read_stats(run_dir)] == [4, 8, 12, 16]
    assert {'Loss/G/loss', 'Loss/D/loss'} <= set(read_stats(run_dir)[-1])
    resumed = load_snapshot(newest_snapshot(run_dir))
    straight_out = tmp_path / 'straight'
    result = train(workspace, ['--outdir', straight_out, '--kimg=0.016'] + common)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert_same_networks(resumed, load_snapshot(newest_snapshot(only_run_dir(straight_out))))

    # Sampling with a prompt, and FID against the captioned dataset with the stand-in Inception.
    snapshot = newest_snapshot(run_dir)
    result = run_python(['gen_images.py', f'--network={snapshot}', '--seeds=0-1', '--prompt=a blue square',
                         f'--outdir={tmp_path / "images"}'], env=workspace['env'])
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / 'images')) == ['seed0000.png', 'seed0001.png']
    from metric_standins import write_standin_detectors
    inception, _vgg = write_standin_detectors(tmp_path)
    result = run_python(['calc_metrics.py', f'--network={snapshot}', '--metrics=fid20_full', f'--inception={inception}',
                         '--workers=0'], env=dict(workspace['env'], DNNLIB_CACHE_DIR=str(tmp_path / 'cache')))
    assert result.returncode == 0, result.stderr
    record = json.loads([line for line in result.stdout.splitlines() if line.startswith('{"results"')][-1])
    assert np.isfinite(record['results']['fid20_full'])


def test_two_processes_share_the_pretrained_weights(workspace, tmp_path):
    """With --gpus=2 only rank 0 copies the encoders in; the others receive every tensor from it, and the snapshot's
    consistency check (every parameter and buffer equal across processes) passes."""
    result = train(workspace, ['--outdir', tmp_path / 'out', '--data', workspace['data'], '--img-resolution=16',
                               '--kimg=0.004'] + [arg if arg != '--gpus=1' else '--gpus=2' for arg in TINY])
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run_dir = only_run_dir(tmp_path / 'out')
    assert 'Distributing across 2 processes' in open(os.path.join(run_dir, 'log.txt')).read()
    G = load_snapshot(newest_snapshot(run_dir))['G_ema']
    from training import encoders
    clip_net = encoders.load_clip(workspace['paths']['clip_model'], workspace['paths']['clip'])
    assert torch.equal(G.text_encoder.token_embedding, clip_net.token_embedding.weight)


def test_unconditional_without_captions_and_fp32(workspace, tmp_path):
    plain = draw_uncaptioned_shapes(tmp_path / 'plain', count=8)
    result = train(workspace, ['--outdir', tmp_path / 'out', '--data', plain, '--kimg=0.004', '--fp32=1'] + TINY)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    G = load_snapshot(newest_snapshot(only_run_dir(tmp_path / 'out')))['G_ema']
    assert G.c_dim == 0 and G.text_encoder is None
    assert all(not block.use_fp16 for block in G.synthesis.children())


@pytest.mark.parametrize('args, message', [
    (['--cfg=stylegan-t', '--gamma=2'], '--gamma does not apply to --cfg=stylegan-t'),
    (['--cfg=stylegan-t', '--aug=ada', '--map-depth=2'], '--aug, --map-depth do not apply'),
    (['--cfg=stylegan-t-lite', '--cbase=1024'], 'a preset fixes the sizes'),
    (['--cfg=stylegan2', '--gamma=1', '--clip-weight=1'], '--clip-weight does not apply to --cfg=stylegan2'),
    (['--cfg=stylegan2', '--res-blocks=3'], '--cfg=stylegan2 needs --gamma'),
    (['--cfg=stylegan3-t', '--gamma=1', '--dino=x.pth'], '--dino does not apply'),
    (['--cfg=stylegan-t', '--img-resolution=12'], '--img-resolution=12 is not a power of two'),
    (['--cfg=stylegan-t', '--dino-model=missing.json'], 'cannot read missing.json'),
    (['--cfg=stylegan-t', '--clip=missing.pt'], '--clip: no such checkpoint file'),
])
def test_options_of_other_configs_are_refused(workspace, tmp_path, args, message):
    result = train(workspace, ['--outdir', tmp_path / 'out', '--data', workspace['data'], '--gpus=1', '--batch=4',
                               '--metrics=none'] + args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and 'Traceback' not in result.stderr, result.stderr
    assert not os.path.exists(tmp_path / 'out')


def test_clip_weight_needs_captions(workspace, tmp_path):
    plain = draw_uncaptioned_shapes(tmp_path / 'plain', count=4)
    result = train(workspace, ['--outdir', tmp_path / 'out', '--data', plain, '--clip-weight=1'] + TINY)
    assert result.returncode != 0 and '--clip-weight needs a dataset with captions' in result.stderr


def colour_margin(G, seed=1, count=32):
    """Mean red channel of images for 'red' prompts minus that for 'blue' prompts (same latents)."""
    from training import encoders
    z = torch.randn([count, G.z_dim], generator=torch.Generator().manual_seed(seed))
    red = {}
    for colour in COLOURS:
        values = []
        for shape in ('disc', 'square'):
            with torch.no_grad():
                img = G(z, encoders.encode_prompts(G, [f'a {colour} {shape}'] * count), noise_mode='const')
            values.append(float(img[:, 0].mean()))
        red[colour] = np.mean(values)
    return red['red'] - red['blue']


@pytest.mark.slow
def test_tiny_model_learns_to_follow_colour_words(workspace, tmp_path):
    """About a minute of CPU training: 'red' prompts then give redder images than 'blue' ones, by a margin that
    the untrained generator does not have."""
    result = train(workspace, ['--outdir', tmp_path / 'out', '--data', workspace['data'], '--img-resolution=16',
                               '--cfg=stylegan-t', '--gpus=1', '--batch=16', '--cbase=256', '--cmax=32',
                               '--res-blocks=1', '--workers=0', '--kimg=1.2', '--tick=0.4', '--snap=3',
                               '--metrics=none', '--blur-init=0'], timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run_dir = only_run_dir(tmp_path / 'out')
    untrained = legacy.load_network_pkl(open(os.path.join(run_dir, 'network-snapshot-000000.pkl'), 'rb'))['G_ema']
    trained = load_snapshot(newest_snapshot(run_dir))['G_ema']
    before, after = colour_margin(untrained), colour_margin(trained)
    assert after > 0.15 and after > abs(before) + 0.1, (before, after)
