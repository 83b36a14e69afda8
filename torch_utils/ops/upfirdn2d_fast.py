"""upfirdn2d, fast implementation: polyphase resampling that touches neither the inserted zeros
nor the discarded outputs; C++ (upfirdn2d_cpu.cpp, JIT-built) for float32/float64 CPU tensors, strided
PyTorch ops otherwise. The gradient with respect to x is the same op with `up` and `down` swapped,
which is how the backward pass is computed (to any order).

Leaf of torch_utils.ops.upfirdn2d (see torch_utils.ops.dispatch); arguments arrive normalised.
"""

import math
import os

import torch
import torch.nn.functional as F

from torch_utils import custom_ops
from torch_utils.ops import _geometry

_SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))

DEVICE = None  # Any device: the C++ kernel where it applies, PyTorch ops elsewhere.

#----------------------------------------------------------------------------

def supported(x, f, up, down, padding, flip_filter, gain):
    return True


def apply(x, f, up, down, padding, flip_filter, gain):
    return _fast_function(f=f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain).apply(x, f)

#----------------------------------------------------------------------------
# Per axis, with g the correlation kernel (f flipped unless flip_filter) of length L,
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


def _plugin():
    """The C++ kernels of upfirdn2d_cpu.cpp, or None if they cannot be built (custom_ops caches both)."""
    return custom_ops.get_plugin('upfirdn2d_cpu_plugin', sources=['upfirdn2d_cpu.cpp'], source_dir=_SOURCE_DIR,
                                 extra_cflags=['-O3', '-fopenmp'], extra_ldflags=['-fopenmp'])


def _upfirdn2d_fast_forward(x, f, up, down, padding, flip_filter, gain):
    (upx, upy), (downx, downy) = up, down
    padx0, padx1, pady0, pady1 = padding
    kind, *taps = _correlation_taps(f, flip_filter)
    if kind == 'separable':
        taps_y = [t * gain for t in taps[0]]
        taps_x = taps[1]
    else:
        kernel = [[t * gain for t in row] for row in taps[0]]

    if x.device.type == 'cpu' and x.dtype in (torch.float32, torch.float64) and _plugin() is not None:
        fw, fh = _geometry.filter_size(f)
        out_w = _geometry.resampled_length(x.shape[3], upx, downx, padx0, padx1, fw)
        out_h = _geometry.resampled_length(x.shape[2], upy, downy, pady0, pady1, fh)
        geometry = (upx, upy, downx, downy, padx0, pady0, out_w, out_h)
        as_tensor = lambda values: torch.tensor(values, dtype=torch.float64)
        if kind == 'separable':
            return _plugin().upfirdn2d_separable(x.contiguous(), as_tensor(taps_x), as_tensor(taps_y), *geometry)
        return _plugin().upfirdn2d_full(x.contiguous(), as_tensor(kernel), *geometry)

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

def _fast_function(f, up, down, padding, flip_filter, gain):
    """An autograd function for fixed arguments whose backward is the transposed resampling."""
    fw, fh = _geometry.filter_size(f)
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
            grad_padding = (*_geometry.adjoint_padding(in_w, out_w, upx, downx, padx0, fw),
                            *_geometry.adjoint_padding(in_h, out_h, upy, downy, pady0, fh))
            dx = None
            if ctx.needs_input_grad[0]:
                transposed = _fast_function(f=f, up=down, down=up, padding=grad_padding, flip_filter=(not flip_filter), gain=gain)
                dx = transposed.apply(dy, f)
                assert dx.shape[2:] == (in_h, in_w)
            return dx, None

    _fast_functions[key] = Upfirdn2dFast
    return Upfirdn2dFast

#----------------------------------------------------------------------------
