"""CUDA kernels for bias_act (fused bias, activation, gain and clamp), with gradients.

Interface used by torch_utils.ops.bias_act:

    available(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None) -> bool
    bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None) -> Tensor

Both take the public op's arguments minus `impl`. `available` is True when x is a float32,
float16 or bfloat16 CUDA tensor, the plugin builds, and this kind of configuration (dtype, act,
number of dimensions, dim, with/without bias and clamp) passed its first-use self-check against
impl='ref' (see verify_cuda). Pass the same arguments you will pass to `bias_act`; with x alone
the default configuration is checked, and `bias_act` then checks its own configuration on first
use and computes it with impl='ref' if that check fails.

The first-order gradient is one kernel pass (mode 1), linear in the incoming gradient, so it is
differentiated again with the same kernel; the second-order term through x (nonzero only for
activations with curvature) is a third kernel pass (mode 2). Third-order gradients through x are
not provided by the kernels and raise an error. CPU tensors run the same kernel code on the CPU
(slowly; used to test the kernels on machines without a GPU).
"""


import torch

from torch_utils.ops import plugin_cuda
from torch_utils.ops import verify_cuda

#----------------------------------------------------------------------------

_ACT_CODE = dict(linear=0, relu=1, lrelu=2, tanh=3, sigmoid=4, elu=5, selu=6, softplus=7, swish=8)
_HAS_2ND_GRAD = {'tanh', 'sigmoid', 'elu', 'selu', 'softplus', 'swish'}
_MODE_FORWARD, _MODE_GRAD, _MODE_GRAD2 = 0, 1, 2
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


#----------------------------------------------------------------------------

def available(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    """True if the kernels can and may compute bias_act(x, ...) with these arguments."""
    if not isinstance(x, torch.Tensor) or x.device.type != 'cuda':
        return False
    return _config_ok(x, b, dim, act, alpha, gain, clamp)


def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    """Same result as torch_utils.ops.bias_act.bias_act(..., impl='ref'), computed by the kernels."""
    if not _config_ok(x, b, dim, act, alpha, gain, clamp):
        from torch_utils.ops import bias_act as public
        with verify_cuda.reference_impl():
            return public.bias_act(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl='ref')
    return _bias_act_kernels(x, b, **_normalize(x, dim, act, alpha, gain, clamp))

#----------------------------------------------------------------------------

def _normalize(x, dim, act, alpha, gain, clamp):
    from torch_utils.ops.bias_act import activation_funcs
    spec = activation_funcs[act]
    return dict(dim=dim % max(x.ndim, 1), act=act,
                alpha=float(alpha if alpha is not None else spec.def_alpha),
                gain=float(gain if gain is not None else spec.def_gain),
                clamp=float(clamp if clamp is not None and clamp >= 0 else -1))


def _config_ok(x, b, dim, act, alpha, gain, clamp):
    if x.dtype not in _DTYPES or act not in _ACT_CODE or not -max(x.ndim, 1) <= dim < max(x.ndim, 1):
        return False
    if plugin_cuda.get_plugin() is None:
        return False
    args = _normalize(x, dim, act, alpha, gain, clamp)
    key = (str(x.device), str(x.dtype), act, f'ndim={x.ndim}', f'dim={args["dim"]}', 'bias' if b is not None else 'no bias',
           'clamp' if args['clamp'] >= 0 else 'no clamp')
    return verify_cuda.check_once('bias_act', key, lambda: _self_check(x.device, x.dtype, x.ndim, b is not None, args))


def _self_check(device, dtype, ndim, has_bias, args):
    """Values, gradients and second-order gradients against impl='ref' on a small random input."""
    from torch_utils.ops import bias_act as public
    shape = [3, 5, 4, 7, 2, 2, 2, 2][:ndim] + [2] * max(ndim - 8, 0)
    scale = 2.0
    if args['clamp'] >= 0:  # Let a part of the samples reach the clamp.
        scale = max(scale, 1.5 * args['clamp'] / max(abs(args['gain']), 1e-8))
    x = verify_cuda.random_tensor(shape, 1, device, dtype, scale)
    b = verify_cuda.random_tensor([shape[args['dim']]], 2, device, dtype) if has_bias and ndim > 0 else None
    dy = verify_cuda.random_tensor(shape, 3, device, dtype)
    w = verify_cuda.random_tensor(shape, 4, device, dtype)

    def run(fn, x, b, dy, w):
        x = x.detach().requires_grad_(True)
        b = b.detach().requires_grad_(True) if b is not None else None
        dy = dy.detach().requires_grad_(True)
        y = fn(x, b)
        inputs = [x] + ([b] if b is not None else [])
        grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
        grads2 = torch.autograd.grad((grads[0] * w).sum(), inputs + [dy], materialize_grads=True)
        return [y] + list(grads) + list(grads2)

    ref_args = dict(args, clamp=(args['clamp'] if args['clamp'] >= 0 else None))
    got = run(lambda x, b: _bias_act_kernels(x, b, **args), x, b, dy, w)
    ref = run(lambda x, b: public.bias_act(x, b, **ref_args, impl='ref'),
              x.float(), b.float() if b is not None else None, dy.float(), w.float())
    names = ['y', 'dx'] + (['db'] if b is not None else []) + ['d(dx.w)/dx'] + (['d(dx.w)/db'] if b is not None else []) + ['d(dx.w)/ddy']
    return verify_cuda.first_problem(*[verify_cuda.mismatch(n, g, r, dtype) for n, g, r in zip(names, got, ref)])

#----------------------------------------------------------------------------

def _bias_act_kernels(x, b, dim, act, alpha, gain, clamp):
    config = (dim, _ACT_CODE[act], act in _HAS_2ND_GRAD, alpha, gain, clamp)
    return _BiasAct.apply(x, b, config)


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
