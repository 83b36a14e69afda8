"""Fused bias and activation: y = clamp(act(x + b) * gain, -clamp, +clamp).

The public op: validates and normalises the arguments, then runs the implementation that
torch_utils.ops.dispatch chooses among bias_act_ref (the definition), bias_act_fast and bias_act_cuda.
All of them support gradients of any order (the CUDA kernels up to second order).
"""

import torch

from torch_utils.ops import bias_act_cuda
from torch_utils.ops import bias_act_fast
from torch_utils.ops import bias_act_ref
from torch_utils.ops import dispatch
from torch_utils.ops.bias_act_ref import activation_funcs  # noqa: F401 (part of the public surface)

_LEAVES = dict(ref=bias_act_ref, fast=bias_act_fast, cuda=bias_act_cuda)

#----------------------------------------------------------------------------

def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl='cuda'):
    r"""Adds bias `b` to `x` along dimension `dim`, applies activation `act`, scales by `gain`
    and clamps to [-clamp, +clamp].

    Args:
        x:      Input tensor of any shape.
        b:      Bias, a 1-D tensor of length `x.shape[dim]`, or None.
        dim:    The dimension of `x` that `b` runs along.
        act:    Name of the activation function (a key of `activation_funcs`).
        alpha:  Negative slope of 'lrelu'; None selects the default (0.2).
        gain:   Scaling factor applied after the activation; None selects the activation's
                default (sqrt(2) for relu, lrelu and swish, 1 for the others).
        clamp:  Clamp the output to [-clamp, +clamp]; None or a negative value disables it.
        impl:   'ref', 'fast' or 'cuda' (see torch_utils.ops).

    Returns:
        Tensor of the same shape and dtype as `x`.
    """
    tensors, args = _prepare(x, b, dim, act, alpha, gain, clamp)
    return dispatch.choose_implementation('bias_act', _LEAVES, impl, tensors, args).apply(*tensors, **args)

def bias_act_(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl='cuda'):
    r"""bias_act() for an `x` that the caller has just computed and will not use again: where autograd
    records nothing through `x`, the implementation may write the result into `x` instead of a new tensor
    (the fast one does). Returns the result, which may be `x` itself.

    Not part of the official API: network modules that others may load reach it with
    `getattr(bias_act, 'bias_act_', bias_act.bias_act)`.
    """
    tensors, args = _prepare(x, b, dim, act, alpha, gain, clamp)
    leaf = dispatch.choose_implementation('bias_act', _LEAVES, impl, tensors, args)
    return getattr(leaf, 'apply_in_place', leaf.apply)(*tensors, **args)

#----------------------------------------------------------------------------

def _prepare(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    """Validates the arguments; returns the leaves' ([x, b], arguments), with numbers for the None
    defaults (clamp -1 = none)."""
    assert isinstance(x, torch.Tensor)
    if act not in activation_funcs:
        raise ValueError(f'Unknown activation {act!r}; expected one of {", ".join(activation_funcs)}')
    spec = activation_funcs[act]
    if not -x.ndim <= dim < max(x.ndim, 1):
        raise ValueError(f'dim={dim} is out of range for a tensor with {x.ndim} dimensions')
    dim = dim % max(x.ndim, 1)
    if b is not None:
        assert isinstance(b, torch.Tensor) and b.ndim == 1, 'bias must be a 1-D tensor'
        assert b.shape[0] == x.shape[dim], f'bias has {b.shape[0]} entries, x has {x.shape[dim]} along dim {dim}'
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp if clamp is not None and clamp >= 0 else -1)
    return [x, b], dict(dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)


#----------------------------------------------------------------------------
