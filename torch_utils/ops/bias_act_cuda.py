"""bias_act, CUDA implementation: fused bias, activation, gain and clamp kernels, with gradients.

Leaf of torch_utils.ops.bias_act (see torch_utils.ops.dispatch); arguments arrive normalised. Takes
float32, float16 and bfloat16 tensors; the dispatcher runs the kernels only for configurations that
passed their first-use self-check (`config_key`, `check_inputs`, verify_cuda).

The first-order gradient is one kernel pass (mode 1), linear in the incoming gradient, so it is
differentiated again with the same kernel; the second-order term through x (nonzero only for
activations with curvature) is a third kernel pass (mode 2). Third-order gradients through x are
not provided by the kernels and raise an error. CPU tensors run the same kernel code on the CPU
(slowly; used to test the kernels on machines without a GPU).
"""

import torch

from torch_utils.ops import plugin_cuda
from torch_utils.ops import verify_cuda

DEVICE = 'cuda'

_ACT_CODE = dict(linear=0, relu=1, lrelu=2, tanh=3, sigmoid=4, elu=5, selu=6, softplus=7, swish=8)
_HAS_2ND_GRAD = {'tanh', 'sigmoid', 'elu', 'selu', 'softplus', 'swish'}
_MODE_FORWARD, _MODE_GRAD, _MODE_GRAD2 = 0, 1, 2
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

#----------------------------------------------------------------------------

def built():
    return plugin_cuda.get_plugin() is not None


def supported(x, b, dim, act, alpha, gain, clamp):
    return x.dtype in _DTYPES and act in _ACT_CODE and built()


def apply(x, b, dim, act, alpha, gain, clamp):
    config = (dim, _ACT_CODE[act], act in _HAS_2ND_GRAD, alpha, gain, clamp)
    return _BiasAct.apply(x, b, config)


def config_key(x, b, dim, act, alpha, gain, clamp):
    """What selects a distinct code path: device, dtype, activation, layout, bias and clamp."""
    return (str(x.device), str(x.dtype), act, f'ndim={x.ndim}', f'dim={dim}', 'bias' if b is not None else 'no bias',
            'clamp' if clamp >= 0 else 'no clamp')


def check_inputs(x, b, dim, act, alpha, gain, clamp):
    """A small random input of the same configuration: ([x, b], args)."""
    ndim = x.ndim
    shape = [3, 5, 4, 7, 2, 2, 2, 2][:ndim] + [2] * max(ndim - 8, 0)
    scale = 2.0
    if clamp >= 0:  # Let a part of the samples reach the clamp.
        scale = max(scale, 1.5 * clamp / max(abs(gain), 1e-8))
    xc = verify_cuda.random_tensor(shape, 1, x.device, x.dtype, scale)
    bc = verify_cuda.random_tensor([shape[dim]], 2, x.device, x.dtype) if b is not None and ndim > 0 else None
    return [xc, bc], dict(dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)

#----------------------------------------------------------------------------

def _launch(x, b, dy, g, mode, config):
    dim, act_code, _, alpha, gain, clamp = config
    empty = x.new_empty([0])
    b = b.to(device=x.device, dtype=torch.float32).contiguous() if b is not None else empty.float()
    dy = dy.to(x.dtype).contiguous() if dy is not None else empty
    g = g.to(x.dtype).contiguous() if g is not None else empty
    return plugin_cuda.get_plugin().bias_act(x.contiguous(), b, dy, g, dim, act_code, mode, alpha, gain, clamp)


def _reduce_to_bias(t, b, dim):
    return t.sum([i for i in range(t.ndim) if i != dim]).to(b.dtype) if t.ndim > 0 else t.reshape([1]).to(b.dtype)


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, config):
        ctx.save_for_backward(x, b)
        ctx.config = config
        return _launch(x, b, None, None, _MODE_FORWARD, config)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        dx = _BiasActGrad.apply(dy, x, b, ctx.config)
        db = _reduce_to_bias(dx, b, ctx.config[0]) if ctx.needs_input_grad[1] else None
        return dx, db, None


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * f'(x + b): linear in dy, so its gradient with respect to dy is itself."""
    @staticmethod
    def forward(ctx, dy, x, b, config):
        ctx.save_for_backward(dy, x, b)
        ctx.config = config
        return _launch(x, b, dy, None, _MODE_GRAD, config)

    @staticmethod
    def backward(ctx, g):
        dy, x, b = ctx.saved_tensors
        config = ctx.config
        d_dy = _BiasActGrad.apply(g, x, b, config) if ctx.needs_input_grad[0] else None
        d_x = d_b = None
        if config[2] and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = _BiasActGrad2.apply(g, dy, x, b, config)
            d_b = _reduce_to_bias(d_x, b, config[0]) if ctx.needs_input_grad[2] else None
        return d_dy, d_x, d_b, None


class _BiasActGrad2(torch.autograd.Function):
    """g * dy * f''(x + b): the gradient of dx = dy * f'(x + b) through x."""
    @staticmethod
    def forward(ctx, g, dy, x, b, config):
        return _launch(x, b, dy, g, _MODE_GRAD2, config)

    @staticmethod
    def backward(ctx, _):
        raise RuntimeError('bias_act: the CUDA kernels provide gradients up to second order; '
                           'use impl="ref" for third-order gradients')
