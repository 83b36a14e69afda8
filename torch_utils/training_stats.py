"""Statistics reported from anywhere during training, read back per interval as count, mean and spread.

`report(name, value)` adds scalars to a named statistic. A `Collector` reads what was reported between two
of its `update()` calls. A statistic is three running moments (count, sum, sum of squares) in float64, held
per device so that reporting never waits for the GPU; with torch.distributed initialised, `update()` adds
up the moments of all processes, so that every process reads the same numbers.
"""

import re

import numpy as np
import torch

import dnnlib

# ----------------------------------------------------------------------------

NUM_MOMENTS = 3                 # Count, sum, sum of squares.
_TRANSFER_DTYPE = torch.float32  # Reported values are summed in this type...
_MOMENT_DTYPE = torch.float64    # ...and accumulated in this one.


class _Registry:
    """What this process has reported, and how it joins the other processes."""

    def __init__(self):
        self.rank = 0               # Rank of this process; report0 counts only on rank 0.
        self.reduce_device = None   # Where moments are summed across processes; None: chosen from the backend.
        self.reduced = False        # Set by the first reduction; the settings above are fixed from then on.
        self.pending = {}           # name -> {device: moments reported since the last reduction}.
        self.totals = {}            # name -> moments of every reduction so far (CPU, all processes).


_registry = _Registry()

# ----------------------------------------------------------------------------


def init_multiprocessing(rank, sync_device):
    """Tells this process its rank and the device for summing statistics across processes (its GPU with NCCL,
    torch.device('cpu') with gloo, None to choose from the process group). Call before any Collector.update()."""
    assert not _registry.reduced, 'init_multiprocessing() comes before the first Collector.update()'
    _registry.rank = rank
    _registry.reduce_device = sync_device


@torch.no_grad()
def report(name, value):
    """Adds every element of `value` (a number, sequence, array or tensor) to the statistic `name`. Returns
    `value` unchanged, so that a call can wrap an expression."""
    per_device = _registry.pending.setdefault(name, {})  # Known by name even when empty (for the reduction).
    values = torch.as_tensor(value)
    if values.numel() == 0:
        return value
    values = values.detach().reshape(-1).to(_TRANSFER_DTYPE)
    count = values.new_full([], values.numel())
    moments = torch.stack([count, values.sum(), values.square().sum()]).to(_MOMENT_DTYPE)
    if values.device in per_device:
        per_device[values.device].add_(moments)
    else:
        per_device[values.device] = moments
    return value


def report0(name, value):
    """report() on rank 0; the other processes add nothing (but the statistic exists on them too)."""
    report(name, value if _registry.rank == 0 else [])
    return value

# ----------------------------------------------------------------------------


def _reduce(names):
    """Adds the pending moments of `names` (from all devices and processes) to their totals; returns
    {name: total moments}."""
    if not names:
        return {}
    _registry.reduced = True
    across_processes = (torch.distributed.is_available() and torch.distributed.is_initialized()
                        and torch.distributed.get_world_size() > 1)
    device = _registry.reduce_device
    if device is None:
        uses_nccl = across_processes and torch.distributed.get_backend() == 'nccl'
        device = torch.device('cuda', torch.cuda.current_device()) if uses_nccl else torch.device('cpu')

    rows = []
    for name in names:
        row = torch.zeros([NUM_MOMENTS], dtype=_MOMENT_DTYPE, device=device)
        for moments in _registry.pending[name].values():
            row += moments.to(device)
            moments.zero_()
        rows.append(row)
    table = torch.stack(rows)
    if across_processes:
        torch.distributed.all_reduce(table)
    table = table.cpu()

    for name, row in zip(names, table):
        _registry.totals[name] = _registry.totals.get(name, torch.zeros_like(row)) + row
    return {name: _registry.totals[name] for name in names}

# ----------------------------------------------------------------------------


class Collector:
    """The statistics whose names match `regex`, as reported between the two latest update() calls.

    A statistic that got no data in the latest interval keeps its value from the interval before when
    `keep_previous` is set, and reads as empty (count 0, mean nan) otherwise."""

    def __init__(self, regex='.*', keep_previous=True):
        self._pattern = re.compile(regex)
        self._keep_previous = keep_previous
        self._totals_seen = {}      # name -> its total moments at the previous update().
        self._latest = {}           # name -> moments of the interval that update() closed.
        self.update()               # Whatever was reported before the collector existed is not its business.
        self._latest = {}

    def names(self):
        """The statistics reported so far whose names match."""
        return [name for name in _registry.pending if self._pattern.fullmatch(name)]

    def update(self):
        """Closes the current interval: its statistics become what num(), mean() and std() read."""
        if not self._keep_previous:
            self._latest = {}
        for name, total in _reduce(self.names()).items():
            seen = self._totals_seen.get(name)
            added = total.clone() if seen is None else total - seen
            self._totals_seen[name] = total.clone()
            if float(added[0]) != 0:
                self._latest[name] = added

    def _interval(self, name):
        assert self._pattern.fullmatch(name), f'{name} does not match the collector\'s pattern'
        return self._latest.get(name, torch.zeros([NUM_MOMENTS], dtype=_MOMENT_DTYPE))

    def num(self, name):
        """How many values were reported in the interval."""
        return int(self._interval(name)[0])

    def mean(self, name):
        """Their mean (nan without values)."""
        count, total, _ = self._interval(name).tolist()
        return total / count if count else float('nan')

    def std(self, name):
        """Their standard deviation (nan without values or with non-finite ones, 0 for a single value)."""
        count, total, total_sq = self._interval(name).tolist()
        if count == 0 or not np.isfinite(total):
            return float('nan')
        if count == 1:
            return float(0)
        mean = total / count
        return float(np.sqrt(max(total_sq / count - mean * mean, 0)))

    def as_dict(self):
        """{name: EasyDict(num, mean, std)} for every matching statistic."""
        return dnnlib.EasyDict({name: dnnlib.EasyDict(num=self.num(name), mean=self.mean(name), std=self.std(name))
                                for name in self.names()})

    def __getitem__(self, name):
        return self.mean(name)

# ----------------------------------------------------------------------------
