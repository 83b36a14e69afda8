"""StyleGAN-T at scale, end to end on the CPU with stand-in encoders: train.py streaming tar shards over two
processes, and the train modes (text-encoder, freeze64) with what each leaves untouched."""

import json
import math
import os
import shutil

import pytest
import torch

import clip_scorer_standin
import shard_fixtures
import stylegan_t_standins
from helpers import run_python
from metric_standins import write_standin_detectors
from test_stylegan_t_train import TINY, draw_shapes
from test_train import load_snapshot, newest_snapshot, only_run_dir, read_stats

pytest.importorskip('open_clip')
pytest.importorskip('timm')
pytest.importorskip('webdataset')


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('stylegan_t_scale')
    paths = stylegan_t_standins.build(root / 'encoders')
    draw_shapes(root / 'shapes', count=16)
    result = run_python(['dataset_tool.py', f'--source={root / "shapes"}', f'--dest={root / "shapes.zip"}'])
    assert result.returncode == 0, result.stderr
    layout = shard_fixtures.build(root / 'shards', num_shards=4, per_shard=6, corrupt=(1, 2))
    shutil.copy(root / 'shapes.zip', root / 'coco_val256.zip')  # A stand-in COCO zip, found beside the shards.
    inception, _vgg = write_standin_detectors(root)
    env = dict(stylegan_t_standins.environment(paths), STYLEGAN_INCEPTION_PKL=str(inception),
               DNNLIB_CACHE_DIR=str(root / 'cache'))
    return dict(root=root, data=str(root / 'shapes.zip'), shards=layout, env=env,
                scorer=clip_scorer_standin.build(root / 'scorer', steps=50))


def train(workspace, args, timeout=900):
    return run_python(['train.py'] + [str(arg) for arg in args], env=workspace['env'], timeout=timeout)


def one_line_error(result, message):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and 'Traceback' not in result.stderr, result.stderr

# ----------------------------------------------------------------------------
# Streaming.


def test_streamed_shards_train_over_two_processes(workspace, tmp_path):
    args = ['--outdir', tmp_path / 'out', '--data', workspace['shards']['folder'], '--img-resolution=16', '--kimg=0.016',
            '--workers=1', '--metrics=cs8,fid8_coco64', f'--clip-scorer={workspace["scorer"]}', '--snap=2'] + \
        [arg for arg in TINY if arg not in ('--gpus=1', '--workers=0', '--metrics=none', '--snap=1')]
    result = train(workspace, args + ['--gpus=2'])
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert 'leaving out 1 unfinished shard(s)' in result.stdout
    run_dir = only_run_dir(tmp_path / 'out')
    assert os.path.basename(run_dir) == '00000-stylegan-t-shards-gpus2-batch4'
    options = json.load(open(os.path.join(run_dir, 'training_options.json')))
    assert options['training_set_kwargs']['class_name'] == 'training.dataset.ShardDataset'
    assert options['metric_kwargs'] == dict(clip_scorer=workspace['scorer'])
    for metric in ('cs8', 'fid8_coco64'):  # Measured at the snapshots: the zero-shot FID and the CLIP score.
        records = [json.loads(line) for line in open(os.path.join(run_dir, f'metric-{metric}.jsonl'))]
        assert len(records) == 3 and all(math.isfinite(r['results'][metric]) for r in records)
    captions = open(os.path.join(run_dir, 'captions.txt')).read().split('\n')
    assert {line for line in captions if line} <= set(workspace['shards']['good'].values())
    stats = read_stats(run_dir)
    assert [round(s['Progress/kimg']['mean'] * 1000) for s in stats] == [4, 8, 12, 16]
    # Each tick records the corrupt samples skipped per process and iteration; 16 images per process cover a pass.
    skipped = sum(s['Data/skipped_corrupt']['num'] * s['Data/skipped_corrupt']['mean'] for s in stats)
    assert round(skipped) >= 1
    G = load_snapshot(newest_snapshot(run_dir))['G_ema']
    assert G.img_resolution == 16 and G.c_dim == stylegan_t_standins.CLIP_CONFIG['embed_dim']


def test_default_metric_is_dropped_for_streams(workspace, tmp_path):
    result = train(workspace, ['--outdir', tmp_path / 'out', '--data', workspace['shards']['folder'], '--gpus=1',
                               '--batch=4', '--cfg=stylegan-t', '--img-resolution=16', '--dry-run'])
    assert result.returncode == 0, result.stderr
    assert '--metrics: no fid50k_full on streamed shards' in result.stdout  # With a line saying so.
    assert '"metrics": []' in result.stdout


@pytest.mark.parametrize('args, message', [
    ([], 'pass it (e.g. --img-resolution=64)'),
    (['--img-resolution=16', '--metrics=fid50k_full'], '--metrics=fid50k_full reads the training set by index'),
    (['--img-resolution=16', '--cfg=stylegan2', '--gamma=1'], 'streamed for --cfg=stylegan-t*'),
])
def test_streaming_refusals(workspace, tmp_path, args, message):
    cfg = [] if any(arg.startswith('--cfg') for arg in args) else ['--cfg=stylegan-t']
    result = train(workspace, ['--outdir', tmp_path / 'out', '--data', workspace['shards']['folder'], '--gpus=1',
                               '--batch=4', '--dry-run'] + cfg + args)
    one_line_error(result, message)


def test_folder_of_unfinished_shards_is_refused(workspace, tmp_path):
    shard_fixtures.write_shard(str(tmp_path / 'growing' / '00000.tar'),
                               [dict(key='0', caption='c', image=shard_fixtures.image_bytes((9, 9, 9)))], finished=False)
    result = train(workspace, ['--outdir', tmp_path / 'out', '--data', tmp_path / 'growing', '--cfg=stylegan-t',
                               '--gpus=1', '--batch=4', '--img-resolution=16'])
    one_line_error(result, 'has no finished shards')

# ----------------------------------------------------------------------------
# Train modes.


def _parameters(net, prefix=''):
    return {name: param for name, param in net.named_parameters() if name.startswith(prefix)}


@pytest.fixture(scope='module')
def base64(workspace):
    """A 64x64 captioned StyleGAN-T snapshot, one iteration old."""
    out = workspace['root'] / 'base64'
    result = train(workspace, ['--outdir', out, '--data', workspace['data'], '--img-resolution=64', '--kimg=0.004'] + TINY)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return newest_snapshot(only_run_dir(out))


def test_text_encoder_mode_changes_only_the_text_tower(workspace, base64, tmp_path):
    result = train(workspace, ['--outdir', tmp_path / 'out', '--data', workspace['data'], '--img-resolution=64',
                               '--kimg=0.004', '--train-mode=text-encoder', f'--resume={base64}'] + TINY)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run_dir = only_run_dir(tmp_path / 'out')
    options = json.load(open(os.path.join(run_dir, 'training_options.json')))
    assert options['G_train_prefixes'] == ['text_encoder.'] and options['G_opt_kwargs']['lr'] == 3e-6
    before, after = load_snapshot(base64)['G'], load_snapshot(newest_snapshot(run_dir))['G']
    assert after.text_encoder.trainable and not before.text_encoder.trainable
    tower = _parameters(after, 'text_encoder.')
    old = dict(list(before.named_parameters()) + list(before.named_buffers()))
    changed = [name for name, param in tower.items() if not torch.equal(param, old[name])]
    assert changed, 'no text-tower weight moved'
    for name, param in _parameters(after).items():
        if not name.startswith('text_encoder.'):
            assert torch.equal(param, old[name]), name


def test_freeze64_trains_only_the_layers_above_64(workspace, base64, tmp_path):
    result = train(workspace, ['--outdir', tmp_path / 'out', '--data', workspace['data'], '--img-resolution=128',
                               '--kimg=0.008', '--train-mode=freeze64', f'--resume={base64}'] + TINY)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run_dir = only_run_dir(tmp_path / 'out')
    before = load_snapshot(base64)['G']
    first, second = [load_snapshot(os.path.join(run_dir, name))['G'] for name in
                     ('network-snapshot-000000.pkl', 'network-snapshot-000000.008.pkl')]
    assert second.img_resolution == 128
    old = dict(before.named_parameters())
    for name, param in _parameters(second).items():
        if name.startswith('synthesis.b128.') or '.torgb.' in name:
            continue
        assert torch.equal(param, old[name]), name  # Mapping and the blocks up to 64x64: bit-identical.
    moved = [name for name, param in _parameters(second).items()
             if not torch.equal(param, _parameters(first)[name])]
    assert any(name.startswith('synthesis.b128.') for name in moved)
    assert any('.torgb.' in name and not name.startswith('synthesis.b128.') for name in moved)
    assert all(name.startswith('synthesis.b128.') or '.torgb.' in name for name in moved)


@pytest.mark.parametrize('args, message', [
    (['--img-resolution=64'], 'trains the layers above 64x64'),
    (['--img-resolution=128'], 'pass it as --resume=PKL'),
    (['--img-resolution=128', '--resume=SELF16'], 'holds a 16x16 StyleGAN-T generator'),
])
def test_freeze64_refusals(workspace, tmp_path, args, message):
    if '--resume=SELF16' in args:
        out = tmp_path / 'small'
        result = train(workspace, ['--outdir', out, '--data', workspace['data'], '--img-resolution=16', '--kimg=0.004']
                       + TINY)
        assert result.returncode == 0, result.stderr[-2000:]
        args = [arg if arg != '--resume=SELF16' else f'--resume={newest_snapshot(only_run_dir(out))}' for arg in args]
    result = train(workspace, ['--outdir', tmp_path / 'out', '--data', workspace['data'], '--train-mode=freeze64',
                               '--cfg=stylegan-t', '--gpus=1', '--batch=4', '--metrics=none', '--dry-run'] + args)
    one_line_error(result, message)
