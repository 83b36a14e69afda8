"""Custom ops with three implementations each.

'ref'  -- plain PyTorch, written for clarity; the oracle of the tests.
'fast' -- the fast path for CPU tensors (vectorised PyTorch and/or a JIT-built C++ kernel).
'cuda' -- the CUDA kernels for CUDA tensors (the default, as in the official API); CPU tensors
          passed with impl='cuda' take the fast path.

Set the environment variable TORCH_UTILS_OPS_IMPL (or `force_impl` below) to 'ref', 'fast' or
'cuda' to override the `impl` argument of every call, for debugging and benchmarks.
"""

import os

IMPLS = ('ref', 'fast', 'cuda')
force_impl = os.environ.get('TORCH_UTILS_OPS_IMPL') or None


def resolve_impl(impl, x):
    """Returns the implementation to use for tensor `x`: 'ref', 'fast' or 'cuda'."""
    if force_impl is not None:
        impl = force_impl
    if impl not in IMPLS:
        raise ValueError(f'Unknown op implementation {impl!r}; expected one of {", ".join(IMPLS)} '
                         f'(check the impl argument and TORCH_UTILS_OPS_IMPL)')
    if impl == 'cuda' and x.device.type != 'cuda':
        return 'fast'
    return impl
