"""2-D convolution with optional up/downsampling, fused where possible.

conv2d_resample(x, w, f, up, down, padding) computes
    upfirdn2d(x, f, up=up, padding=p, gain=up**2)  ->  conv2d(·, w) (no padding)  ->  upfirdn2d(·, f, down=down)
where `p` is the user padding plus the padding that keeps the resampled image centred. 'ref' runs
exactly that composition. The other implementations run cheaper equivalents, all exact up to
rounding: a transposed convolution with stride `up` followed by the filter (never convolving the
inserted zeros), the filter followed by a convolution with stride `down` (never computing the
discarded samples), a 1x1 convolution at the lower of the two resolutions, or a single padded
convolution when there is no resampling.
"""

import torch

from torch_utils.ops import _geometry
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import dispatch
from torch_utils.ops import upfirdn2d

#----------------------------------------------------------------------------

def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False, impl='cuda'):
    r"""2-D convolution with optional up/downsampling.

    Args:
        x:           Input tensor of shape [batch_size, in_channels, in_height, in_width].
        w:           Weight tensor of shape [out_channels, in_channels // groups, kernel_height, kernel_width].
        f:           Low-pass filter for up/downsampling (see upfirdn2d.setup_filter); None = identity.
        up:          Integer upsampling factor.
        down:        Integer downsampling factor.
        padding:     Padding with respect to the upsampled image: int, [x, y] or [x0, x1, y0, y1].
        groups:      Split input channels into N groups.
        flip_weight: False = convolution, True = correlation (as torch.nn.functional.conv2d).
        flip_filter: False = convolution, True = correlation.
        impl:        'ref' = the plain composition; 'fast'/'cuda' = the fused equivalents, with
                     upfirdn2d called with the same impl.

    Returns:
        Tensor of shape [batch_size, out_channels, out_height, out_width].
    """
    assert isinstance(x, torch.Tensor) and x.ndim == 4, 'x must be an NCHW tensor'
    assert isinstance(w, torch.Tensor) and w.ndim == 4 and w.dtype == x.dtype, 'w must be a 4-D tensor of the dtype of x'
    assert f is None or (isinstance(f, torch.Tensor) and f.ndim in (1, 2) and f.dtype == torch.float32)
    assert isinstance(up, int) and up >= 1, 'up must be a positive int'
    assert isinstance(down, int) and down >= 1, 'down must be a positive int'
    assert isinstance(groups, int) and groups >= 1 and x.shape[1] == w.shape[1] * groups, 'channel count mismatch'
    out_channels, _in_channels_per_group, kh, kw = w.shape
    fw, fh = _geometry.filter_size(f)
    pad = _geometry.parse_padding(padding)

    # Padding that keeps the image centred, as upsample2d() and downsample2d() choose it.
    if up > 1:
        pad = _geometry.added_padding(pad, _geometry.centring_padding(fw, up=up), _geometry.centring_padding(fh, up=up))
    if down > 1:
        pad = _geometry.added_padding(pad, _geometry.centring_padding(fw, down=down), _geometry.centring_padding(fh, down=down))
    px0, px1, py0, py1 = pad

    impl = dispatch.resolve_impl(impl, x)
    if impl == 'ref':
        x = upfirdn2d.upfirdn2d(x=x, f=(f if up > 1 else None), up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter, impl='ref')
        x = _conv2d(x=x, w=w, groups=groups, flip_weight=flip_weight)
        if down > 1:
            x = upfirdn2d.upfirdn2d(x=x, f=f, down=down, flip_filter=flip_filter, impl='ref')
        return x

    # A 1x1 convolution commutes with the resampling: run it at the lower resolution.
    if kw == 1 and kh == 1 and up == 1 and down > 1:
        x = upfirdn2d.upfirdn2d(x=x, f=f, down=down, padding=pad, flip_filter=flip_filter, impl=impl)
        return _conv2d(x=x, w=w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv2d(x=x, w=w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d.upfirdn2d(x=x, f=f, up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter, impl=impl)

    # Downsampling only: filter, then a strided convolution computes just the kept samples.
    if up == 1 and down > 1:
        x = upfirdn2d.upfirdn2d(x=x, f=f, padding=pad, flip_filter=flip_filter, impl=impl)
        return _conv2d(x=x, w=w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling: a transposed convolution with stride `up` scatters the weights without touching
    # the inserted zeros; the filter then runs on its full output, cropped or padded to match.
    # The transposed convolution performs a true convolution, so it gets the flipped correlation
    # kernel, and its own padding argument takes over whatever both sides crop anyway.
    if up > 1:
        pxt = max(min(kw - 1 - px0, kw - up - px1), 0)
        pyt = max(min(kh - 1 - py0, kh - up - py1), 0)
        wt = w.flip([2, 3]) if flip_weight else w
        wt = wt.reshape(groups, out_channels // groups, -1, kh, kw).transpose(1, 2).reshape(-1, out_channels // groups, kh, kw)
        x = conv2d_gradfix.conv_transpose2d(input=x, weight=wt, stride=up, padding=[pyt, pxt], groups=groups)
        x = upfirdn2d.upfirdn2d(x=x, f=f, padding=[px0 - kw + 1 + pxt, px1 - kw + up + pxt, py0 - kh + 1 + pyt, py1 - kh + up + pyt], gain=up ** 2, flip_filter=flip_filter, impl=impl)
        if down > 1:
            x = upfirdn2d.upfirdn2d(x=x, f=f, down=down, flip_filter=flip_filter, impl=impl)
        return x

    # No resampling: symmetric non-negative padding is the convolution's own.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d(x=x, w=w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    x = upfirdn2d.upfirdn2d(x=x, f=None, padding=pad, impl=impl)
    return _conv2d(x=x, w=w, groups=groups, flip_weight=flip_weight)

#----------------------------------------------------------------------------

def _conv2d(x, w, stride=1, padding=0, groups=1, flip_weight=True):
    """conv2d_gradfix.conv2d() as a correlation (flip_weight=True) or a true convolution."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    return conv2d_gradfix.conv2d(input=x, weight=w, stride=stride, padding=padding, groups=groups)

#----------------------------------------------------------------------------
