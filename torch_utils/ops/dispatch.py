"""The one place where an op's implementation is chosen.

A custom op (bias_act, upfirdn2d, filtered_lrelu) has one leaf module per implementation:
`<op>_ref` (plain PyTorch, the definition), `<op>_fast` (fast paths) and `<op>_cuda` (the CUDA
kernels). A leaf imports nothing back from the public op; it offers

    DEVICE                      'cuda', 'cpu', or None (any device): the tensors it is meant for
    supported(*tensors, **args) True when it can compute this call
    apply(*tensors, **args)     the result, with gradients

and a leaf whose kernels must prove themselves on the user's machine (the CUDA kernels) also offers
`config_key(*tensors, **args)` (what selects a distinct code path) and `check_inputs(*tensors,
**args)` (small random inputs of the same configuration), for verify_cuda.check_once.

The public op validates its arguments, then calls `choose_implementation`, which walks the fallback
chain of the requested implementation ('cuda' -> 'fast' -> 'ref'; 'fast' -> 'ref'; 'ref') and takes the
first leaf that is meant for the tensor's device, supports the call and, where it must, has passed its
self-check. The policy is the same for every op:

- a leaf meant for another device is skipped silently ('cuda' on a CPU tensor is the 'fast' path;
  that is the documented meaning of the default impl='cuda');
- a plugin that failed to build has already warned (custom_ops), and a kernel that failed its
  self-check has already warned (verify_cuda): the op falls back without a second warning;
- any other reason to skip the requested implementation warns once per op and implementation,
  naming the one used instead.

TORCH_UTILS_OPS_IMPL (or torch_utils.ops.force_impl) overrides every requested implementation, for
debugging and benchmarks.
"""

import warnings

import torch_utils.ops
from torch_utils.ops import host_memory
from torch_utils.ops import verify_cuda

IMPLS = ('ref', 'fast', 'cuda')
FALLBACKS = {'cuda': ('cuda', 'fast', 'ref'), 'fast': ('fast', 'ref'), 'ref': ('ref',)}

_warned = set()

#----------------------------------------------------------------------------

def requested_impl(impl):
    """The implementation asked for, after the global override; raises on an unknown name."""
    if torch_utils.ops.force_impl is not None:
        impl = torch_utils.ops.force_impl
    if impl not in IMPLS:
        raise ValueError(f'Unknown op implementation {impl!r}; expected one of {", ".join(IMPLS)} '
                         f'(check the impl argument and TORCH_UTILS_OPS_IMPL)')
    return impl


def resolve_impl(impl, x):
    """For composite ops without leaves (conv2d_resample, fma, grid_sample): 'ref', 'fast' or 'cuda'
    as it applies to tensor `x` ('cuda' only for CUDA tensors)."""
    impl = requested_impl(impl)
    if x.device.type == 'cpu' and not host_memory._applied:
        host_memory.keep_freed_memory()
    if impl == 'cuda' and x.device.type != 'cuda':
        return 'fast'
    return impl


def choose_implementation(op, leaves, impl, tensors, args):
    """The leaf module that computes `op` for these tensors and (normalised) arguments.

    `leaves` maps 'ref', 'fast' and 'cuda' to the op's leaf modules; `tensors` are the positional
    tensor arguments (the first one decides the device); `args` the keyword arguments.
    """
    requested = requested_impl(impl)
    device_type = tensors[0].device.type
    if device_type == 'cpu' and not host_memory._applied:
        host_memory.keep_freed_memory()
    unexpected = None  # Why the requested leaf was skipped, when nothing has said so yet.
    for name in FALLBACKS[requested]:
        leaf = leaves[name]
        if leaf.DEVICE is not None and leaf.DEVICE != device_type:
            continue
        if not leaf.supported(*tensors, **args):
            if name == requested and getattr(leaf, 'built', lambda: True)():
                unexpected = f'{_describe(tensors)}, {_describe_args(args)}'
            continue
        if hasattr(leaf, 'check_inputs') and not _verified(op, leaf, leaves['ref'], tensors, args):
            continue
        if unexpected is not None and (op, requested) not in _warned:
            _warned.add((op, requested))
            warnings.warn(f'{op}: impl={requested!r} does not support this call ({unexpected}); '
                          f'using impl={name!r} instead.', OpFallbackWarning, stacklevel=3)
        return leaf
    raise AssertionError(f'{op}: no implementation accepts this call')  # 'ref' accepts every valid call.


def _verified(op, leaf, reference, tensors, args):
    key = leaf.config_key(*tensors, **args)
    return verify_cuda.check_once(op, key, kernel=leaf.apply, reference=reference.apply,
                                  inputs=lambda: leaf.check_inputs(*tensors, **args))


def check_kernel(leaves, tensors, args):
    """The self-check of leaves['cuda'] for this kind of call, run now and not remembered: None when
    it agrees with leaves['ref'], else a description of the mismatch (for selftest and the tests).
    `tensors` only need the device, dtype and number of dimensions of a real call."""
    kernel = leaves['cuda']
    inputs, check_args = kernel.check_inputs(*tensors, **args)
    return verify_cuda.compare(kernel.apply, leaves['ref'].apply, inputs, check_args)


def _describe(tensors):
    t = tensors[0]
    return f'{str(t.dtype).replace("torch.", "")} on {t.device}'


def _describe_args(args):
    simple = {k: v for k, v in args.items() if isinstance(v, (bool, int, float, str, tuple))}
    return ', '.join(f'{k}={v}' for k, v in simple.items())


class OpFallbackWarning(UserWarning):
    """An op could not use the implementation asked for and uses a slower one instead."""

#----------------------------------------------------------------------------
