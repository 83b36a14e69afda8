"""upfirdn2d, CUDA implementation (upsample, pad, FIR filter, downsample), with gradients of any order.

Leaf of torch_utils.ops.upfirdn2d (see torch_utils.ops.dispatch); arguments arrive normalised. Takes
float32, float16 and bfloat16 tensors with constant filters; the dispatcher runs the kernel only for
configurations that passed their first-use self-check (`config_key`, `check_inputs`, verify_cuda).

A 1-D filter runs as two passes of the kernel, one per axis. The gradient with respect to x is
the same op with up and down swapped, the filter flipped and the padding adjusted, so every order
of gradient runs on the kernel. CPU tensors run the same kernel code on the CPU (slowly; used to
test the kernel on machines without a GPU).
"""

import torch

from torch_utils.ops import _geometry
from torch_utils.ops import plugin_cuda
from torch_utils.ops import verify_cuda

DEVICE = 'cuda'

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

#----------------------------------------------------------------------------

def built():
    return plugin_cuda.get_plugin() is not None


def supported(x, f, up, down, padding, flip_filter, gain):
    # Filter gradients are left to the PyTorch implementations.
    return x.dtype in _DTYPES and not f.requires_grad and built()


def apply(x, f, up, down, padding, flip_filter, gain):
    config = (*up, *down, *padding, bool(flip_filter), float(gain))
    return _UpFirDn2d.apply(x, f, config)


def config_key(x, f, up, down, padding, flip_filter, gain):
    """What selects a distinct code path: device, dtype, filter shape, up, down, padding, flip."""
    return (str(x.device), str(x.dtype), f'filter {list(f.shape)}', f'up={list(up)}', f'down={list(down)}',
            f'padding={list(padding)}', f'flip_filter={bool(flip_filter)}')


def check_inputs(x, f, up, down, padding, flip_filter, gain):
    """A small random input of the same configuration, a few output samples wide: ([x], args)."""
    taps_x, taps_y = _geometry.filter_size(f)
    w = max(-(-(taps_x - padding[0] - padding[1]) // up[0]), 0) + 2 * down[0] + 3
    h = max(-(-(taps_y - padding[2] - padding[3]) // up[1]), 0) + 2 * down[1] + 2
    f = f.to(device=x.device, dtype=torch.float32)
    f = f + verify_cuda.random_tensor(f.shape, 5, x.device, torch.float32, 0.1)  # Catches index mix-ups in symmetric filters.
    xc = verify_cuda.random_tensor([2, 3, h, w], 6, x.device, x.dtype)
    return [xc], dict(f=f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=1.5)

#----------------------------------------------------------------------------

def _output_size(x_shape, f, config):
    upx, upy, downx, downy, px0, px1, py0, py1 = config[:8]
    taps_x, taps_y = _geometry.filter_size(f)
    out_w = _geometry.resampled_length(x_shape[3], upx, downx, px0, px1, taps_x)
    out_h = _geometry.resampled_length(x_shape[2], upy, downy, py0, py1, taps_y)
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
    taps_x, taps_y = _geometry.filter_size(f)
    out_w, out_h = _output_size(x_shape, f, config)
    return (downx, downy, upx, upy,
            *_geometry.adjoint_padding(x_shape[3], out_w, upx, downx, px0, taps_x),
            *_geometry.adjoint_padding(x_shape[2], out_h, upy, downy, py0, taps_y),
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
