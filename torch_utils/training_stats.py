"""Lightweight statistics collection: `report()` anywhere, `Collector` reads averages per interval.

Each named statistic accumulates [count, sum, sum of squares] in float64. When
`torch.distributed` is initialised, `Collector.update()` sums the moments over all processes,
so every process reads the same global averages.
"""

import re

import numpy as np
import torch

import dnnlib

# ----------------------------------------------------------------------------

_num_moments = 3                 # [count, sum, sum of squares].
_reduce_dtype = torch.float32    # Dtype used to move data across processes.
_counter_dtype = torch.float64   # Dtype of the accumulated moments.
_rank = 0                        # Rank of this process.
_sync_device = None              # Device for the distributed reduction (None = chosen by backend).
_sync_called = False             # Has a Collector synchronised yet?
_counters = dict()               # name -> device -> running moments since the last update.
_cumulative = dict()             # name -> moments accumulated by updates so far.

# ----------------------------------------------------------------------------


def init_multiprocessing(rank, sync_device):
    """Sets this process's rank and the device used to reduce statistics across processes.

    Call before the first `Collector.update()`. `sync_device` is the process's GPU for
    NCCL or torch.device('cpu') for gloo; None picks one from the initialised process group.
    """
    global _rank, _sync_device
    assert not _sync_called, 'init_multiprocessing() must be called before the statistics are first synchronised'
    _rank = rank
    _sync_device = sync_device


@torch.no_grad()
def report(name, value):
    """Adds the elements of `value` (scalar, list, array or tensor) to statistic `name`; returns `value`."""
    if name not in _counters:
        _counters[name] = dict()

    elems = torch.as_tensor(value)
    if elems.numel() == 0:
        return value

    elems = elems.detach().flatten().to(_reduce_dtype)
    moments = torch.stack([
        torch.ones_like(elems).sum(),
        elems.sum(),
        elems.square().sum(),
    ])
    assert moments.ndim == 1 and moments.shape[0] == _num_moments
    moments = moments.to(_counter_dtype)

    device = moments.device
    if device not in _counters[name]:
        _counters[name][device] = torch.zeros_like(moments)
    _counters[name][device].add_(moments)
    return value


def report0(name, value):
    """Like `report()`, but only counted on rank 0 (other processes report an empty list)."""
    report(name, value if _rank == 0 else [])
    return value

# ----------------------------------------------------------------------------


class Collector:
    """Reads the statistics reported since the previous `update()` whose names match `regex`.

    With `keep_previous`, a statistic that received no data during an interval keeps its
    previous value; otherwise it reads as empty (count 0, mean nan).
    """

    def __init__(self, regex='.*', keep_previous=True):
        self._regex = re.compile(regex)
        self._keep_previous = keep_previous
        self._cumulative = dict()
        self._moments = dict()
        self.update()
        self._moments.clear()

    def names(self):
        """Names of the statistics reported so far that match the regex."""
        return [name for name in _counters if self._regex.fullmatch(name)]

    def update(self):
        """Ends the current interval: gathers (and reduces across processes) the new data."""
        if not self._keep_previous:
            self._moments.clear()
        for name, cumulative in _sync(self.names()):
            if name not in self._cumulative:
                self._cumulative[name] = torch.zeros([_num_moments], dtype=_counter_dtype)
            delta = cumulative - self._cumulative[name]
            self._cumulative[name].copy_(cumulative)
            if float(delta[0]) != 0:
                self._moments[name] = delta

    def _get_delta(self, name):
        assert self._regex.fullmatch(name)
        if name not in self._moments:
            self._moments[name] = torch.zeros([_num_moments], dtype=_counter_dtype)
        return self._moments[name]

    def num(self, name):
        """Number of scalars reported during the last interval."""
        return int(self._get_delta(name)[0])

    def mean(self, name):
        """Mean of the scalars reported during the last interval (nan if none)."""
        delta = self._get_delta(name)
        if int(delta[0]) == 0:
            return float('nan')
        return float(delta[1] / delta[0])

    def std(self, name):
        """Standard deviation of the scalars reported during the last interval (nan if none)."""
        delta = self._get_delta(name)
        if int(delta[0]) == 0 or not np.isfinite(float(delta[1])):
            return float('nan')
        if int(delta[0]) == 1:
            return float(0)
        mean = float(delta[1] / delta[0])
        raw_var = float(delta[2] / delta[0])
        return np.sqrt(max(raw_var - np.square(mean), 0))

    def as_dict(self):
        """{name: EasyDict(num, mean, std)} for every statistic seen."""
        stats = dnnlib.EasyDict()
        for name in self.names():
            stats[name] = dnnlib.EasyDict(num=self.num(name), mean=self.mean(name), std=self.std(name))
        return stats

    def __getitem__(self, name):
        return self.mean(name)

# ----------------------------------------------------------------------------


def _sync(names):
    """Moves the running moments into the cumulative totals (summed over processes); returns
    [(name, cumulative moments)] for the given names."""
    global _sync_called
    if len(names) == 0:
        return []
    _sync_called = True

    distributed = (torch.distributed.is_available() and torch.distributed.is_initialized()
                   and torch.distributed.get_world_size() > 1)
    device = _sync_device
    if device is None:
        nccl = distributed and torch.distributed.get_backend() == 'nccl'
        device = torch.device('cuda', torch.cuda.current_device()) if nccl else torch.device('cpu')

    deltas = []
    for name in names:
        delta = torch.zeros([_num_moments], dtype=_counter_dtype, device=device)
        for counter in _counters[name].values():
            delta.add_(counter.to(device))
            counter.zero_()
        deltas.append(delta)
    deltas = torch.stack(deltas)

    if distributed:
        torch.distributed.all_reduce(deltas)

    deltas = deltas.cpu()
    for idx, name in enumerate(names):
        if name not in _cumulative:
            _cumulative[name] = torch.zeros([_num_moments], dtype=_counter_dtype)
        _cumulative[name].add_(deltas[idx])
    return [(name, _cumulative[name]) for name in names]
