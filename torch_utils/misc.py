"""Small PyTorch helpers used throughout the networks, the training loop and the metrics."""

import contextlib
import re
import warnings

import numpy as np
import torch

import dnnlib

# ----------------------------------------------------------------------------
# Cached constant tensors: avoids re-creating the same small tensor on every call.

_constant_cache = dict()


def constant(value, shape=None, dtype=None, device=None, memory_format=None):
    """Returns a cached tensor holding `value`, broadcast to `shape` if given."""
    value = np.asarray(value)
    if shape is not None:
        shape = tuple(shape)
    if dtype is None:
        dtype = torch.get_default_dtype()
    if device is None:
        device = torch.device('cpu')
    if memory_format is None:
        memory_format = torch.contiguous_format
    key = (value.shape, value.dtype, value.tobytes(), shape, dtype, device, memory_format)
    tensor = _constant_cache.get(key, None)
    if tensor is None:
        tensor = torch.as_tensor(value.copy(), dtype=dtype, device=device)
        if shape is not None:
            tensor = tensor.expand(shape)
        tensor = tensor.contiguous(memory_format=memory_format)
        _constant_cache[key] = tensor
    return tensor


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
    if tensor.ndim != len(ref_shape):
        raise AssertionError(f'Wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)}')
    for idx, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape)):
        if ref_size is None:
            continue
        if isinstance(ref_size, torch.Tensor):
            with suppress_tracer_warnings():  # The comparison is recorded as a constant.
                torch._assert(torch.equal(torch.as_tensor(size), ref_size), f'Wrong size for dimension {idx}')
        elif isinstance(size, torch.Tensor):
            with suppress_tracer_warnings():
                torch._assert(torch.equal(size, torch.as_tensor(ref_size)),
                              f'Wrong size for dimension {idx}: expected {ref_size}')
        elif size != ref_size:
            raise AssertionError(f'Wrong size for dimension {idx}: got {size}, expected {ref_size}')

# ----------------------------------------------------------------------------
# Profiling.


def profiled_function(fn):
    """Decorator that labels every call of `fn` in the autograd profiler."""
    def decorator(*args, **kwargs):
        with torch.autograd.profiler.record_function(fn.__name__):
            return fn(*args, **kwargs)
    decorator.__name__ = fn.__name__
    decorator.__qualname__ = getattr(fn, '__qualname__', fn.__name__)
    decorator.__doc__ = fn.__doc__
    decorator.__wrapped__ = fn
    return decorator

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
        assert len(dataset) > 0
        assert num_replicas > 0
        assert 0 <= rank < num_replicas
        assert 0 <= window_size <= 1
        assert start_index >= 0
        super().__init__()
        self.dataset = dataset
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self.window_size = window_size
        self.start_index = start_index

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
    assert isinstance(module, torch.nn.Module)
    return list(module.parameters()) + list(module.buffers())


def named_params_and_buffers(module):
    assert isinstance(module, torch.nn.Module)
    return list(module.named_parameters()) + list(module.named_buffers())


@torch.no_grad()
def copy_params_and_buffers(src_module, dst_module, require_all=False):
    """Copies every tensor of `src_module` whose name exists in `dst_module`."""
    assert isinstance(src_module, torch.nn.Module)
    assert isinstance(dst_module, torch.nn.Module)
    src_tensors = dict(named_params_and_buffers(src_module))
    for name, tensor in named_params_and_buffers(dst_module):
        if name not in src_tensors:
            if require_all:
                raise KeyError(f'{name!r} is missing from the source module')
            continue
        tensor.copy_(src_tensors[name].detach()).requires_grad_(tensor.requires_grad)

# ----------------------------------------------------------------------------
# Distributed helpers.


@contextlib.contextmanager
def ddp_sync(module, sync):
    """Skips DDP gradient synchronisation inside the block unless `sync` (for gradient accumulation)."""
    assert isinstance(module, torch.nn.Module)
    if sync or not isinstance(module, torch.nn.parallel.DistributedDataParallel):
        yield
    else:
        with module.no_sync():
            yield


def check_ddp_consistency(module, ignore_regex=None):
    """Asserts that every parameter and buffer is identical on all processes."""
    assert isinstance(module, torch.nn.Module)
    for name, tensor in named_params_and_buffers(module):
        fullname = type(module).__name__ + '.' + name
        if ignore_regex is not None and re.fullmatch(ignore_regex, fullname):
            continue
        tensor = tensor.detach()
        if tensor.is_floating_point():
            tensor = torch.nan_to_num(tensor)
        other = tensor.clone()
        torch.distributed.broadcast(tensor=other, src=0)
        if not (tensor == other).all():
            raise AssertionError(f'{fullname} differs between processes')

# ----------------------------------------------------------------------------
# Module summary table.


def print_module_summary(module, inputs, max_nesting=3, skip_redundant=True):
    """Runs `module(*inputs)` once and prints a table of submodules, parameter counts and output shapes."""
    assert isinstance(module, torch.nn.Module)
    assert not isinstance(module, torch.jit.ScriptModule)
    assert isinstance(inputs, (tuple, list))

    entries = []
    nesting = [0]

    def pre_hook(_mod, _inputs):
        nesting[0] += 1

    def post_hook(mod, _inputs, outputs):
        nesting[0] -= 1
        if nesting[0] <= max_nesting:
            outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
            outputs = [t for t in outputs if isinstance(t, torch.Tensor)]
            entries.append(dnnlib.EasyDict(mod=mod, outputs=outputs))

    hooks = [m.register_forward_pre_hook(pre_hook) for m in module.modules()]
    hooks += [m.register_forward_hook(post_hook) for m in module.modules()]
    try:
        outputs = module(*inputs)
    finally:
        for hook in hooks:
            hook.remove()

    # Count each tensor once, at the first (innermost) module that owns it.
    seen = set()
    for e in entries:
        e.unique_params = [t for t in e.mod.parameters() if id(t) not in seen]
        e.unique_buffers = [t for t in e.mod.buffers() if id(t) not in seen]
        e.unique_outputs = [t for t in e.outputs if id(t) not in seen]
        seen |= {id(t) for t in e.unique_params + e.unique_buffers + e.unique_outputs}
    if skip_redundant:
        entries = [e for e in entries if len(e.unique_params) or len(e.unique_buffers) or len(e.unique_outputs)]

    names = {mod: name for name, mod in module.named_modules()}
    rows = [[type(module).__name__, 'Parameters', 'Buffers', 'Output shape', 'Datatype']]
    rows += [['---'] * len(rows[0])]
    param_total = buffer_total = 0
    for e in entries:
        name = '<top-level>' if e.mod is module else names[e.mod]
        param_size = sum(t.numel() for t in e.unique_params)
        buffer_size = sum(t.numel() for t in e.unique_buffers)
        shapes = [str(list(t.shape)) for t in e.outputs]
        dtypes = [str(t.dtype).split('.')[-1] for t in e.outputs]
        rows.append([
            name + (':0' if len(e.outputs) >= 2 else ''),
            str(param_size) if param_size else '-',
            str(buffer_size) if buffer_size else '-',
            (shapes + ['-'])[0],
            (dtypes + ['-'])[0],
        ])
        for idx in range(1, len(e.outputs)):
            rows.append([name + f':{idx}', '-', '-', shapes[idx], dtypes[idx]])
        param_total += param_size
        buffer_total += buffer_size
    rows += [['---'] * len(rows[0])]
    rows += [['Total', str(param_total), str(buffer_total), '-', '-']]

    widths = [max(len(cell) for cell in column) for column in zip(*rows)]
    print()
    for row in rows:
        print('  '.join(cell + ' ' * (width - len(cell)) for cell, width in zip(row, widths)))
    print()
    return outputs
