"""Upsample, FIR filter, downsample: the resampling primitive of the StyleGAN family.

upfirdn2d(x, f, up, down, padding) on an NCHW tensor, per spatial axis:
  1. insert up-1 zeros after every input sample (length n -> n * up);
  2. pad with zeros (`padding` is relative to the upsampled signal; negative values crop);
  3. convolve with the FIR filter `f` (a true convolution; flip_filter=True makes it a correlation),
     keeping only the outputs where the filter lies entirely inside the padded signal;
  4. keep every down-th sample, starting with the first.
A 1-D filter is applied along both axes (separable); a 2-D filter is applied as is.

Implementations (see torch_utils.ops): 'ref' spells out the four steps above; 'fast' computes the
same result polyphase, touching neither the inserted zeros nor the discarded outputs, in C++
(upfirdn2d_cpu.cpp, JIT-built) for float32/float64 CPU tensors and with strided PyTorch ops
otherwise; 'cuda' calls the kernels in upfirdn2d_cuda. The gradient of the op with respect to x
is the same op with `up` and `down` swapped, which is how 'fast' implements its backward pass (to
any order).
"""

import math
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils.ops import resolve_impl

#----------------------------------------------------------------------------
# Argument parsing.

def _parse_scaling(scaling):
    if isinstance(scaling, (int, np.integer)):
        scaling = [scaling, scaling]
    assert isinstance(scaling, (list, tuple)) and len(scaling) == 2, 'scaling must be an int or [x, y]'
    assert all(isinstance(s, (int, np.integer)) and s >= 1 for s in scaling), 'scaling factors must be positive ints'
    return int(scaling[0]), int(scaling[1])


def _parse_padding(padding):
    if isinstance(padding, (int, np.integer)):
        padding = [padding, padding]
    assert isinstance(padding, (list, tuple)), 'padding must be an int, [x, y] or [x0, x1, y0, y1]'
    assert all(isinstance(p, (int, np.integer)) for p in padding), 'padding values must be ints'
    if len(padding) == 2:
        px, py = padding
        padding = [px, px, py, py]
    assert len(padding) == 4, 'padding must be an int, [x, y] or [x0, x1, y0, y1]'
    return tuple(int(p) for p in padding)


def _get_filter_size(f):
    """Returns (width, height) of the filter; None counts as a single tap."""
    if f is None:
        return 1, 1
    assert isinstance(f, torch.Tensor) and f.ndim in (1, 2)
    fw = f.shape[-1]
    fh = f.shape[0]
    assert fw >= 1 and fh >= 1
    return fw, fh

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
    f = torch.as_tensor(f, dtype=torch.float32)
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
    assert isinstance(x, torch.Tensor) and x.ndim == 4, 'x must be an NCHW tensor'
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    assert isinstance(f, torch.Tensor) and f.ndim in (1, 2), 'f must be a 1-D or 2-D tensor'
    assert f.dtype == torch.float32 and not f.requires_grad, 'f must be a float32 constant (see setup_filter)'
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    out_w = (x.shape[3] * upx + padx0 + padx1 - fw + downx) // downx
    out_h = (x.shape[2] * upy + pady0 + pady1 - fh + downy) // downy
    assert out_w >= 1 and out_h >= 1, 'the padded image is smaller than the filter'
    args = dict(up=(upx, upy), down=(downx, downy), padding=(padx0, padx1, pady0, pady1), flip_filter=bool(flip_filter), gain=float(gain))

    impl = resolve_impl(impl, x)
    if impl == 'cuda':
        try:
            from torch_utils.ops import upfirdn2d_cuda
        except ImportError:
            upfirdn2d_cuda = None
        cuda_args = dict(f=f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
        if upfirdn2d_cuda is not None and upfirdn2d_cuda.available(x, **cuda_args):
            return upfirdn2d_cuda.upfirdn2d(x, **cuda_args)
        _warn_fallback('the CUDA kernel is unavailable for these arguments')
        impl = 'fast'
    if impl == 'fast':
        return _upfirdn2d_fast_function(f=f, **args).apply(x, f)
    return _upfirdn2d_ref(x=x, f=f, **args)

#----------------------------------------------------------------------------

def _upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain):
    """The plain definition: zero insertion, padding, a full 2-D convolution, subsampling."""
    batch_size, num_channels, in_height, in_width = x.shape
    (upx, upy), (downx, downy) = up, down
    padx0, padx1, pady0, pady1 = padding

    # Insert up-1 zeros after every sample.
    x = x.reshape([batch_size, num_channels, in_height, 1, in_width, 1])
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape([batch_size, num_channels, in_height * upy, in_width * upx])

    # Pad with zeros, then crop where the padding is negative.
    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[:, :, max(-pady0, 0) : x.shape[2] - max(-pady1, 0), max(-padx0, 0) : x.shape[3] - max(-padx1, 0)]

    # Convolve with the filter; a separable filter becomes its outer product. conv2d correlates,
    # so a true convolution needs the flipped kernel.
    if f.ndim == 1:
        f = torch.outer(f, f) * gain
    else:
        f = f * gain
    if not flip_filter:
        f = f.flip([0, 1])
    f = f.to(x.dtype)[np.newaxis, np.newaxis].repeat([num_channels, 1, 1, 1])
    x = F.conv2d(x, f, groups=num_channels)

    # Keep every down-th sample.
    return x[:, :, ::downy, ::downx]

#----------------------------------------------------------------------------
# Fast path. Per axis, with g the correlation kernel (f flipped unless flip_filter) of length L,
#   y[o] = sum_i x[i] * g[i * up + pad0 - o * down].
# Outputs o = r + P * q (P = up / gcd(up, down)) share one polyphase component of g, and for each
# phase r the sum is a strided correlation of x (stride S = down / gcd) with the taps
# g[B_r + up * m], starting at input index q * S - A_r, where pad0 - r * down = up * A_r + B_r.

def _phase_plan(n_in, up, down, pad0, pad1, num_taps):
    """Per output phase: (phase r, taps offset B, input start -A, number of outputs Q)."""
    n_out = (n_in * up + pad0 + pad1 - num_taps) // down + 1
    g = math.gcd(up, down)
    num_phases = up // g
    plan = []
    for r in range(min(num_phases, n_out)):
        c = pad0 - r * down
        plan.append((r, c % up, -(c // up), (n_out - r + num_phases - 1) // num_phases))
    return n_out, num_phases, down // g, plan


def _resample_axis(x, taps, up, down, pad0, pad1, axis):
    """Resamples `x` along `axis` with the correlation kernel `taps` (Python floats)."""
    n_in = x.shape[axis]
    n_out, num_phases, stride, plan = _phase_plan(n_in, up, down, pad0, pad1, len(taps))
    if len(taps) == 1 and up == 1 and down == 1 and pad0 == 0 and pad1 == 0:
        return x * taps[0]

    # Zero-pad the input once so that every tap reads a plain strided slice.
    lo = max([0] + [-start for _r, _b, start, _q in plan])
    hi = max([0] + [start + (num_q - 1) * stride + (len(taps) - b + up - 1) // up - n_in for _r, b, start, num_q in plan])
    if lo or hi:
        pad = [0, 0] * (x.ndim - 1 - axis) + [lo, hi]
        x = F.pad(x, pad)

    phases = []
    for r, b, start, num_q in plan:
        sub_taps = taps[b::up]
        y = None
        for m, tap in enumerate(sub_taps):
            if tap == 0:
                continue
            first = lo + start + m
            src = x.narrow(axis, first, (num_q - 1) * stride + 1)
            if stride > 1:
                src = src[(slice(None),) * axis + (slice(None, None, stride),)]
            if y is None:
                y = src * tap
            else:
                y.add_(src, alpha=tap)
        if y is None:
            shape = list(x.shape)
            shape[axis] = num_q
            y = x.new_zeros(shape)
        phases.append(y)

    if len(phases) == 1:
        return phases[0]
    # Interleave the phases: output o = r + P * q comes from phase r, entry q.
    if n_out % num_phases != 0:
        full_q = phases[0].shape[axis]
        phases = [p if p.shape[axis] == full_q else F.pad(p, [0, 0] * (x.ndim - 1 - axis) + [0, 1]) for p in phases]
    y = torch.stack(phases, dim=axis + 1)
    shape = list(y.shape)
    shape[axis : axis + 2] = [shape[axis] * shape[axis + 1]]
    return y.reshape(shape).narrow(axis, 0, n_out)


def _separate_filter(f):
    """Returns (fy, fx) as float64 with f == outer(fy, fx) up to rounding, or None if f has
    higher rank."""
    f = f.double()   # so that rounding in the separation stays below that of float64 inputs
    if f.ndim == 1:
        return f, f
    flat = f.abs().argmax().item()
    i, j = divmod(flat, f.shape[1])
    pivot = f[i, j]
    if pivot == 0:
        return torch.zeros_like(f[:, 0]), torch.zeros_like(f[0])
    fy = f[:, j] / pivot
    fx = f[i].clone()
    if torch.allclose(torch.outer(fy, fx), f, rtol=1e-6, atol=1e-7 * pivot.abs().item()):
        return fy, fx
    return None


_taps_cache = dict()

def _correlation_taps(f, flip_filter):
    """The correlation kernel of f as Python floats: ('separable', taps_y, taps_x) or ('full',
    rows). Cached by value: networks call the op many times with the same few filters."""
    key = (tuple(f.shape), flip_filter, tuple(f.flatten().tolist()))
    if key not in _taps_cache:
        kernel = f.detach().cpu() if flip_filter else f.detach().cpu().flip(list(range(f.ndim)))
        separated = _separate_filter(kernel)
        if separated is not None:
            _taps_cache[key] = ('separable', separated[0].tolist(), separated[1].tolist())
        else:
            _taps_cache[key] = ('full', kernel.double().tolist())
        if len(_taps_cache) > 1024:   # unbounded growth would mean filters computed per call
            _taps_cache.pop(next(iter(_taps_cache)))
    return _taps_cache[key]


_cpu_plugin = None

def _get_cpu_plugin():
    """The C++ kernels of upfirdn2d_cpu.cpp, or None if they cannot be built."""
    global _cpu_plugin
    if _cpu_plugin is None:
        from torch_utils import custom_ops
        _cpu_plugin = custom_ops.get_plugin('upfirdn2d_cpu_plugin', sources=['upfirdn2d_cpu.cpp'], source_dir=os.path.dirname(__file__),
            extra_cflags=['-O3', '-fopenmp'], extra_ldflags=['-fopenmp']) or False
    return _cpu_plugin or None


def _upfirdn2d_fast_forward(x, f, up, down, padding, flip_filter, gain):
    (upx, upy), (downx, downy) = up, down
    padx0, padx1, pady0, pady1 = padding
    kind, *taps = _correlation_taps(f, flip_filter)
    if kind == 'separable':
        taps_y = [t * gain for t in taps[0]]
        taps_x = taps[1]
    else:
        kernel = [[t * gain for t in row] for row in taps[0]]

    if x.device.type == 'cpu' and x.dtype in (torch.float32, torch.float64) and _get_cpu_plugin() is not None:
        fw, fh = _get_filter_size(f)
        out_w = (x.shape[3] * upx + padx0 + padx1 - fw + downx) // downx
        out_h = (x.shape[2] * upy + pady0 + pady1 - fh + downy) // downy
        geometry = (upx, upy, downx, downy, padx0, pady0, out_w, out_h)
        as_tensor = lambda values: torch.tensor(values, dtype=torch.float64)
        if kind == 'separable':
            return _get_cpu_plugin().upfirdn2d_separable(x.contiguous(), as_tensor(taps_x), as_tensor(taps_y), *geometry)
        return _get_cpu_plugin().upfirdn2d_full(x.contiguous(), as_tensor(kernel), *geometry)

    if kind == 'separable':
        # Run the axis that shrinks the data most first.
        if upy / downy < upx / downx:
            x = _resample_axis(x, taps_y, upy, downy, pady0, pady1, axis=2)
            return _resample_axis(x, taps_x, upx, downx, padx0, padx1, axis=3)
        x = _resample_axis(x, taps_x, upx, downx, padx0, padx1, axis=3)
        return _resample_axis(x, taps_y, upy, downy, pady0, pady1, axis=2)
    return _resample_2d(x, kernel, up, down, padding)


def _resample_2d(x, taps, up, down, padding):
    """Non-separable filters: polyphase in both axes, one strided slice per 2-D tap."""
    (upx, upy), (downx, downy) = up, down
    padx0, padx1, pady0, pady1 = padding
    kh, kw = len(taps), len(taps[0])
    out_h, phases_y, stride_y, plan_y = _phase_plan(x.shape[2], upy, downy, pady0, pady1, kh)
    out_w, phases_x, stride_x, plan_x = _phase_plan(x.shape[3], upx, downx, padx0, padx1, kw)
    lo_y = max([0] + [-s for _r, _b, s, _q in plan_y])
    hi_y = max([0] + [s + (q - 1) * stride_y + (kh - b + upy - 1) // upy - x.shape[2] for _r, b, s, q in plan_y])
    lo_x = max([0] + [-s for _r, _b, s, _q in plan_x])
    hi_x = max([0] + [s + (q - 1) * stride_x + (kw - b + upx - 1) // upx - x.shape[3] for _r, b, s, q in plan_x])
    if lo_x or hi_x or lo_y or hi_y:
        x = F.pad(x, [lo_x, hi_x, lo_y, hi_y])
    out = x.new_zeros([x.shape[0], x.shape[1], out_h, out_w])
    for ry, by, sy, qy in plan_y:
        for rx, bx, sx, qx in plan_x:
            dst = out[:, :, ry::phases_y, rx::phases_x]
            for my, row in enumerate(taps[by::upy]):
                for mx, tap in enumerate(row[bx::upx]):
                    if tap == 0:
                        continue
                    y0 = lo_y + sy + my
                    x0 = lo_x + sx + mx
                    src = x[:, :, y0 : y0 + (qy - 1) * stride_y + 1 : stride_y, x0 : x0 + (qx - 1) * stride_x + 1 : stride_x]
                    dst.add_(src, alpha=tap)
    return out


_fast_functions = dict()

def _upfirdn2d_fast_function(f, up, down, padding, flip_filter, gain):
    """An autograd function for fixed arguments whose backward is the transposed resampling."""
    fw, fh = _get_filter_size(f)
    key = (fw, fh, f.ndim, up, down, padding, flip_filter, gain)
    if key in _fast_functions:
        return _fast_functions[key]
    (upx, upy), (downx, downy) = up, down
    padx0, padx1, pady0, pady1 = padding

    class Upfirdn2dFast(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, f):
            ctx.save_for_backward(f)
            ctx.in_size = x.shape[2:]
            return _upfirdn2d_fast_forward(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)

        @staticmethod
        def backward(ctx, dy):
            f, = ctx.saved_tensors
            in_h, in_w = ctx.in_size
            out_h, out_w = dy.shape[2:]
            grad_padding = (
                fw - padx0 - 1,
                in_w * upx - out_w * downx + padx0 - upx + 1,
                fh - pady0 - 1,
                in_h * upy - out_h * downy + pady0 - upy + 1,
            )
            dx = None
            if ctx.needs_input_grad[0]:
                transposed = _upfirdn2d_fast_function(f=f, up=down, down=up, padding=grad_padding, flip_filter=(not flip_filter), gain=gain)
                dx = transposed.apply(dy, f)
                assert dx.shape[2:] == (in_h, in_w)
            return dx, None

    _fast_functions[key] = Upfirdn2dFast
    return Upfirdn2dFast

#----------------------------------------------------------------------------

def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl='cuda'):
    r"""Filters a batch of images with `f`, keeping the image size (given zero user padding).

    Args: as upfirdn2d(); `padding` is added to the padding that centres the filter.
    Returns: Tensor of shape [batch_size, num_channels, out_height, out_width].
    """
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    r"""Upsamples a batch of images by `up` with the interpolation filter `f`.

    The padding keeps pixel centres aligned: output pixel j lies at input coordinate
    (j + 0.5) / up - 0.5. The gain is multiplied by up ** 2 to make up for the inserted zeros.

    Args: as upfirdn2d(); `padding` is added to the centring padding.
    Returns: Tensor of shape [batch_size, num_channels, out_height, out_width].
    """
    upx, upy = _parse_scaling(up)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        padx0 + (fw + upx - 1) // 2,
        padx1 + (fw - upx) // 2,
        pady0 + (fh + upy - 1) // 2,
        pady1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    r"""Downsamples a batch of images by `down` with the anti-aliasing filter `f`.

    The padding keeps pixel centres aligned: output pixel j lies at input coordinate
    (j + 0.5) * down - 0.5.

    Args: as upfirdn2d(); `padding` is added to the centring padding.
    Returns: Tensor of shape [batch_size, num_channels, out_height, out_width].
    """
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        padx0 + (fw - downx + 1) // 2,
        padx1 + (fw - downx) // 2,
        pady0 + (fh - downy + 1) // 2,
        pady1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)

#----------------------------------------------------------------------------

_fallback_warned = False

def _warn_fallback(reason):
    global _fallback_warned
    if not _fallback_warned:
        _fallback_warned = True
        warnings.warn(f'upfirdn2d: {reason}; falling back to the fast PyTorch implementation.')

#----------------------------------------------------------------------------
