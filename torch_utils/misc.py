"""Small PyTorch helpers used throughout the networks, the training loop and the metrics."""

import contextlib
import functools
import re
import warnings

import numpy as np
import torch


# ----------------------------------------------------------------------------
# Cached constant tensors: avoids re-creating the same small tensor on every call.

_constant_cache = dict()


def constant(value, shape=None, dtype=None, device=None, memory_format=None):
    """Returns a cached tensor holding `value`, broadcast to `shape` if given."""
    value = np.asarray(value)
    shape = None if shape is None else tuple(shape)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    device = torch.device('cpu') if device is None else device
    memory_format = torch.contiguous_format if memory_format is None else memory_format
    key = (value.shape, value.dtype, value.tobytes(), shape, dtype, device, memory_format)
    if key not in _constant_cache:
        tensor = torch.as_tensor(value.copy(), dtype=dtype, device=device)
        if shape is not None:
            tensor = tensor.expand(shape)
        _constant_cache[key] = tensor.contiguous(memory_format=memory_format)
    return _constant_cache[key]


def nan_to_num(input, nan=0.0, posinf=None, neginf=None, *, out=None):
    """torch.nan_to_num (kept for code written against older PyTorch versions)."""
    return torch.nan_to_num(input, nan=nan, posinf=posinf, neginf=neginf, out=out)

# ----------------------------------------------------------------------------
# Shape checks that also work while tracing.


@contextlib.contextmanager
def suppress_tracer_warnings():
    """Silences torch.jit.TracerWarning inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', category=torch.jit.TracerWarning)
        yield


def assert_shape(tensor, ref_shape):
    """Asserts that `tensor` has `ref_shape`; None entries match anything; sizes may be tensors."""
    ndim = len(tensor.shape)
    if ndim != len(ref_shape):
        raise AssertionError(f'Wrong number of dimensions: got {ndim}, expected {len(ref_shape)}')
    constrained = [(dim, size, expected) for dim, (size, expected) in enumerate(zip(tensor.shape, ref_shape))
                   if expected is not None]
    for dim, size, expected in constrained:
        if not (isinstance(size, torch.Tensor) or isinstance(expected, torch.Tensor)):
            if size != expected:
                raise AssertionError(f'Wrong size for dimension {dim}: got {size}, expected {expected}')
            continue
        # While tracing, sizes are tensors and the check becomes part of the traced graph.
        with suppress_tracer_warnings():
            same = torch.equal(torch.as_tensor(size), torch.as_tensor(expected))
            torch._assert(same, f'Wrong size for dimension {dim}: expected {expected}')

# ----------------------------------------------------------------------------
# Profiling.


def profiled_function(fn):
    """Decorator that labels every call of `fn` in the autograd profiler."""
    @functools.wraps(fn)
    def labelled(*args, **kwargs):
        with torch.autograd.profiler.record_function(fn.__name__):
            return fn(*args, **kwargs)
    return labelled

# ----------------------------------------------------------------------------
# Sampler that loops over a dataset forever, in a shuffled order that changes slowly.


class InfiniteSampler(torch.utils.data.Sampler):
    """Yields dataset indices forever: replica `rank` gets positions rank, rank + num_replicas, ... of
    one global stream, starting at position `start_index` of that stream.

    With `shuffle`, the first epoch of the stream is a random permutation, and every later epoch is that
    permutation perturbed by random swaps of items at most `window_size * len(dataset)` apart, drawn
    afresh for each epoch: so consecutive epochs differ, and any position is reached directly (its
    epoch's order is computed from the seed and the epoch number), without replaying the stream.
    """

    def __init__(self, dataset, rank=0, num_replicas=1, shuffle=True, seed=0, window_size=0.5, start_index=0):
        assert len(dataset) > 0 and num_replicas > 0 and 0 <= rank < num_replicas
        assert 0 <= window_size <= 1 and start_index >= 0
        super().__init__()
        self.dataset = dataset
        self.rank, self.num_replicas = rank, num_replicas           # Which share of the stream this is.
        self.shuffle, self.seed, self.window_size = shuffle, seed, window_size  # How the stream is ordered.
        self.start_index = start_index                               # Where in the stream to begin.

    def epoch_order(self, epoch):
        """The dataset indices in the order of epoch `epoch` of the global stream."""
        size = len(self.dataset)
        if not self.shuffle:
            return np.arange(size)
        order = np.random.RandomState(self.seed).permutation(size)
        window = int(np.rint(size * self.window_size))
        if epoch > 0 and window >= 2:
            offsets = np.random.default_rng([self.seed, epoch]).integers(window, size=size)
            for i, offset in enumerate(offsets.tolist()):
                j = (i - offset) % size
                order[i], order[j] = order[j], order[i]
        return order

    def __iter__(self):
        size = len(self.dataset)
        position = self.start_index + (self.rank - self.start_index) % self.num_replicas
        epoch, order = None, None
        while True:
            position_epoch, i = divmod(position, size)
            if position_epoch != epoch:
                epoch, order = position_epoch, self.epoch_order(position_epoch)
            yield int(order[i])
            position += self.num_replicas

# ----------------------------------------------------------------------------
# Parameters and buffers.


def params_and_buffers(module):
    return [tensor for _name, tensor in named_params_and_buffers(module)]


def named_params_and_buffers(module):
    assert isinstance(module, torch.nn.Module)
    return [*module.named_parameters(), *module.named_buffers()]


@torch.no_grad()
def copy_params_and_buffers(src_module, dst_module, require_all=False):
    """Copies every tensor of `src_module` whose name exists in `dst_module`; with `require_all`, every tensor
    of `dst_module` must have one (checked before anything is copied)."""
    assert isinstance(src_module, torch.nn.Module) and isinstance(dst_module, torch.nn.Module)
    source = dict(named_params_and_buffers(src_module))
    targets = named_params_and_buffers(dst_module)
    missing = [name for name, _tensor in targets if name not in source]
    if require_all and missing:
        raise KeyError(f'{missing[0]!r} is missing from the source module')
    for name, target in targets:
        if name in source:
            target.copy_(source[name].detach()).requires_grad_(target.requires_grad)

# ----------------------------------------------------------------------------
# Distributed helpers.


@contextlib.contextmanager
def ddp_sync(module, sync):
    """Skips DDP gradient synchronisation inside the block unless `sync` (for gradient accumulation)."""
    assert isinstance(module, torch.nn.Module)
    deferred = not sync and isinstance(module, torch.nn.parallel.DistributedDataParallel)
    with module.no_sync() if deferred else contextlib.nullcontext():
        yield


def check_ddp_consistency(module, ignore_regex=None):
    """Asserts that every parameter and buffer is identical on all processes (NaNs count as equal)."""
    assert isinstance(module, torch.nn.Module)
    owner = type(module).__name__
    for name, tensor in named_params_and_buffers(module):
        label = f'{owner}.{name}'
        if ignore_regex is not None and re.fullmatch(ignore_regex, label):
            continue
        local = torch.nan_to_num(tensor.detach()) if tensor.is_floating_point() else tensor.detach()
        from_rank0 = local.clone()
        torch.distributed.broadcast(tensor=from_rank0, src=0)
        if not torch.equal(local, from_rank0):
            raise AssertionError(f'{label} differs between processes')

# ----------------------------------------------------------------------------
# Module summary table.


class _CallRecorder:
    """Records, through forward hooks, each module call that finishes at most `max_nesting` calls deep, with
    the tensors it returned (innermost calls first)."""

    def __init__(self, max_nesting):
        self.max_nesting = max_nesting
        self.depth = 0
        self.calls = []

    def _enter(self, _called, _inputs):
        self.depth += 1

    def _leave(self, called, _inputs, outputs):
        self.depth -= 1
        if self.depth > self.max_nesting:
            return
        returned = outputs if isinstance(outputs, (tuple, list)) else [outputs]
        self.calls.append((called, [value for value in returned if isinstance(value, torch.Tensor)]))

    @contextlib.contextmanager
    def watching(self, module):
        hooks = [hook for submodule in module.modules()
                 for hook in (submodule.register_forward_pre_hook(self._enter),
                              submodule.register_forward_hook(self._leave))]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()


def print_module_summary(module, inputs, max_nesting=3, skip_redundant=True):
    """Runs `module(*inputs)` once and prints a table of submodules, parameter counts and output shapes.
    A tensor is counted once, at the innermost call that owns it; rows that would add nothing are left out
    with `skip_redundant`."""
    assert isinstance(module, torch.nn.Module) and not isinstance(module, torch.jit.ScriptModule)
    assert isinstance(inputs, (tuple, list))

    recorder = _CallRecorder(max_nesting)
    with recorder.watching(module):
        result = module(*inputs)
    finished_calls = recorder.calls

    names = {submodule: name for name, submodule in module.named_modules()}
    counted = set()
    body = []
    total_params = total_buffers = 0
    for called, outputs in finished_calls:
        params, buffers, fresh_outputs = [[t for t in group if id(t) not in counted]
                                          for group in (list(called.parameters()), list(called.buffers()), outputs)]
        counted.update(id(t) for t in params + buffers + fresh_outputs)
        if skip_redundant and not (params or buffers or fresh_outputs):
            continue
        num_params, num_buffers = sum(t.numel() for t in params), sum(t.numel() for t in buffers)
        total_params += num_params
        total_buffers += num_buffers
        name = '<top-level>' if called is module else names[called]
        described = [(str(list(t.shape)), str(t.dtype).split('.')[-1]) for t in outputs] or [('-', '-')]
        for idx, (shape, dtype) in enumerate(described):
            counts = [str(n) if n else '-' for n in (num_params, num_buffers)] if idx == 0 else ['-', '-']
            body.append([name + (f':{idx}' if len(outputs) >= 2 else ''), *counts, shape, dtype])

    rule = ['---'] * 5
    table = [[type(module).__name__, 'Parameters', 'Buffers', 'Output shape', 'Datatype'], rule, *body, rule,
             ['Total', str(total_params), str(total_buffers), '-', '-']]
    widths = [max(len(cell) for cell in column) for column in zip(*table)]
    print()
    for row in table:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)))
    print()
    return result

# ----------------------------------------------------------------------------
