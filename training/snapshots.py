"""The files of a training run directory: network snapshots, training states beside them, and their
atomic writing, listing and pruning."""

import os
import pickle
import re

import torch

import dnnlib

SNAPSHOT_PATTERN = re.compile(r'network-snapshot-(\d+)\.pkl$')

# ----------------------------------------------------------------------------


def snapshot_pkl_name(kimg):
    return f'network-snapshot-{kimg:06d}.pkl'


def training_state_name(kimg):
    return f'training-state-{kimg:06d}.pt'


def write_atomically(path, write_fn):
    """Calls write_fn(file) on a temporary file beside `path`, then renames it over `path` (data on disk
    first): a crash at any moment leaves either the old file or the complete new one, never a partial one."""
    dnnlib.util.write_atomically(path, write_fn, fsync=True)


def remove_partial_files(run_dir):
    """Deletes the temporary files that a killed process left behind in write_atomically()."""
    dnnlib.util.remove_temporary_files(run_dir)


def list_snapshots(run_dir):
    """[(kimg, pkl path, state path or None)] of a run directory, oldest first."""
    result = []
    for name in os.listdir(run_dir):
        match = SNAPSHOT_PATTERN.fullmatch(name)
        if match is None:
            continue
        kimg = int(match.group(1))
        state = os.path.join(run_dir, training_state_name(kimg))
        result.append((kimg, os.path.join(run_dir, name), state if os.path.isfile(state) else None))
    return sorted(result)


def prune_snapshots(run_dir, keep):
    """Deletes all but the newest `keep` snapshots (and their training states)."""
    snapshots = list_snapshots(run_dir)
    for _kimg, pkl_path, state_path in snapshots[:max(len(snapshots) - keep, 0)]:
        if state_path is not None:
            os.remove(state_path)
        os.remove(pkl_path)


def save_snapshot(run_dir, kimg, networks, training_state, keep_snapshots=None):
    """Writes network-snapshot-<kimg>.pkl and, beside it, the training state (a dict for torch.save);
    the pickle first, so that a state file is only ever beside a complete snapshot."""
    write_atomically(os.path.join(run_dir, snapshot_pkl_name(kimg)), lambda f: pickle.dump(networks, f))
    write_atomically(os.path.join(run_dir, training_state_name(kimg)), lambda f: torch.save(training_state, f))
    if keep_snapshots is not None:
        prune_snapshots(run_dir, keep_snapshots)

# ----------------------------------------------------------------------------
