"""The files of a training run directory: network snapshots with their training states, written as one
atomic unit, listed, verified and pruned.

A snapshot is the pair `network-snapshot-<stem>.pkl` + `training-state-<stem>.pt`. The stem is the official
`<kimg:06d>` (whole thousands of images shown), and `<kimg:06d>.<remainder:03d>` for a later snapshot that
falls in the same thousand (runs with ticks shorter than 1 kimg): no snapshot ever replaces another. The
pickle is written first and the state last; the state names the pickle and records its SHA-256, so a kill
at any instant leaves the previous complete pair or the new complete pair, and `find_complete_pair` tells a
complete pair from a partial one.
"""

import hashlib
import io
import os
import pickle
import re

import numpy as np
import torch

import dnnlib

SNAPSHOT_PATTERN = re.compile(r'network-snapshot-(\d{6,})(?:\.(\d{3}))?\.pkl')

# ----------------------------------------------------------------------------


def snapshot_stem(cur_nimg, previous_nimg=None):
    """The stem of a snapshot taken at `cur_nimg` images; `previous_nimg`: the run's previous snapshot."""
    kimg = cur_nimg // 1000
    if previous_nimg is not None and previous_nimg // 1000 == kimg and previous_nimg != cur_nimg:
        return f'{kimg:06d}.{cur_nimg % 1000:03d}'
    return f'{kimg:06d}'


def snapshot_pkl_name(kimg_or_stem):
    stem = kimg_or_stem if isinstance(kimg_or_stem, str) else f'{kimg_or_stem:06d}'
    return f'network-snapshot-{stem}.pkl'


def training_state_name(kimg_or_stem):
    stem = kimg_or_stem if isinstance(kimg_or_stem, str) else f'{kimg_or_stem:06d}'
    return f'training-state-{stem}.pt'


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
        kimg, fraction = int(match.group(1)), match.group(2)
        stem = match.group(1) + (f'.{fraction}' if fraction is not None else '')
        state = os.path.join(run_dir, training_state_name(stem))
        order = (kimg, -1 if fraction is None else int(fraction))  # The plain name is the first of its thousand.
        result.append((order, kimg, os.path.join(run_dir, name), state if os.path.isfile(state) else None))
    return [entry[1:] for entry in sorted(result)]


def prune_snapshots(run_dir, keep):
    """Deletes all but the newest `keep` snapshots (and their training states; the state first)."""
    snapshots = list_snapshots(run_dir)
    for _kimg, pkl_path, state_path in snapshots[:max(len(snapshots) - keep, 0)]:
        if state_path is not None:
            os.remove(state_path)
        os.remove(pkl_path)


def save_snapshot(run_dir, stem, networks, training_state, keep_snapshots=None):
    """Writes network-snapshot-<stem>.pkl, then beside it the training state (a dict for torch.save), which
    records the pickle's name and SHA-256; returns the pickle's path."""
    pkl_path = os.path.join(run_dir, snapshot_pkl_name(stem))
    sha = hashlib.sha256()
    write_atomically(pkl_path, lambda f: pickle.dump(networks, _HashingWriter(f, sha)))
    state = dict(training_state, snapshot_pkl=os.path.basename(pkl_path), snapshot_sha256=sha.hexdigest())
    write_atomically(os.path.join(run_dir, training_state_name(stem)), lambda f: torch.save(state, f))
    if keep_snapshots is not None:
        prune_snapshots(run_dir, keep_snapshots)
    return pkl_path

class _HashingWriter:
    """A binary file's write(), also feeding the bytes to a hash."""

    def __init__(self, f, sha):
        self.f, self.sha = f, sha

    def write(self, data):
        self.sha.update(data)
        return self.f.write(data)

    def flush(self):
        self.f.flush()

# ----------------------------------------------------------------------------
# Reading back.


class SnapshotError(ValueError):
    """A snapshot or training state that cannot be used to continue a run (one line)."""


try:
    # NumPy >= 2, whose numpy.core warns, and 1.26, whose numpy._core is a stub that only this import fills
    # (requirements-pose.txt's mediapipe holds NumPy below 2).
    from numpy._core.multiarray import _reconstruct as _numpy_reconstruct
except ImportError:  # NumPy 1.24 and 1.25.
    from numpy.core.multiarray import _reconstruct as _numpy_reconstruct

# What the NumPy random state of a format-1 training state needs (format 2 stores it as a tensor).
_NUMPY_STATE_GLOBALS = [np.ndarray, np.dtype, _numpy_reconstruct] + \
    ([np.dtypes.UInt32DType] if hasattr(np, 'dtypes') else [])


def read_training_state(path):
    """The dict a training state file holds, read without running code from it."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
        # Older states kept NumPy's random state as an array.
        with torch.serialization.safe_globals(_NUMPY_STATE_GLOBALS):
            state = torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)
    except Exception as err:  # torch.load raises many kinds of errors for damaged files.
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise SnapshotError(f'{os.path.basename(path)} is damaged or not a training state ({reason})') from None
    if not isinstance(state, dict) or state.get('format_version') not in (1, 2):
        raise SnapshotError(f'{os.path.basename(path)} is not a training state of a known format')
    return state


def verify_pair(run_dir, state_path):
    """(pkl path, state dict) of a complete pair, or SnapshotError saying what is wrong with it."""
    state = read_training_state(state_path)
    name = state.get('snapshot_pkl')
    if name is None:  # Written before states recorded their pickle: the pickle of the same stem.
        name = os.path.basename(state_path).replace('training-state-', 'network-snapshot-').replace('.pt', '.pkl')
    pkl_path = os.path.join(run_dir, os.path.basename(name))
    if not os.path.isfile(pkl_path):
        raise SnapshotError(f'{name}, the snapshot of {os.path.basename(state_path)}, is missing')
    digest = state.get('snapshot_sha256')
    if digest is not None:
        sha = hashlib.sha256()
        with open(pkl_path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                sha.update(block)
        if sha.hexdigest() != digest:
            raise SnapshotError(f'{name} is not the snapshot {os.path.basename(state_path)} was saved with '
                                f'(overwritten or damaged)')
    return pkl_path, state


def find_complete_pair(run_dir, report=print):
    """(pkl path, state path, state) of the newest complete pair of a run directory, or None. Pairs that
    are not complete (a kill while writing, damage) are reported and passed over."""
    for _kimg, pkl_path, state_path in reversed(list_snapshots(run_dir)):
        if state_path is None:
            report(f'Passing over {os.path.basename(pkl_path)}: it has no training state (written when the run stopped?)')
            continue
        try:
            pkl, state = verify_pair(run_dir, state_path)
        except SnapshotError as e:
            report(f'Passing over {os.path.basename(state_path)}: {e}')
            continue
        return pkl, state_path, state
    return None

# ----------------------------------------------------------------------------
