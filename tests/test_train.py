"""End-to-end tests of train.py on the CPU: outputs, refusals, exact resume, crash safety, distribution."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

import legacy
from helpers import run_python

# Tiny networks, 2 iterations per 0.008 kimg at batch 4, a tick (and snapshot) after every iteration.
TINY = ['--gpus=1', '--batch=4', '--batch-gpu=2', '--gamma=1', '--cbase=128', '--cmax=16', '--map-depth=1',
        '--mbstd-group=2', '--workers=0', '--tick=0.004', '--snap=1', '--metrics=none']


def write_dataset(path, num_images=16, res=16, labels=False, seed=0):
    """Zip of PNGs: noisy squares of a few colours (a simple known distribution)."""
    rnd = np.random.RandomState(seed)
    colours = np.array([[220, 40, 40], [40, 200, 60], [50, 70, 230]], dtype=np.float32)
    entries = []
    with zipfile.ZipFile(path, 'w') as zf:
        for idx in range(num_images):
            cls = idx % len(colours)
            img = np.full([res, res, 3], 20, dtype=np.float32)
            lo = rnd.randint(0, res // 2)
            img[lo:lo + res // 2, lo:lo + res // 2] = colours[cls]
            img = np.clip(img + rnd.normal(0, 8, size=img.shape), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            PIL.Image.fromarray(img).save(buf, format='png')
            fname = f'{idx:05d}.png'
            zf.writestr(fname, buf.getvalue())
            entries.append([fname, cls])
        if labels:
            zf.writestr('dataset.json', json.dumps({'labels': entries}))
    return str(path)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('data') / 'squares-16x16.zip')


def train(args, env=None, timeout=900):
    return run_python(['train.py'] + [str(arg) for arg in args], env=env, timeout=timeout)


def newest_snapshot(run_dir):
    """The pickle of a run directory's newest complete snapshot pair."""
    from training import snapshots
    return snapshots.find_complete_pair(str(run_dir), report=lambda line: None)[0]


def only_run_dir(outdir):
    entries = os.listdir(outdir)
    assert len(entries) == 1, entries
    return os.path.join(outdir, entries[0])


def load_snapshot(path):
    with open(path, 'rb') as f:
        return legacy.load_network_pkl(f)


def assert_same_networks(a, b, exact=True):
    for key in ('G', 'D', 'G_ema'):
        tensors_a = dict(list(a[key].named_parameters()) + list(a[key].named_buffers()))
        tensors_b = dict(list(b[key].named_parameters()) + list(b[key].named_buffers()))
        assert tensors_a.keys() == tensors_b.keys()
        for name in tensors_a:
            if exact:
                assert torch.equal(tensors_a[name], tensors_b[name]), f'{key}.{name} differs'


def read_stats(run_dir):
    with open(os.path.join(run_dir, 'stats.jsonl')) as f:
        return [json.loads(line) for line in f]

# ----------------------------------------------------------------------------


def test_dry_run_writes_nothing(tmp_path, dataset):
    outdir = tmp_path / 'runs'
    result = train(['--outdir', outdir, '--cfg=stylegan2', '--data', dataset, '--dry-run'] + TINY)
    assert result.returncode == 0, result.stderr
    assert 'Dry run; exiting.' in result.stdout
    assert '"class_name": "training.networks_stylegan2.Generator"' in result.stdout
    assert 'stylegan2-squares-16x16-gpus1-batch4-gamma1' in result.stdout
    assert not outdir.exists()


def _refusal_cases(tmp_path, dataset):
    small = write_dataset(tmp_path / 'small-8x8.zip', res=8)
    return {
        'batch not divisible': (['--batch=6', '--gpus=4'], '--batch must be a multiple of --gpus'),
        'batch_gpu not dividing': (['--batch=8', '--batch-gpu=3', '--mbstd-group=1'], 'times --batch-gpu'),
        'missing labels': (['--cond=1'], 'labels'),
        'unknown dataset': (['--data', str(tmp_path / 'nope.zip')], 'does not exist'),
        'unknown metric': (['--metrics=fid51x'], '--metrics'),
        'resume of a different resolution': (['--resume', 'SNAPSHOT8'], 'dataset is 16x16', small),
        'continue a run with other options': (['--resume', 'RUNDIR'], 'was trained with'),
        'continue a directory without state': (['--resume', str(tmp_path)], 'not a training run directory'),
    }


@pytest.mark.parametrize('case', ['batch not divisible', 'batch_gpu not dividing', 'missing labels',
                                  'unknown dataset', 'unknown metric', 'resume of a different resolution',
                                  'continue a run with other options', 'continue a directory without state'])
def test_bad_options_are_refused_in_one_line(tmp_path, dataset, case):
    outdir = tmp_path / 'runs'
    spec = _refusal_cases(tmp_path, dataset)[case]
    extra, message = spec[0], spec[1]
    if 'SNAPSHOT8' in extra:
        extra = ['--resume', _make_snapshot_8x8(tmp_path)]
    if 'RUNDIR' in extra:
        extra = ['--resume', _make_interrupted_run_dir(tmp_path)]
    args = ['--outdir', outdir, '--cfg=stylegan2', '--data', dataset] + TINY + extra
    result = train(args)
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith('Error:')]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr
    assert not outdir.exists()


def _make_snapshot_8x8(tmp_path):
    from training import networks_stylegan2
    G = networks_stylegan2.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3,
                                     mapping_kwargs=dict(num_layers=1), channel_base=64, channel_max=8)
    D = networks_stylegan2.Discriminator(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=8)
    path = tmp_path / 'snapshot-8x8.pkl'
    with open(path, 'wb') as f:
        pickle.dump(dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=None), f)
    return str(path)


def _make_interrupted_run_dir(tmp_path):
    run_dir = tmp_path / 'old-runs' / '00000-stylegan2-other'
    run_dir.mkdir(parents=True)
    (run_dir / 'training_options.json').write_text(json.dumps({'batch_size': 64}))
    (run_dir / 'network-snapshot-000004.pkl').write_bytes(b'')
    (run_dir / 'training-state-000004.pt').write_bytes(b'')
    return str(run_dir)


CRASH_ON_SECOND_SNAPSHOT = r'''
import os, pickle, runpy, sys
real_dump = pickle.dump
count = [0]
def dump(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and 'G_ema' in obj:
        count[0] += 1
        if count[0] == 2:  # Killed half-way through writing the second snapshot.
            data = pickle.dumps(obj)
            f.write(data[:len(data) // 2])
            f.flush()
            os._exit(9)
    return real_dump(obj, f, *args, **kwargs)
pickle.dump = dump
sys.argv = ['train.py'] + sys.argv[1:]
runpy.run_path('train.py', run_name='__main__')
'''


def test_stylegan2_outputs_crash_safety_and_exact_resume(tmp_path, dataset):
    """A run killed while writing its second snapshot keeps the first one intact; continuing the run directory
    from it ends with exactly the parameters of an uninterrupted run of the same length."""
    common = ['--cfg=stylegan2', '--data', dataset, '--aug=ada', '--kimg=0.016'] + TINY

    # Interrupted run: 1 iteration, snapshot, 1 more iteration, killed while writing the second snapshot.
    crashed_out = tmp_path / 'crashed'
    crashing_train = tmp_path / 'crashing_train.py'  # A script file: it runs forked from the test runner.
    crashing_train.write_text(CRASH_ON_SECOND_SNAPSHOT)
    result = run_python([str(crashing_train), '--outdir', str(crashed_out)] + [str(a) for a in common])
    assert result.returncode == 9, (result.stdout + result.stderr)[-3000:]
    run_dir = only_run_dir(crashed_out)
    assert os.path.basename(run_dir) == '00000-stylegan2-squares-16x16-gpus1-batch4-gamma1'
    snapshot = os.path.join(run_dir, 'network-snapshot-000000.pkl')
    state_path = os.path.join(run_dir, 'training-state-000000.pt')
    first = load_snapshot(snapshot)  # Intact and loadable.
    state = torch.load(state_path, weights_only=False)
    assert state['cur_nimg'] == 4 and state['batch_idx'] == 1
    partial = [name for name in os.listdir(run_dir) if '.tmp' in name]
    assert len(partial) == 1 and partial[0].startswith('network-snapshot-000000.008.pkl.tmp-'), partial
    for name in ('training_options.json', 'log.txt', 'stats.jsonl', 'reals.png', 'fakes_init.png',
                 'fakes000000.png'):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    assert [name for name in os.listdir(run_dir) if name.startswith('events.out.tfevents.')]
    assert first['training_set_kwargs']['path'] == dataset
    assert first['augment_pipe'] is not None and not first['G'].training
    assert all(not p.requires_grad for p in first['G'].parameters())

    # Entries logged after the snapshot it continues from (as when killed between ticks) are dropped once.
    with open(os.path.join(run_dir, 'stats.jsonl'), 'a') as f:
        f.write(json.dumps({'Progress/kimg': {'num': 1, 'mean': 0.008, 'std': 0}, 'stale': True}) + '\n')
    with open(os.path.join(run_dir, 'metric-fid50k_full.jsonl'), 'w') as f:
        for name in ('network-snapshot-000000.pkl', 'network-snapshot-000000.008.pkl'):
            f.write(json.dumps({'results': {'fid50k_full': 1}, 'metric': 'fid50k_full', 'snapshot_pkl': name}) + '\n')

    # Continue the run directory to the end.
    result = train(['--outdir', crashed_out, '--resume', run_dir] + common)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert os.listdir(crashed_out) == [os.path.basename(run_dir)], 'continued in the same directory'
    assert not [name for name in os.listdir(run_dir) if '.tmp' in name], 'partial files cleaned up'
    with open(os.path.join(run_dir, 'log.txt')) as f:
        log = f.read()
    assert log.count('Training for 0.016 kimg') == 2 and 'tick 1' in log
    stats = read_stats(run_dir)
    assert [round(s['Progress/kimg']['mean'] * 1000) for s in stats] == [4, 8, 12, 16]
    assert not any('stale' in s for s in stats)
    with open(os.path.join(run_dir, 'metric-fid50k_full.jsonl')) as f:
        assert [json.loads(line)['snapshot_pkl'] for line in f] == ['network-snapshot-000000.pkl']
    for phase in ('Gmain', 'Greg', 'Dmain', 'Dreg'):  # Every phase runs in the first iteration, timed in ms.
        assert stats[0][f'Timing/{phase}']['num'] == 1 and stats[0][f'Timing/{phase}']['mean'] > 0
    resumed = load_snapshot(newest_snapshot(run_dir))
    assert_same_networks(load_snapshot(snapshot), first)  # The first snapshot was never replaced.

    # Uninterrupted run of the same length.
    straight_out = tmp_path / 'straight'
    result = train(['--outdir', straight_out] + common)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    straight = load_snapshot(newest_snapshot(only_run_dir(straight_out)))

    assert_same_networks(resumed, straight)
    assert torch.equal(resumed['augment_pipe'].p, straight['augment_pipe'].p)
    assert float(straight['augment_pipe'].p) != 0, 'ADA adjusted p after 4 iterations'
    with pytest.raises(AssertionError):
        assert_same_networks(first, straight)

# ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize('cfg', ['stylegan3-t', 'stylegan3-r'])
def test_stylegan3_run_writes_outputs(tmp_path, dataset, cfg):
    outdir = tmp_path / 'runs'
    result = train(['--outdir', outdir, f'--cfg={cfg}', '--data', dataset, '--kimg=0.008', '--aug=noaug'] + TINY)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run_dir = only_run_dir(outdir)
    snapshot = load_snapshot(os.path.join(run_dir, 'network-snapshot-000000.pkl'))
    assert type(snapshot['G']).__name__ == 'Generator' and snapshot['augment_pipe'] is None
    with open(os.path.join(run_dir, 'training_options.json')) as f:
        options = json.load(f)
    assert options['G_kwargs']['class_name'] == 'training.networks_stylegan3.Generator'
    if cfg == 'stylegan3-r':
        assert options['G_kwargs']['conv_kernel'] == 1 and options['loss_kwargs']['blur_init_sigma'] == 10
    for name in ('log.txt', 'stats.jsonl', 'reals.png', 'fakes_init.png', 'fakes000000.png',
                 'training-state-000000.pt'):
        assert os.path.isfile(os.path.join(run_dir, name)), name


def test_creps_recipe(tmp_path, dataset):
    outdir = tmp_path / 'runs'
    args = ['--outdir', outdir, '--cfg=creps', '--data', dataset, '--dry-run'] + [a for a in TINY if 'map-depth' not in a]
    result = train(args)
    assert result.returncode == 0, result.stderr
    assert 'creps-squares-16x16-gpus1-batch4-gamma1' in result.stdout
    options = json.loads(result.stdout[result.stdout.index('{'):result.stdout.index('\n}\n') + 2])
    G_kwargs, loss_kwargs = options['G_kwargs'], options['loss_kwargs']
    assert G_kwargs['class_name'] == 'training.networks_creps.Generator'
    assert (G_kwargs['channel_base'], G_kwargs['channel_max']) == (256, 32)  # Twice --cbase and --cmax.
    assert G_kwargs['mapping_kwargs'] == dict(num_layers=8)
    assert options['D_kwargs']['class_name'] == 'training.networks_stylegan2.Discriminator'
    assert (options['D_kwargs']['channel_base'], options['D_kwargs']['channel_max']) == (128, 16)
    assert options['G_opt_kwargs']['lr'] == 0.002 and options['G_reg_interval'] == 4
    assert loss_kwargs['pl_weight'] == 2 and loss_kwargs['style_mixing_prob'] == 0.9
    assert 'pl_no_weight_grad' not in loss_kwargs and 'fused_modconv_default' not in G_kwargs  # Convolutions only.
    assert not outdir.exists()

    result = train(args + ['--fp32=1'])
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout[result.stdout.index('{'):result.stdout.index('\n}\n') + 2])
    assert options['G_kwargs']['fc_clamp'] is None and 'conv_clamp' not in options['G_kwargs']


def test_creps_trains_snapshots_and_resumes_exactly(tmp_path, dataset):
    """A CREPS run stopped after 2 iterations and continued to 4 ends as a run of 4; its snapshots render
    at other scales."""
    from training import networks_creps
    common = ['--cfg=creps', '--data', dataset, '--aug=ada'] + TINY
    first_out = tmp_path / 'first'
    result = train(['--outdir', first_out, '--kimg=0.008'] + common)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run_dir = only_run_dir(first_out)
    first = load_snapshot(newest_snapshot(run_dir))
    G = first['G_ema']
    assert networks_creps.is_creps(G) and type(first['D']).__name__ == 'Discriminator'
    assert G.num_ws == 7 and G.mapping.num_layers == 1
    with torch.no_grad(), networks_creps.rendering_scale(G, 2):
        assert G(torch.randn([2, G.z_dim]), torch.zeros([2, 0])).shape == (2, 3, 32, 32)

    result = train(['--outdir', first_out, '--resume', run_dir, '--kimg=0.016'] + common)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert [round(s['Progress/kimg']['mean'] * 1000) for s in read_stats(run_dir)] == [4, 8, 12, 16]
    resumed = load_snapshot(newest_snapshot(run_dir))

    straight_out = tmp_path / 'straight'
    result = train(['--outdir', straight_out, '--kimg=0.016'] + common)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    straight = load_snapshot(newest_snapshot(only_run_dir(straight_out)))
    assert_same_networks(resumed, straight)
    with pytest.raises(AssertionError):
        assert_same_networks(first, straight)


@pytest.mark.slow
def test_resume_from_pickle_continues_kimg_and_restarts_ada_p(tmp_path, dataset):
    """--resume=PKL --resume-kimg=3 reports from kimg 3; ADA's p starts from 0 again, as in the official recipe,
    whatever p the pickle's augment pipe had reached."""
    first_out = tmp_path / 'first'
    common = ['--cfg=stylegan2', '--data', dataset, '--aug=ada', '--kimg=0.016'] + TINY
    result = train(['--outdir', first_out] + common)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    snapshot = load_snapshot(newest_snapshot(only_run_dir(first_out)))
    snapshot['augment_pipe'].p.fill_(0.5)
    snapshot_path = tmp_path / 'p-half.pkl'
    with open(snapshot_path, 'wb') as f:
        pickle.dump(snapshot, f)

    second_out = tmp_path / 'second'
    result = train(['--outdir', second_out, '--resume', snapshot_path, '--resume-kimg=3'] +
                   ['--cfg=stylegan2', '--data', dataset, '--aug=ada', '--kimg=3.004'] + TINY)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run_dir = only_run_dir(second_out)
    stats = read_stats(run_dir)
    assert stats[0]['Progress/kimg']['mean'] == pytest.approx(3.004)
    assert stats[0]['Progress/augment']['mean'] < 0.01
    assert os.path.isfile(os.path.join(run_dir, 'network-snapshot-000003.pkl'))


@pytest.mark.slow
def test_keep_snapshots_and_wgangp(tmp_path, dataset):
    outdir = tmp_path / 'runs'
    result = train(['--outdir', outdir, '--cfg=stylegan2', '--data', dataset, '--aug=noaug', '--loss=wgangp',
                    '--kimg=0.012', '--keep-snapshots=1'] + TINY)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run_dir = only_run_dir(outdir)
    assert run_dir.endswith('-gamma1-wgangp')
    assert sorted(name for name in os.listdir(run_dir) if name.endswith(('.pkl', '.pt'))) == \
        ['network-snapshot-000000.012.pkl', 'training-state-000000.012.pt']
    assert 'Loss/gp_penalty' in read_stats(run_dir)[0]


@pytest.mark.slow
@pytest.mark.parametrize('launcher', ['spawn', 'torchrun'])
def test_two_processes_match_one(tmp_path, dataset, launcher):
    """gloo with 2 CPU processes against 1 process, same total batch and seed, one iteration.

    The minibatch-std group is 1 so that D treats every sample on its own, whatever the split. G's step comes
    first and sees the same state in both runs, so its gradients agree to float precision; but Adam's first step
    moves every parameter by about lr * sign(gradient), so the few gradients that are float noise around zero
    (their sign depends on the summation order, e.g. on the thread count torchrun sets) may move their parameters
    differently: at most 1 in 10^4. D's step then sees fakes made after each process updated StyleGAN3's
    magnitude EMAs with its own samples (per-process statistics, as in the official code), so a few of its
    entries may move slightly differently."""
    common = ['--cfg=stylegan3-t', '--data', dataset, '--aug=noaug', '--kimg=0.004', '--batch=4', '--batch-gpu=2',
              '--gamma=1', '--cbase=128', '--cmax=16', '--map-depth=1', '--mbstd-group=1', '--workers=0',
              '--tick=1', '--snap=1', '--metrics=none']
    results = dict()
    for gpus in (1, 2):
        outdir = tmp_path / f'gpus{gpus}'
        args = ['--outdir', outdir, f'--gpus={gpus}'] + common
        if launcher == 'torchrun' and gpus == 2:
            result = run_python(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', 'train.py'] +
                                [str(arg) for arg in args], timeout=900)
        else:
            result = train(args)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        results[gpus] = load_snapshot(os.path.join(only_run_dir(outdir), 'network-snapshot-000000.pkl'))
    with open(os.path.join(only_run_dir(tmp_path / 'gpus2'), 'log.txt')) as f:
        assert 'Distributing across 2 processes' in f.read()

    for key, max_fraction in (('G', 1e-4), ('D', 0.01)):
        one = dict(results[1][key].named_parameters())
        two = dict(results[2][key].named_parameters())
        differing = sum(int(((one[name] - two[name]).abs() > 1e-6).sum()) for name in one)
        total = sum(p.numel() for p in one.values())
        assert differing <= max_fraction * total, f'{key}: {differing} of {total} entries differ'

# ----------------------------------------------------------------------------


def test_metrics_at_snapshots(tmp_path, dataset):
    from metric_standins import write_standin_detectors
    inception, _ = write_standin_detectors(tmp_path)
    outdir = tmp_path / 'runs'
    args = ['--outdir', outdir, '--cfg=stylegan2', '--data', dataset] + TINY + ['--kimg=0.008', '--metrics=fid16_full,kid16']
    result = train(args, env=dict(STYLEGAN_INCEPTION_PKL=str(inception), DNNLIB_CACHE_DIR=str(tmp_path / 'cache')))
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(outdir)
    for metric in ('fid16_full', 'kid16'):
        with open(os.path.join(run_dir, f'metric-{metric}.jsonl')) as f:
            records = [json.loads(line) for line in f]
        assert len(records) >= 1 and np.isfinite(records[-1]['results'][metric])
        assert records[-1]['snapshot_pkl'].startswith('network-snapshot-')


def test_unreachable_detector_is_refused_before_training(tmp_path, dataset):
    outdir = tmp_path / 'runs'
    args = ['--outdir', outdir, '--cfg=stylegan2', '--data', dataset] + TINY + ['--metrics=fid16_full']
    result = train(args, env=dict(STYLEGAN_INCEPTION_PKL=str(tmp_path / 'no-such-inception.pkl')))
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith('Error:')]
    assert len(error_lines) == 1 and 'Inception' in error_lines[0] and 'STYLEGAN_INCEPTION_PKL' in error_lines[0]
    assert not outdir.exists()


def test_ada_p_rises_when_d_overfits_and_stays_zero_without_augmentation(tmp_path):
    # Two images: D separates reals from fakes almost at once, so sign(D(reals)) exceeds the target.
    tiny = write_dataset(tmp_path / 'two-16x16.zip', num_images=2)
    ps = {}
    for aug in ('ada', 'noaug'):
        outdir = tmp_path / aug
        result = train(['--outdir', outdir, '--cfg=stylegan2', '--data', tiny, f'--aug={aug}', '--kimg=0.064',
                        '--target=0.1'] + TINY + ['--tick=0.016', '--snap=100'])  # Snapshots at the start and end only.
        assert result.returncode == 0, result.stderr[-3000:]
        ps[aug] = [s['Progress/augment']['mean'] for s in read_stats(only_run_dir(outdir))]
        snapshot = load_snapshot(os.path.join(only_run_dir(outdir), 'network-snapshot-000000.pkl'))
        if aug == 'noaug':
            assert snapshot['augment_pipe'] is None
    assert ps['ada'][-1] > ps['ada'][0] and ps['ada'][-1] > 0
    assert all(p == 0 for p in ps['noaug'])


def _mean_colour_distance(images, target_rgb):
    return float(np.abs(images.reshape(-1, 3).mean(0) - target_rgb).sum())


@pytest.mark.slow
def test_training_moves_fakes_toward_the_reals(tmp_path, dataset):
    """The reals are dark images with one bright saturated square; a random G starts near mid-grey.
    After a short CPU run the mean colour of G_ema's fakes must have moved most of the way to the
    reals' mean colour: a broken loss (e.g. a flipped sign) or optimiser moves it the other way or not at all."""
    with zipfile.ZipFile(dataset) as zf:
        reals = np.stack([np.asarray(PIL.Image.open(io.BytesIO(zf.read(name)))) for name in zf.namelist()
                          if name.endswith('.png')]).astype(np.float64)
    target = reals.reshape(-1, 3).mean(0)
    outdir = tmp_path / 'runs'
    args = [arg for arg in TINY[:-3] if not arg.startswith('--batch-gpu')] + ['--batch-gpu=4']  # One round: faster.
    result = train(['--outdir', outdir, '--cfg=stylegan2', '--data', dataset, '--aug=noaug', '--kimg=1',
                    '--glr=0.005', '--dlr=0.005'] + args + ['--tick=0.5', '--snap=100', '--metrics=none'],
                   timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(outdir)
    snapshots = sorted(f for f in os.listdir(run_dir) if f.startswith('network-snapshot-'))
    G = load_snapshot(os.path.join(run_dir, snapshots[-1]))['G_ema']
    init = np.asarray(PIL.Image.open(os.path.join(run_dir, 'fakes_init.png'))).astype(np.float64)
    torch.manual_seed(0)
    with torch.no_grad():
        fakes = G(torch.randn([64, G.z_dim]), torch.zeros([64, 0]), noise_mode='const')
    fakes = (fakes.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).numpy()
    before = _mean_colour_distance(init, target)
    after = _mean_colour_distance(fakes, target)
    assert after < 0.5 * before, f'mean colour distance {before:.1f} -> {after:.1f}'

# ----------------------------------------------------------------------------
# --d-steps.

COUNTING_TRAIN = r'''
import atexit, collections, json, runpy, sys
import torch
from training import training_loop

phases, steps = collections.Counter(), collections.Counter()
real_run_phase = training_loop.run_phase
def run_phase(phase, **kwargs):
    phases[phase.name] += 1
    before = sum(steps.values())
    real_run_phase(phase=phase, **kwargs)
    assert sum(steps.values()) == before + 1  # Every phase run is one optimiser step.
training_loop.run_phase = run_phase
real_step = torch.optim.Adam.step
def step(self, *args, **kwargs):
    steps[id(self)] += 1
    return real_step(self, *args, **kwargs)
torch.optim.Adam.step = step
atexit.register(lambda: print('COUNTS ' + json.dumps(dict(phases))))
sys.argv = ['train.py'] + sys.argv[1:]
runpy.run_path('train.py', run_name='__main__')
'''


@pytest.mark.parametrize('loss, d_steps', [('wgangp', 5), ('stylegan2', 3)])
def test_d_steps_runs_that_many_d_updates_per_g_update(tmp_path, dataset, loss, d_steps):
    counting_train = tmp_path / 'counting_train.py'  # A script file: it runs forked from the test runner.
    counting_train.write_text(COUNTING_TRAIN)
    result = run_python([str(counting_train), '--outdir', str(tmp_path / 'runs'), '--cfg=stylegan2', '--data', dataset, '--aug=noaug',
                         '--kimg=0.06', f'--loss={loss}', f'--d-steps={d_steps}'] + TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = json.loads(result.stdout.split('COUNTS ')[-1].splitlines()[0])
    iterations = 60 // 4
    g_main = counts.get('Gmain', 0) + counts.get('Gboth', 0)
    assert counts['Dmain'] == iterations
    assert g_main == -(-iterations // d_steps)  # Iterations 0, d_steps, 2 * d_steps, ...
    assert counts['Dmain'] >= d_steps * (g_main - 1) and counts['Dmain'] <= d_steps * g_main
    if loss == 'stylegan2':
        assert counts['Greg'] == -(-iterations // (4 * d_steps))  # Lazy G regularisation every 4th G update.
    run_dir = only_run_dir(tmp_path / "runs")
    options = json.load(open(os.path.join(run_dir, 'training_options.json')))
    assert options['d_steps'] == d_steps
    # Each snapshot shows G_ema (official name) and the raw G on the same latents, also in TensorBoard.
    names = os.listdir(run_dir)
    assert 'fakes000000.png' in names and 'fakes_raw000000.png' in names
    ema, raw = (np.asarray(PIL.Image.open(os.path.join(run_dir, n))) for n in ('fakes000000.png', 'fakes_raw000000.png'))
    assert ema.shape == raw.shape and not np.array_equal(ema, raw)
    events = [n for n in names if n.startswith('events.out.tfevents')]
    if events:
        assert b'Samples/G_ema | G' in open(os.path.join(run_dir, events[0]), 'rb').read()
