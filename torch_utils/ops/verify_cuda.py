"""First-use self-verification of the CUDA kernels against the reference implementations.

The kernels are compiled on the user's machine and may meet a GPU, driver or configuration that
was never tested. So the first time a kernel is asked for a given kind of configuration (op, dtype
and the arguments that select different code paths), the dispatcher runs it on a small random input
of that configuration and compares values, gradients and second-order gradients with the reference
leaf. A mismatch (or an exception) warns once, naming the op and the error, and marks that
configuration as unavailable, so the op falls back to its PyTorch implementations.
"""

import contextlib
import warnings

import torch

#----------------------------------------------------------------------------

class KernelSelfCheckWarning(UserWarning):
    """A CUDA kernel disagreed with the reference op and will not be used for that configuration."""

# Relative tolerance (max abs error / max abs reference value) per kernel dtype. The reference
# runs in float32 on the same (upcast) input, so the error is the kernel's own rounding.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 4e-2}

_results = dict()  # (op, key) -> bool

#----------------------------------------------------------------------------

def check_once(op, key, kernel, reference, inputs):
    """True when `kernel` agrees with `reference` on `inputs`; decided once per (op, key).

    `inputs` is (tensors, args), or a function returning them (called only when a check runs):
    kernel(*tensors, **args) is compared with reference(*tensors upcast to float32, **args). A
    disagreement or an exception warns once with KernelSelfCheckWarning.
    """
    if (op, key) in _results:
        return _results[(op, key)]
    try:
        tensors, args = inputs() if callable(inputs) else inputs
        problem = compare(kernel, reference, tensors, args)
    except Exception as e:  # A crash in the kernel path is a failed check, not the caller's problem.
        problem = f'{type(e).__name__}: {e}'
    ok = problem is None
    if not ok:
        warnings.warn(f'The CUDA kernel of {op} failed its self-check against the reference for {key}: {problem}. '
                      f'Using the PyTorch implementation for this configuration instead.',
                      KernelSelfCheckWarning, stacklevel=4)
    _results[(op, key)] = ok
    return ok


def compare(kernel, reference, tensors, args):
    """None when kernel(*tensors, **args) matches the reference in value, gradient and second-order
    gradient (through the inputs and the incoming gradient); else a description of the first mismatch.
    `tensors` may contain None (an absent optional input)."""
    dtype = tensors[0].dtype
    with _isolated():
        got = _values_and_gradients(kernel, tensors, args, upcast=False)
        ref = _values_and_gradients(reference, tensors, args, upcast=True)
    names = ['y'] + [f'd(y.dy)/d(input {i})' for i in range(len(got) // 2 - 1)]
    names += [f'second order: d/d(input {i})' for i in range(len(got) // 2 - 1)] + ['second order: d/d(dy)']
    return first_problem(*[mismatch(n, g, r, dtype) for n, g, r in zip(names, got, ref)])


def _values_and_gradients(fn, tensors, args, upcast):
    """[y, dy-weighted gradients of each input, gradients of their random weighted sum w.r.t. each input and dy]."""
    device, dtype = tensors[0].device, tensors[0].dtype
    cast = (lambda t: t.float()) if upcast else (lambda t: t)
    leaves = [None if t is None else cast(t.detach()).requires_grad_(True) for t in tensors]
    inputs = [t for t in leaves if t is not None]
    y = fn(*leaves, **args)
    dy = cast(random_tensor(y.shape, 101, device, dtype)).requires_grad_(True)
    grads = torch.autograd.grad(y, inputs, dy, create_graph=True, materialize_grads=True)
    weights = [cast(random_tensor(g.shape, 102 + i, device, dtype)) for i, g in enumerate(grads)]
    total = sum((g * w).sum() for g, w in zip(grads, weights))
    grads2 = torch.autograd.grad(total, inputs + [dy], materialize_grads=True)
    return [y] + list(grads) + list(grads2)


def reset():
    """Forgets all results, so that the next use of each configuration checks again (for tests)."""
    _results.clear()


@contextlib.contextmanager
def _isolated():
    """Runs the check with autograd on and autocast off, whatever the caller's context."""
    with torch.inference_mode(False), torch.enable_grad(), \
            torch.autocast('cuda', enabled=False), torch.autocast('cpu', enabled=False):
        yield

#----------------------------------------------------------------------------

def random_tensor(shape, seed, device, dtype, scale=1.0):
    """Normal random numbers from a private generator, leaving the global RNG streams untouched."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(list(shape), generator=generator) * scale).to(device=device, dtype=dtype)


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
    scale = max(ref.abs().max().item(), 1e-6) if ref.numel() else 1e-6
    error = (got - ref).abs().max().item() / scale if ref.numel() else 0.0
    if not error <= TOLERANCE[dtype]:
        return f'{name}: max relative error {error:.2e} > {TOLERANCE[dtype]:.0e}'
    return None


def first_problem(*problems):
    return next((p for p in problems if p is not None), None)

#----------------------------------------------------------------------------
