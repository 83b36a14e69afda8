"""Upsample, FIR filter, downsample: the resampling primitive of the StyleGAN family.

upfirdn2d(x, f, up, down, padding) on an NCHW tensor, per spatial axis:
  1. insert up-1 zeros after every input sample (length n -> n * up);
  2. pad with zeros (`padding` is relative to the upsampled signal; negative values crop);
  3. convolve with the FIR filter `f` (a true convolution; flip_filter=True makes it a correlation),
     keeping only the outputs where the filter lies entirely inside the padded signal;
  4. keep every down-th sample, starting with the first.
A 1-D filter is applied along both axes (separable); a 2-D filter is applied as is.

The public op: validates and normalises the arguments, then runs the implementation that
torch_utils.ops.dispatch chooses among upfirdn2d_ref (the four steps above), upfirdn2d_fast
(polyphase, C++ on the CPU) and upfirdn2d_cuda.
"""

import numpy as np
import torch

from torch_utils.ops import _geometry
from torch_utils.ops import dispatch
from torch_utils.ops import upfirdn2d_cuda
from torch_utils.ops import upfirdn2d_fast
from torch_utils.ops import upfirdn2d_ref

_LEAVES = dict(ref=upfirdn2d_ref, fast=upfirdn2d_fast, cuda=upfirdn2d_cuda)

#----------------------------------------------------------------------------

def setup_filter(f, device=torch.device('cpu'), normalize=True, flip_filter=False, gain=1, separable=None):
    r"""Converts filter taps to the float32 tensor that upfirdn2d() expects.

    Args:
        f:           Taps: nested lists, numpy array or tensor with 0, 1 or 2 dimensions; None = [1].
        device:      Where to put the result.
        normalize:   Scale the taps so that they sum to 1.
        flip_filter: Flip the taps (turns upfirdn2d's convolution into a correlation).
        gain:        Overall gain of the filter; since a 1-D filter is applied twice, its taps are
                     scaled by gain ** (1 / 2), and those of a 2-D filter by gain.
        separable:   Return a 1-D filter (True) or a 2-D one (False); None picks 1-D for 1-D input
                     with at least 8 taps and 2-D otherwise (the outer product of a 1-D input).

    Returns:
        float32 tensor of shape [taps] (separable) or [taps_y, taps_x].
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32, device=device)  # Made where it goes (also under a meta default device).
    assert f.ndim in (0, 1, 2) and f.numel() > 0, 'filter must have 0, 1 or 2 dimensions and at least one tap'
    if f.ndim == 0:
        f = f[np.newaxis]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    assert f.ndim == (1 if separable else 2), 'a 2-D filter cannot be made separable'
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)

#----------------------------------------------------------------------------

def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl='cuda'):
    r"""Pads, upsamples, filters and downsamples a batch of 2-D images.

    Args:
        x:           Input tensor of shape [batch_size, num_channels, in_height, in_width].
        f:           Float32 FIR filter of shape [filter_taps] (separable), [filter_height,
                     filter_width], or None (identity).
        up:          Integer upsampling factor, an int or [x, y].
        down:        Integer downsampling factor, an int or [x, y].
        padding:     Padding relative to the upsampled image: int, [x, y] or [x0, x1, y0, y1];
                     negative values crop.
        flip_filter: False = convolution, True = correlation.
        gain:        Overall scaling of the signal magnitude.
        impl:        'ref', 'fast' or 'cuda' (see torch_utils.ops).

    Returns:
        Tensor of shape [batch_size, num_channels, out_height, out_width] with
        out_size = (in_size * up + pad0 + pad1 - filter_size + down) // down.
    """
    tensors, args = _prepare(x, f, up, down, padding, flip_filter, gain)
    return dispatch.choose_implementation('upfirdn2d', _LEAVES, impl, tensors, args).apply(*tensors, **args)


def _prepare(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Validates the arguments; returns the leaves' ([x], arguments) with `f` a tensor and
    `up`, `down`, `padding` tuples."""
    assert isinstance(x, torch.Tensor) and x.ndim == 4, 'x must be an NCHW tensor'
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    assert isinstance(f, torch.Tensor) and f.ndim in (1, 2), 'f must be a 1-D or 2-D tensor'
    assert f.dtype == torch.float32 and not f.requires_grad, 'f must be a float32 constant (see setup_filter)'
    up = _geometry.parse_scaling(up)
    down = _geometry.parse_scaling(down)
    padding = _geometry.parse_padding(padding)
    fw, fh = _geometry.filter_size(f)
    out_w = _geometry.resampled_length(x.shape[3], up[0], down[0], padding[0], padding[1], fw)
    out_h = _geometry.resampled_length(x.shape[2], up[1], down[1], padding[2], padding[3], fh)
    assert out_w >= 1 and out_h >= 1, 'the padded image is smaller than the filter'
    args = dict(f=f, up=up, down=down, padding=padding, flip_filter=bool(flip_filter), gain=float(gain))
    return [x], args

#----------------------------------------------------------------------------

def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl='cuda'):
    r"""Filters a batch of images with `f`, keeping the image size (given zero user padding).

    Args: as upfirdn2d(); `padding` is added to the padding that centres the filter.
    Returns: Tensor of shape [batch_size, num_channels, out_height, out_width].
    """
    fw, fh = _geometry.filter_size(f)
    padding = _geometry.added_padding(_geometry.parse_padding(padding), _geometry.centring_padding(fw), _geometry.centring_padding(fh))
    return upfirdn2d(x, f, padding=padding, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    r"""Upsamples a batch of images by `up` with the interpolation filter `f`.

    The padding keeps pixel centres aligned: output pixel j lies at input coordinate
    (j + 0.5) / up - 0.5. The gain is multiplied by up ** 2 to make up for the inserted zeros.

    Args: as upfirdn2d(); `padding` is added to the centring padding.
    Returns: Tensor of shape [batch_size, num_channels, out_height, out_width].
    """
    (upx, upy), (fw, fh) = _geometry.parse_scaling(up), _geometry.filter_size(f)
    padding = _geometry.added_padding(_geometry.parse_padding(padding),
                                      _geometry.centring_padding(fw, up=upx), _geometry.centring_padding(fh, up=upy))
    return upfirdn2d(x, f, up=(upx, upy), padding=padding, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    r"""Downsamples a batch of images by `down` with the anti-aliasing filter `f`.

    The padding keeps pixel centres aligned: output pixel j lies at input coordinate
    (j + 0.5) * down - 0.5.

    Args: as upfirdn2d(); `padding` is added to the centring padding.
    Returns: Tensor of shape [batch_size, num_channels, out_height, out_width].
    """
    (downx, downy), (fw, fh) = _geometry.parse_scaling(down), _geometry.filter_size(f)
    padding = _geometry.added_padding(_geometry.parse_padding(padding),
                                      _geometry.centring_padding(fw, down=downx), _geometry.centring_padding(fh, down=downy))
    return upfirdn2d(x, f, down=(downx, downy), padding=padding, flip_filter=flip_filter, gain=gain, impl=impl)

#----------------------------------------------------------------------------
