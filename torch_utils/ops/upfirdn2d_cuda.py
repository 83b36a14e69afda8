"""CUDA kernel for upfirdn2d (upsample, pad, FIR filter, downsample), with gradients of any order.

Interface used by torch_utils.ops.upfirdn2d:

    available(x, f=None, up=1, down=1, padding=0, flip_filter=False, gain=1) -> bool
    upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1) -> Tensor

Both take the public op's arguments minus `impl`. `available` is True when x is a float32, float16
or bfloat16 CUDA tensor, f is a constant (no requires_grad), the plugin builds, and this kind of
configuration (dtype, filter shape, up, down, padding, flip_filter) passed its first-use
self-check against impl='ref' (see verify_cuda). Pass the same arguments you will pass to
`upfirdn2d`; with x alone the identity configuration is checked, and `upfirdn2d` then checks its
own configuration on first use and computes it with impl='ref' if that check fails.

A 1-D filter runs as two passes of the kernel, one per axis. The gradient with respect to x is
the same op with up and down swapped, the filter flipped and the padding adjusted, so every order
of gradient runs on the kernel. CPU tensors run the same kernel code on the CPU (slowly; used to
test the kernel on machines without a GPU).
"""


import torch

from torch_utils.ops import plugin_cuda
from torch_utils.ops import verify_cuda

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


#----------------------------------------------------------------------------

def available(x, f=None, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """True if the kernel can and may compute upfirdn2d(x, f, ...) with these arguments."""
    if not isinstance(x, torch.Tensor) or x.device.type != 'cuda':
        return False
    return _config_ok(x, f, up, down, padding, flip_filter)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Same result as torch_utils.ops.upfirdn2d.upfirdn2d(..., impl='ref'), computed by the kernel."""
    if not _config_ok(x, f, up, down, padding, flip_filter):
        from torch_utils.ops import upfirdn2d as public
        with verify_cuda.reference_impl():
            return public.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain, impl='ref')
    return _upfirdn2d_kernel(x, f, up, down, padding, flip_filter, gain)

#----------------------------------------------------------------------------

def _parse_scaling(s):
    if isinstance(s, int):
        s = [s, s]
    sx, sy = s
    assert int(sx) >= 1 and int(sy) >= 1, 'up and down must be >= 1'
    return int(sx), int(sy)


def _parse_padding(padding):
    if isinstance(padding, int):
        padding = [padding, padding]
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        padding = [padding[0], padding[0], padding[1], padding[1]]
    assert len(padding) == 4, 'padding must be an int, [x, y] or [x0, x1, y0, y1]'
    return padding


def _filter_taps(f):
    """(taps_x, taps_y); None is the 1x1 identity."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def _config_ok(x, f, up, down, padding, flip_filter):
    if x.dtype not in _DTYPES or x.ndim != 4:
        return False
    if f is not None and (f.ndim not in (1, 2) or f.requires_grad):
        return False  # Filter gradients are left to the PyTorch implementations.
    if plugin_cuda.get_plugin() is None:
        return False
    up, down, padding = _parse_scaling(up), _parse_scaling(down), _parse_padding(padding)
    key = (str(x.device), str(x.dtype), f'filter {list(f.shape) if f is not None else None}', f'up={list(up)}', f'down={list(down)}',
           f'padding={padding}', f'flip_filter={bool(flip_filter)}')
    return verify_cuda.check_once('upfirdn2d', key, lambda: _self_check(x.device, x.dtype, f, up, down, padding, bool(flip_filter)))


def _self_check(device, dtype, f, up, down, padding, flip_filter):
    """Values and gradients (which run the kernel in the swapped configuration) against impl='ref'."""
    from torch_utils.ops import upfirdn2d as public
    taps_x, taps_y = _filter_taps(f)
    # An input of a few output samples, whatever the padding.
    w = max(-(-(taps_x - padding[0] - padding[1]) // up[0]), 0) + 2 * down[0] + 3
    h = max(-(-(taps_y - padding[2] - padding[3]) // up[1]), 0) + 2 * down[1] + 2
    f = f.to(device=device, dtype=torch.float32) if f is not None else None
    if f is not None:
        f = f + verify_cuda.random_tensor(f.shape, 5, device, torch.float32, 0.1)  # Catches index mix-ups in symmetric filters.
    x = verify_cuda.random_tensor([2, 3, h, w], 6, device, dtype)
    kwargs = dict(up=list(up), down=list(down), padding=padding, flip_filter=flip_filter, gain=1.5)

    def run(fn, x):
        x = x.detach().requires_grad_(True)
        y = fn(x)
        dy = verify_cuda.random_tensor(y.shape, 7, device, x.dtype)
        return [y, torch.autograd.grad(y, x, dy)[0]]

    got = run(lambda x: _upfirdn2d_kernel(x, f, **kwargs), x)
    ref = run(lambda x: public.upfirdn2d(x, f, **kwargs, impl='ref'), x.float())
    return verify_cuda.first_problem(*[verify_cuda.mismatch(n, g, r, dtype) for n, g, r in zip(['y', 'dx'], got, ref)])

#----------------------------------------------------------------------------

def _upfirdn2d_kernel(x, f, up, down, padding, flip_filter, gain):
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    config = (upx, upy, downx, downy, *_parse_padding(padding), bool(flip_filter), float(gain))
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    return _UpFirDn2d.apply(x, f, config)


def _output_size(x_shape, f, config):
    upx, upy, downx, downy, px0, px1, py0, py1 = config[:8]
    taps_x, taps_y = _filter_taps(f)
    out_w = (x_shape[3] * upx + px0 + px1 - taps_x + downx) // downx
    out_h = (x_shape[2] * upy + py0 + py1 - taps_y + downy) // downy
    assert out_w >= 1 and out_h >= 1, 'upfirdn2d: the padded image is smaller than the filter'
    return out_w, out_h


def _launch(x, f, config):
    upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain = config
    plugin = plugin_cuda.get_plugin()
    out_w, out_h = _output_size(x.shape, f, config)
    f = f.to(device=x.device, dtype=torch.float32)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))  # The kernel correlates.
    if f.ndim == 2:
        return plugin.upfirdn2d(x, (f * gain).contiguous(), upx, upy, downx, downy, px0, py0, out_w, out_h)
    # Separable: along x (taking the gain), then along y.
    t = plugin.upfirdn2d(x, (f * gain).reshape(1, -1).contiguous(), upx, 1, downx, 1, px0, 0, out_w, x.shape[2])
    return plugin.upfirdn2d(t, f.reshape(-1, 1).contiguous(), 1, upy, 1, downy, 0, py0, out_w, out_h)


def _gradient_config(x_shape, f, config):
    """The configuration whose output is the gradient with respect to the input of `config`."""
    upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain = config
    taps_x, taps_y = _filter_taps(f)
    out_w, out_h = _output_size(x_shape, f, config)
    in_h, in_w = x_shape[2], x_shape[3]
    return (downx, downy, upx, upy,
            taps_x - px0 - 1, in_w * upx - out_w * downx + px0 - upx + 1,
            taps_y - py0 - 1, in_h * upy - out_h * downy + py0 - upy + 1,
            not flip_filter, gain)


class _UpFirDn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, config):
        ctx.save_for_backward(f)
        ctx.config = config
        ctx.x_shape = x.shape
        return _launch(x, f, config)

    @staticmethod
    def backward(ctx, dy):
        f, = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            dx = _UpFirDn2d.apply(dy, f, _gradient_config(ctx.x_shape, f, ctx.config))
            assert dx.shape == ctx.x_shape
        return dx, None, None
