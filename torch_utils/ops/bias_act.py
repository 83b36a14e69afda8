"""Fused bias and activation: y = clamp(act(x + b) * gain, -clamp, +clamp).

Three implementations (see torch_utils.ops): 'ref' composes plain PyTorch ops and serves as the
oracle; 'fast' runs one fused C++ loop per pass (bias_act_cpu.cpp, JIT-built; in-place PyTorch ops
where it cannot be used) under a custom autograd function whose first-order backward needs no
recorded graph; 'cuda' calls the kernels in bias_act_cuda. All of them support gradients of any
order.
"""

import math
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from dnnlib.util import EasyDict
from torch_utils.ops import resolve_impl

#----------------------------------------------------------------------------
# Activation functions. `func` is the plain definition; `grad` is its derivative, taken from the
# activation's input `z` or its output `a = func(z)`, whichever `ref` names. `alpha` is the
# negative slope of lrelu; the other activations have no shape parameter and do not read it.
# `cuda_idx` numbers the activation in the CUDA kernel; `has_2nd_grad` says whether the second
# derivative is nonzero somewhere.

def _sigmoid_grad(z, a, alpha):
    return a * (1 - a)

def _elu_grad(z, a, alpha):
    return torch.where(a > 0, torch.ones_like(a), a + 1)

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

def _selu_grad(z, a, alpha):
    return torch.where(a > 0, torch.full_like(a, _SELU_SCALE), a + _SELU_SCALE * _SELU_ALPHA)

def _swish_grad(z, a, alpha):
    s = torch.sigmoid(z)
    return s * (1 + z * (1 - s))

activation_funcs = {
    'linear':   EasyDict(func=lambda x, **_:        x,                          grad=lambda z, a, alpha: torch.ones_like(a),                           def_alpha=0,   def_gain=1,            cuda_idx=1, ref='',  has_2nd_grad=False),
    'relu':     EasyDict(func=lambda x, **_:        F.relu(x),                  grad=lambda z, a, alpha: (a > 0).to(a.dtype),                          def_alpha=0,   def_gain=np.sqrt(2),   cuda_idx=2, ref='y', has_2nd_grad=False),
    'lrelu':    EasyDict(func=lambda x, alpha, **_: F.leaky_relu(x, alpha),     grad=lambda z, a, alpha: torch.where(z > 0, 1.0, alpha * torch.ones_like(z)),     def_alpha=0.2, def_gain=np.sqrt(2),   cuda_idx=3, ref='x', has_2nd_grad=False),
    'tanh':     EasyDict(func=lambda x, **_:        torch.tanh(x),              grad=lambda z, a, alpha: 1 - a * a,                                    def_alpha=0,   def_gain=1,            cuda_idx=4, ref='y', has_2nd_grad=True),
    'sigmoid':  EasyDict(func=lambda x, **_:        torch.sigmoid(x),           grad=_sigmoid_grad,                                                    def_alpha=0,   def_gain=1,            cuda_idx=5, ref='y', has_2nd_grad=True),
    'elu':      EasyDict(func=lambda x, **_:        F.elu(x),                   grad=_elu_grad,                                                        def_alpha=0,   def_gain=1,            cuda_idx=6, ref='y', has_2nd_grad=True),
    'selu':     EasyDict(func=lambda x, **_:        F.selu(x),                  grad=_selu_grad,                                                       def_alpha=0,   def_gain=1,            cuda_idx=7, ref='y', has_2nd_grad=True),
    'softplus': EasyDict(func=lambda x, **_:        F.softplus(x),              grad=lambda z, a, alpha: torch.sigmoid(z),                             def_alpha=0,   def_gain=1,            cuda_idx=8, ref='x', has_2nd_grad=True),
    'swish':    EasyDict(func=lambda x, **_:        torch.sigmoid(x) * x,       grad=_swish_grad,                                                      def_alpha=0,   def_gain=np.sqrt(2),   cuda_idx=9, ref='x', has_2nd_grad=True),
}

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
    assert isinstance(x, torch.Tensor)
    x_dim = dim
    dim, alpha, gain, clamp = _normalize_args(x, b, dim, act, alpha, gain, clamp)
    impl = resolve_impl(impl, x)
    if impl == 'cuda':
        try:
            from torch_utils.ops import bias_act_cuda
        except ImportError:
            bias_act_cuda = None
        cuda_args = dict(b=b, dim=x_dim, act=act, alpha=alpha, gain=gain, clamp=(clamp if clamp >= 0 else None))
        if bias_act_cuda is not None and bias_act_cuda.available(x, **cuda_args):
            return bias_act_cuda.bias_act(x, **cuda_args)
        _warn_fallback('the CUDA kernel is unavailable for these arguments')
        impl = 'fast'
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    if impl == 'fast' and needs_grad and not (act == 'linear' and clamp < 0):
        return _BiasActFast.apply(x, b, dim, act, alpha, gain, clamp)
    # The fused kernel pays off in the backward pass, which it computes in one sweep; a forward
    # alone, or a bias and a gain alone, are a few vectorised PyTorch ops that are already the
    # fastest path (measured; see benchmarks/ops_core.py).
    return _bias_act_ref(x=x, b=b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)

#----------------------------------------------------------------------------

def _normalize_args(x, b, dim, act, alpha, gain, clamp):
    """Validates the arguments and replaces the None defaults by numbers; clamp < 0 means none."""
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
    clamp = float(clamp if clamp is not None else -1)
    return dim, alpha, gain, clamp


def _bias_shape(x, dim):
    return [-1 if i == dim else 1 for i in range(x.ndim)]


def _bias_act_ref(x, b, dim, act, alpha, gain, clamp):
    """The plain definition, differentiable to any order by autograd."""
    if b is not None:
        x = x + b.reshape(_bias_shape(x, dim))
    x = activation_funcs[act].func(x, alpha=alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x

#----------------------------------------------------------------------------
# Fast path. The forward pass is one C++ loop (bias_act_cpu.cpp) for float32/float64 CPU tensors,
# or in-place PyTorch ops on a single new buffer otherwise. The first-order backward is computed
# directly from the saved input, again in one C++ loop (which also sums the bias gradient) or a
# few PyTorch ops, instead of through four recorded ops. For higher orders (create_graph=True,
# e.g. the R1 penalty) the backward recomputes the reference definition under autograd, so those
# gradients are exact by construction.

_cpu_plugin = None

def _get_cpu_plugin():
    """The C++ kernels of bias_act_cpu.cpp, or None if they cannot be built."""
    global _cpu_plugin
    if _cpu_plugin is None:
        from torch_utils import custom_ops
        _cpu_plugin = custom_ops.get_plugin('bias_act_cpu_plugin', sources=['bias_act_cpu.cpp'], source_dir=os.path.dirname(__file__),
            extra_cflags=['-O3', '-fopenmp'], extra_ldflags=['-fopenmp']) or False
    return _cpu_plugin or None


def _use_cpu_plugin(x, b):
    return (x.device.type == 'cpu' and x.dtype in (torch.float32, torch.float64) and
            (b is None or b.dtype == x.dtype) and _get_cpu_plugin() is not None)


def _kernel_layout(x, dim):
    """A contiguous view of x as [outer, channels, inner] in memory order, and a function that
    gives a result computed in that layout the shape and strides of x."""
    if x.ndim == 4 and dim == 1 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        xp = x.permute(0, 2, 3, 1)
        return xp, (xp.shape[0] * xp.shape[1] * xp.shape[2], xp.shape[3], 1), lambda t: t.permute(0, 3, 1, 2)
    xc = x.contiguous()
    outer = math.prod(x.shape[:dim])
    inner = math.prod(x.shape[dim + 1:])
    return xc, (outer, x.shape[dim] if x.ndim else 1, inner), lambda t: t


_IN_PLACE_ACT = {
    'linear':   lambda z, alpha: z,
    'relu':     lambda z, alpha: z.relu_(),
    'lrelu':    lambda z, alpha: F.leaky_relu_(z, alpha),
    'tanh':     lambda z, alpha: z.tanh_(),
    'sigmoid':  lambda z, alpha: z.sigmoid_(),
    'elu':      lambda z, alpha: F.elu_(z),
    'selu':     lambda z, alpha: z.copy_(F.selu(z)),
    'softplus': lambda z, alpha: z.copy_(F.softplus(z)),
    'swish':    lambda z, alpha: z.mul_(torch.sigmoid(z)),
}


def _bias_act_fast_forward(x, b, dim, act, alpha, gain, clamp):
    if _use_cpu_plugin(x, b):
        xk, (outer, channels, inner), restore = _kernel_layout(x, dim)
        bk = b.contiguous() if b is not None else x.new_empty([0])
        y = _get_cpu_plugin().bias_act_forward(xk, bk, outer, channels, inner, activation_funcs[act].cuda_idx, alpha, gain, clamp)
        return restore(y)
    if b is not None:
        z = torch.add(x, b.reshape(_bias_shape(x, dim)))
    else:
        z = x.clone(memory_format=torch.preserve_format)
    _IN_PLACE_ACT[act](z, alpha)
    if gain != 1:
        z.mul_(gain)
    if clamp >= 0:
        z.clamp_(-clamp, clamp)
    return z


class _BiasActFast(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, dim, act, alpha, gain, clamp):
        y = _bias_act_fast_forward(x, b, dim, act, alpha, gain, clamp)
        ctx.save_for_backward(x, b, y)
        ctx.args = (dim, act, alpha, gain, clamp)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, b, y = ctx.saved_tensors
        dim, act, alpha, gain, clamp = ctx.args
        need_dx, need_db = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            dx, db = _bias_act_grad_by_recompute(x, b, dy, need_dx, need_db, dim, act, alpha, gain, clamp)
        elif _use_cpu_plugin(x, b) and dy.dtype == x.dtype:
            xk, (outer, channels, inner), restore = _kernel_layout(x, dim)
            dyk, _, _ = _kernel_layout(dy.contiguous(memory_format=_memory_format_of(x)), dim)
            bk = b.contiguous() if b is not None else x.new_empty([0])
            dx, db = _get_cpu_plugin().bias_act_backward(dyk.contiguous(), xk, bk, outer, channels, inner,
                activation_funcs[act].cuda_idx, alpha, gain, clamp, bool(need_db))
            dx = restore(dx)
            db = db.to(b.dtype) if need_db else None
        else:
            dx = _bias_act_fast_grad(x, b, y, dy, dim, act, alpha, gain, clamp)
            db = None
            if need_db:
                db = dx.sum([i for i in range(dx.ndim) if i != dim]).to(b.dtype)
        return (dx if need_dx else None), db, None, None, None, None, None


def _memory_format_of(x):
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _bias_act_fast_grad(x, b, y, dy, dim, act, alpha, gain, clamp):
    """d(loss)/d(x + b), from the saved input and output, without recording a graph."""
    spec = activation_funcs[act]
    if gain == 0:
        return torch.zeros_like(x)
    if act == 'linear':
        dz = dy * gain
    else:
        z = torch.add(x, b.reshape(_bias_shape(x, dim))) if b is not None else x
        a = y / gain if spec.ref == 'y' else None
        dz = spec.grad(z=z, a=a, alpha=alpha).mul_(dy)
        if gain != 1:
            dz.mul_(gain)
    if clamp >= 0:
        dz.masked_fill_(y.abs() >= clamp, 0)
    return dz


def _bias_act_grad_by_recompute(x, b, dy, need_dx, need_db, dim, act, alpha, gain, clamp):
    inputs = []
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach().requires_grad_(need_dx)
        b_in = None
        if b is not None:
            b_in = b if b.requires_grad else b.detach().requires_grad_(need_db)
        y = _bias_act_ref(x=x_in, b=b_in, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
        if need_dx:
            inputs.append(x_in)
        if need_db:
            inputs.append(b_in)
        grads = torch.autograd.grad(y, inputs, dy, create_graph=True, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs)]
    dx = grads.pop(0) if need_dx else None
    db = grads.pop(0) if need_db else None
    return dx, db

#----------------------------------------------------------------------------

_fallback_warned = False

def _warn_fallback(reason):
    global _fallback_warned
    if not _fallback_warned:
        _fallback_warned = True
        warnings.warn(f'bias_act: {reason}; falling back to the fast PyTorch implementation.')

#----------------------------------------------------------------------------
