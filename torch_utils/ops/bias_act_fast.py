"""bias_act, fast implementation (any device; a C++ kernel for float32/float64 CPU tensors).

Leaf of torch_utils.ops.bias_act (see torch_utils.ops.dispatch); arguments arrive normalised.

Without autograd, the result is one new tensor (x + b, or a copy of x) finished in place, instead of
the up to four new tensors of the reference. With autograd, a custom function computes the forward
pass the same way and the first-order backward directly from the saved input, in one C++ loop on the
CPU (which also sums the bias gradient) or a few PyTorch ops elsewhere, instead of through four
recorded ops. For higher orders (create_graph=True, e.g. the R1 penalty) the backward recomputes the
reference under autograd, so those gradients are exact by construction.
"""

import math
import os

import torch
import torch.nn.functional as F

from torch_utils import custom_ops
from torch_utils.ops import bias_act_ref
from torch_utils.ops.bias_act_ref import activation_funcs, bias_shape

_SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))

DEVICE = None  # Any device: the C++ kernel where it applies, PyTorch ops elsewhere.

#----------------------------------------------------------------------------

def supported(x, b, dim, act, alpha, gain, clamp):
    return True


def apply(x, b, dim, act, alpha, gain, clamp):
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    if not needs_grad:
        if b is None and act == 'linear' and gain == 1 and clamp < 0:
            return x
        return _forward(x, b, dim, act, alpha, gain, clamp)
    if act == 'linear' and clamp < 0:
        return bias_act_ref.apply(x, b, dim, act, alpha, gain, clamp)  # An add and a scale: autograd's own is as fast.
    return _BiasActFast.apply(x, b, dim, act, alpha, gain, clamp)


def apply_in_place(x, b, dim, act, alpha, gain, clamp):
    """apply() writing the result into `x` where autograd records nothing through it (bias_act.bias_act_)."""
    if torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad)):
        return apply(x, b, dim, act, alpha, gain, clamp)
    if b is not None:
        x.add_(b.reshape(bias_shape(x, dim)))
    _finish_in_place(x, act, alpha, gain, clamp)
    return x

#----------------------------------------------------------------------------

def _plugin():
    """The C++ kernels of bias_act_cpu.cpp, or None if they cannot be built (custom_ops caches both)."""
    return custom_ops.get_plugin('bias_act_cpu_plugin', sources=['bias_act_cpu.cpp'], source_dir=_SOURCE_DIR,
                                 extra_cflags=['-O3', '-fopenmp'], extra_ldflags=['-fopenmp'])


def _kernel_applies(x, b):
    return (x.device.type == 'cpu' and x.dtype in (torch.float32, torch.float64) and
            (b is None or b.dtype == x.dtype) and _plugin() is not None)


def _memory_format_of(x):
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _kernel_layout(x, dim):
    """A contiguous view of x as [outer, channels, inner] in memory order, and a function that
    gives a result computed in that layout the shape and strides of x."""
    if dim == 1 and _memory_format_of(x) == torch.channels_last:
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


def _forward(x, b, dim, act, alpha, gain, clamp):
    """The op's value in one new tensor of x's layout, recording nothing."""
    if b is not None:
        z = torch.add(x, b.reshape(bias_shape(x, dim)))
    else:
        z = x.clone(memory_format=torch.preserve_format)
    _finish_in_place(z, act, alpha, gain, clamp)
    return z


def _finish_in_place(z, act, alpha, gain, clamp):
    """Activation, gain and clamp, overwriting `z`."""
    _IN_PLACE_ACT[act](z, alpha)
    if gain != 1:
        z.mul_(gain)
    if clamp >= 0:
        z.clamp_(-clamp, clamp)


class _BiasActFast(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, dim, act, alpha, gain, clamp):
        if _kernel_applies(x, b):
            xk, (outer, channels, inner), restore = _kernel_layout(x, dim)
            bk = b.contiguous() if b is not None else x.new_empty([0])
            y = restore(_plugin().bias_act_forward(xk, bk, outer, channels, inner, activation_funcs[act].cuda_idx, alpha, gain, clamp))
        else:
            y = _forward(x, b, dim, act, alpha, gain, clamp)
        ctx.save_for_backward(x, b, y)
        ctx.args = (dim, act, alpha, gain, clamp)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, b, y = ctx.saved_tensors
        dim, act, alpha, gain, clamp = ctx.args
        need_dx, need_db = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            dx, db = _grad_by_recompute(x, b, dy, need_dx, need_db, dim, act, alpha, gain, clamp)
        elif _kernel_applies(x, b) and dy.dtype == x.dtype:
            xk, (outer, channels, inner), restore = _kernel_layout(x, dim)
            dyk, _, _ = _kernel_layout(dy.contiguous(memory_format=_memory_format_of(x)), dim)
            bk = b.contiguous() if b is not None else x.new_empty([0])
            dx, db = _plugin().bias_act_backward(dyk.contiguous(), xk, bk, outer, channels, inner,
                                                 activation_funcs[act].cuda_idx, alpha, gain, clamp, bool(need_db))
            dx = restore(dx)
            db = db.to(b.dtype) if need_db else None
        else:
            dx = _grad(x, b, y, dy, dim, act, alpha, gain, clamp)
            db = dx.sum([i for i in range(dx.ndim) if i != dim]).to(b.dtype) if need_db else None
        return (dx if need_dx else None), db, None, None, None, None, None


def _grad(x, b, y, dy, dim, act, alpha, gain, clamp):
    """d(loss)/d(x + b), from the saved input and output, without recording a graph."""
    spec = activation_funcs[act]
    if gain == 0:
        return torch.zeros_like(x)
    if act == 'linear':
        dz = dy * gain
    else:
        z = torch.add(x, b.reshape(bias_shape(x, dim))) if b is not None else x
        a = y / gain if spec.ref == 'y' else None
        dz = spec.grad(z=z, a=a, alpha=alpha).mul_(dy)
        if gain != 1:
            dz.mul_(gain)
    if clamp >= 0:
        dz.masked_fill_(y.abs() >= clamp, 0)
    return dz


def _grad_by_recompute(x, b, dy, need_dx, need_db, dim, act, alpha, gain, clamp):
    inputs = []
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach().requires_grad_(need_dx)
        b_in = None
        if b is not None:
            b_in = b if b.requires_grad else b.detach().requires_grad_(need_db)
        y = bias_act_ref.apply(x_in, b_in, dim, act, alpha, gain, clamp)
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
