"""First-use self-verification of the CUDA kernels against the reference ops.

The kernels are compiled on the user's machine and may meet a GPU, driver or configuration that
was never tested. So the first time a kernel is asked for a given kind of configuration (op, dtype
and the arguments that select different code paths), it is run on a small random input of that
configuration and compared, values and gradients, with the public op under impl='ref'. A mismatch
(or an exception) warns once, naming the op and the error, and marks that configuration as
unavailable, so the public op falls back to its PyTorch implementation.
"""

import contextlib
import warnings

import torch

import torch_utils.ops

#----------------------------------------------------------------------------

class KernelSelfCheckWarning(UserWarning):
    """A CUDA kernel disagreed with the reference op and will not be used for that configuration."""

# Relative tolerance (max abs error / max abs reference value) per kernel dtype. The reference
# runs in float32 on the same (upcast) input, so the error is the kernel's own rounding.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 4e-2}

_results = dict()  # (op, key) -> bool

#----------------------------------------------------------------------------

def check_once(op, key, check):
    """Runs `check()` once per (op, key); it returns None when the kernel agrees, else a description."""
    if (op, key) in _results:
        return _results[(op, key)]
    try:
        with _isolated():
            problem = check()
    except Exception as e:  # A crash in the kernel path is a failed check, not the caller's problem.
        problem = f'{type(e).__name__}: {e}'
    ok = problem is None
    if not ok:
        warnings.warn(f'The CUDA kernel of {op} failed its self-check against impl="ref" for {key}: {problem}. '
                      f'Using the PyTorch implementation for this configuration instead.',
                      KernelSelfCheckWarning, stacklevel=3)
    _results[(op, key)] = ok
    return ok


def reset():
    """Forgets all results, so that the next use of each configuration checks again (for tests)."""
    _results.clear()


@contextlib.contextmanager
def reference_impl():
    """Makes impl='ref' mean 'ref' even when TORCH_UTILS_OPS_IMPL forces another implementation
    (which would otherwise send a fallback to the reference back to the kernel)."""
    saved_force_impl = torch_utils.ops.force_impl
    torch_utils.ops.force_impl = None
    try:
        yield
    finally:
        torch_utils.ops.force_impl = saved_force_impl


@contextlib.contextmanager
def _isolated():
    """Runs the check with autograd on, autocast off, and impl='ref' meaning 'ref'."""
    with reference_impl(), torch.inference_mode(False), torch.enable_grad(), \
            torch.autocast('cuda', enabled=False), torch.autocast('cpu', enabled=False):
        yield

#----------------------------------------------------------------------------

def random_tensor(shape, seed, device, dtype, scale=1.0):
    """Normal random numbers from a private generator, leaving the global RNG streams untouched."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator) * scale).to(device=device, dtype=dtype)


def mismatch(name, got, ref, dtype):
    """Describes how `got` differs from `ref` beyond the tolerance of `dtype`, or returns None."""
    if got is None or ref is None:
        return None if got is None and ref is None else f'{name}: gradient missing on one side'
    if tuple(got.shape) != tuple(ref.shape):
        return f'{name}: shape {list(got.shape)}, expected {list(ref.shape)}'
    got = got.detach().float()
    ref = ref.detach().float()
    if not torch.isfinite(got).all():
        return f'{name}: non-finite values'
    scale = max(ref.abs().max().item(), 1e-6)
    error = (got - ref).abs().max().item() / scale
    if not error <= TOLERANCE[dtype]:
        return f'{name}: max relative error {error:.2e} > {TOLERANCE[dtype]:.0e}'
    return None


def first_problem(*problems):
    return next((p for p in problems if p is not None), None)

#----------------------------------------------------------------------------
