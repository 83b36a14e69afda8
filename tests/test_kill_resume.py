"""A tiny training run killed at many instants (inside and around every write of a snapshot and of its
training state, and in the middle of a training step) resumes to parameters bit-identical to an
uninterrupted run of the same length."""

import concurrent.futures
import os
import pickle

import pytest
import torch

from helpers import run_python
from test_train import TINY, write_dataset
from training import snapshots

# Runs in place of `python train.py ...`: kills the process (exit status 9, no clean-up) at one instant.
KILLING_TRAIN = r'''
import io, os, runpy, sys
import dnnlib.util
where, count, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real_write = dnnlib.util.write_atomically
seen = dict()

def kill():
    sys.stdout.flush()
    os._exit(9)

def write_atomically(path, write_fn, fsync=False):
    name = os.path.basename(path)
    kind = 'pkl' if name.startswith('network-snapshot-') else 'state' if name.startswith('training-state-') else None
    seen[kind] = seen.get(kind, 0) + 1
    if kind != where or seen[kind] != count:
        return real_write(path, write_fn, fsync)
    if phase == 'mid':  # Half the bytes in the temporary file.
        buffer = io.BytesIO()
        write_fn(buffer)
        data = buffer.getvalue()
        def half(f):
            f.write(data[:len(data) // 2])
            f.flush()
            kill()
        return real_write(path, half, fsync)
    if phase == 'before-rename':  # The whole temporary file, not yet renamed into place.
        with open(f'{path}.tmp-{os.getpid()}-0badf00d', 'wb') as f:
            write_fn(f)
        kill()
    real_write(path, write_fn, fsync)
    kill()  # phase == 'after-rename'
dnnlib.util.write_atomically = write_atomically

if where == 'step':
    from training import loss as loss_module
    real_accumulate = loss_module.StyleGAN2Loss.accumulate_gradients
    def accumulate_gradients(self, *args, **kwargs):
        seen['step'] = seen.get('step', 0) + 1
        if seen['step'] == count:
            kill()
        return real_accumulate(self, *args, **kwargs)
    loss_module.StyleGAN2Loss.accumulate_gradients = accumulate_gradients

sys.argv = ['train.py'] + sys.argv[4:]
runpy.run_path('train.py', run_name='__main__')
'''

# (what, which occurrence, phase): the second snapshot of the run is the one with a complete pair before it.
ALL_INSTANTS = [
    ('pkl', 1, 'mid'),
    ('state', 1, 'mid'),
    ('pkl', 2, 'mid'),
    ('pkl', 2, 'before-rename'),
    ('pkl', 2, 'after-rename'),     # A new snapshot without its state: the previous pair must be used.
    ('state', 2, 'mid'),
    ('state', 2, 'before-rename'),
    ('state', 2, 'after-rename'),
    ('step', 9, 'now'),             # In the middle of an iteration between snapshots.
]
# By default a pickle without its state, a state not yet in place, and a kill mid-iteration (the suite's time
# budget); KILL_INSTANTS=all runs every instant.
INSTANTS = ALL_INSTANTS if os.environ.get('KILL_INSTANTS') == 'all' else [
    ('pkl', 2, 'after-rename'), ('state', 2, 'before-rename'), ('step', 9, 'now')]


def final_networks(run_dir):
    found = snapshots.find_complete_pair(run_dir, report=lambda line: None)
    assert found is not None
    with open(found[0], 'rb') as f:
        return pickle.load(f), found[2]['cur_nimg']


def assert_identical(a, b, label):
    for key in ('G', 'D', 'G_ema', 'augment_pipe'):
        tensors_a = dict(a[key].named_parameters()) | dict(a[key].named_buffers())
        tensors_b = dict(b[key].named_parameters()) | dict(b[key].named_buffers())
        assert tensors_a.keys() == tensors_b.keys()
        differing = [name for name in tensors_a if not torch.equal(tensors_a[name], tensors_b[name])]
        assert not differing, f'{label}: {key} differs in {len(differing)} tensors, e.g. {differing[:3]}'


@pytest.mark.slow
def test_killed_runs_resume_bit_identically(tmp_path):
    data = write_dataset(tmp_path / 'squares-16x16.zip')
    common = ['--cfg=stylegan2', '--data', data, '--aug=ada', '--kimg=0.016'] + TINY
    killing_train = str(tmp_path / 'killing_train.py')  # A script file: it runs forked from the test runner.
    with open(killing_train, 'w') as f:
        f.write(KILLING_TRAIN)

    def interrupted_then_resumed(instant):
        where, count, phase = instant
        outdir = tmp_path / f'{where}-{count}-{phase}'
        killed = run_python([killing_train, where, str(count), phase, '--outdir', str(outdir)] + [str(a) for a in common])
        assert killed.returncode == 9, f'{instant}: not killed ({killed.returncode})\n{killed.stderr[-2000:]}'
        run_dir = os.path.join(outdir, os.listdir(outdir)[0])
        if not any(state for _k, _p, state in snapshots.list_snapshots(run_dir)):
            resumed = run_python(['train.py', '--outdir', str(outdir)] + [str(a) for a in common])  # Nothing to continue.
            run_dir = os.path.join(outdir, sorted(os.listdir(outdir))[-1])
        else:
            resumed = run_python(['train.py', '--outdir', str(outdir), '--resume', run_dir] + [str(a) for a in common])
        assert resumed.returncode == 0, f'{instant}: resume failed\n{resumed.stderr[-3000:]}'
        assert not [name for name in os.listdir(run_dir) if '.tmp-' in name], f'{instant}: partial files left'
        return instant, run_dir, resumed.stdout

    straight_out = tmp_path / 'straight'
    result = run_python(['train.py', '--outdir', str(straight_out)] + [str(a) for a in common])
    assert result.returncode == 0, result.stderr[-3000:]
    straight, straight_nimg = final_networks(os.path.join(straight_out, os.listdir(straight_out)[0]))
    assert straight_nimg == 16
    names = sorted(os.listdir(os.path.join(straight_out, os.listdir(straight_out)[0])))
    assert [n for n in names if n.startswith('network-snapshot-')] == [
        'network-snapshot-000000.008.pkl', 'network-snapshot-000000.012.pkl', 'network-snapshot-000000.016.pkl',
        'network-snapshot-000000.pkl']  # No snapshot replaces another.

    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # Two runs at a time: the machine has two cores.
        for instant, run_dir, stdout in pool.map(interrupted_then_resumed, INSTANTS):
            resumed, nimg = final_networks(run_dir)
            assert nimg == 16, instant
            assert_identical(resumed, straight, instant)
            if instant[0] != 'step' and instant != ('pkl', 1, 'mid') and instant != ('state', 1, 'mid'):
                assert 'Continuing' in stdout, instant
