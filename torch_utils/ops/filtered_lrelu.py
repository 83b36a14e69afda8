"""Filtered leaky ReLU (StyleGAN3): upsample with a FIR filter, apply leaky ReLU, downsample.

    y = upfirdn2d(clamp(lrelu(upfirdn2d(x + b, fu, up, padding, gain=up**2), slope) * gain), fd, down)

The public op: validates and normalises the arguments, then runs the implementation that
torch_utils.ops.dispatch chooses among filtered_lrelu_ref (the composition above), filtered_lrelu_fast
(a fused C++ kernel for CPU tensors) and filtered_lrelu_cuda. Gradients flow to `x` and `b` to any
order (the derivative of the leaky ReLU is taken as piecewise constant, so second-order terms flow
through the incoming gradient only); the filters are float32 constants, as in upfirdn2d.
"""

import numpy as np
import torch

from torch_utils import misc
from torch_utils.ops import _geometry
from torch_utils.ops import dispatch
from torch_utils.ops import filtered_lrelu_cuda
from torch_utils.ops import filtered_lrelu_fast
from torch_utils.ops import filtered_lrelu_ref

_LEAVES = dict(ref=filtered_lrelu_ref, fast=filtered_lrelu_fast, cuda=filtered_lrelu_cuda)

#----------------------------------------------------------------------------

def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2, clamp=None, flip_filter=False, impl='cuda'):
    r"""Bias, upsampling FIR filter, leaky ReLU, clamp and downsampling FIR filter, on NCHW.

    Args:
        x:           Input tensor [batch, channels, height, width].
        fu:          Upsampling filter, 1-D (separable, [taps]) or 2-D ([taps_y, taps_x]); None = identity.
        fd:          Downsampling filter, same conventions as `fu`.
        b:           Bias [channels] added before upsampling, or None.
        up:          Integer upsampling factor.
        down:        Integer downsampling factor.
        padding:     Padding of the upsampled image: int, [x, y] or [x0, x1, y0, y1]; negative crops.
        gain:        Gain applied after the leaky ReLU.
        slope:       Slope of the leaky ReLU for negative inputs.
        clamp:       Clamp the activations to [-clamp, +clamp] after the gain; None disables.
        flip_filter: False = convolution, True = correlation.
        impl:        'ref', 'fast' or 'cuda' (see torch_utils.ops).

    Returns:
        Tensor [batch, channels, out_height, out_width] of the same dtype as `x`.
    """
    tensors, args = _prepare(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    out_shape = output_shape(x.shape, fu=fu, fd=fd, up=args['up'], down=args['down'], padding=args['padding'])
    y = dispatch.choose_implementation('filtered_lrelu', _LEAVES, impl, tensors, args).apply(*tensors, **args)
    misc.assert_shape(y, out_shape)
    return y


def _prepare(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2, clamp=None, flip_filter=False):
    """Validates the arguments; returns the leaves' ([x, b], arguments) with `padding` a tuple and
    `clamp` a float (-1 = none)."""
    assert isinstance(x, torch.Tensor) and x.ndim == 4, 'x must be a 4-D NCHW tensor'
    up, down = int(up), int(down)
    assert up >= 1 and down >= 1, 'up and down must be positive integers'
    if b is not None:
        assert isinstance(b, torch.Tensor) and b.ndim == 1 and b.shape[0] == x.shape[1], 'b must be [channels]'
    for f in (fu, fd):
        if f is not None:
            assert isinstance(f, torch.Tensor) and f.ndim in (1, 2), 'filters must be 1-D or 2-D tensors'
            assert f.dtype == torch.float32 and not f.requires_grad, 'filters must be float32 constants (see upfirdn2d.setup_filter)'
    padding = _geometry.parse_padding(padding)
    args = dict(fu=fu, fd=fd, up=up, down=down, padding=padding, gain=float(gain), slope=float(slope),
                clamp=float(clamp if clamp is not None and clamp >= 0 else -1), flip_filter=bool(flip_filter))
    return [x, b], args

#----------------------------------------------------------------------------

def output_shape(x_shape, fu=None, fd=None, up=1, down=1, padding=0):
    """Shape [N, C, H, W] of filtered_lrelu's output, derived from the two upfirdn2d steps."""
    n, c, h, w = x_shape
    px0, px1, py0, py1 = _geometry.parse_padding(padding)
    fu_w, fu_h = _geometry.filter_size(fu)
    fd_w, fd_h = _geometry.filter_size(fd)
    mid_w = _geometry.resampled_length(w, up, 1, px0, px1, fu_w)
    mid_h = _geometry.resampled_length(h, up, 1, py0, py1, fu_h)
    out_w = _geometry.resampled_length(mid_w, 1, down, 0, 0, fd_w)
    out_h = _geometry.resampled_length(mid_h, 1, down, 0, 0, fd_h)
    assert mid_w >= 1 and mid_h >= 1 and out_w >= 1 and out_h >= 1, \
        f'filtered_lrelu: empty output for input {list(x_shape)} (check padding and filter sizes)'
    return [n, c, out_h, out_w]

#----------------------------------------------------------------------------
