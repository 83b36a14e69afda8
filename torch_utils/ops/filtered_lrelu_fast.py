"""filtered_lrelu, fast implementation: a fused, channel-vectorised C++ kernel for float32/float64
CPU tensors (filtered_lrelu_cpu.cpp with filtered_lrelu_cpu_nhwc.h).

Leaf of torch_utils.ops.filtered_lrelu (see torch_utils.ops.dispatch); arguments arrive normalised.

The kernel evaluates a two-stage pipeline on vectors of neighbouring channels, streaming each image
through a few rows of cache; each stage is a 2-D upfirdn given as two 1-D axes (in_len, up, down,
pad0, out_len) plus separable correlation kernels or one 2-D correlation kernel. The forward pipeline
is (up stage, down stage); the backward pipeline is (adjoint of the down stage, adjoint of the up
stage), with the derivative of the activation recorded by the forward as one byte per intermediate
sample. Inputs may have any strides; a channels-last `x` gives a channels-last output and gradient
(the layout the kernel reads and writes best), any other a contiguous one.
"""

import os

import numpy as np
import torch

from torch_utils import custom_ops
from torch_utils.ops import _geometry
from torch_utils.ops import bias_act_fast

_SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))

DEVICE = 'cpu'

_vector_bytes = 0   # Vector width the kernel uses, in bytes: 0 = the widest this CPU supports (tests set 16/32).

#----------------------------------------------------------------------------

def built():
    return _plugin() is not None


def supported(x, b, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
    # Other dtypes are rare on the CPU; the reference handles them.
    return x.dtype in (torch.float32, torch.float64) and built()


def apply(x, b, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
    if fu is None and fd is None and up == 1 and down == 1 and not any(padding):
        # Nothing to filter (e.g. StyleGAN3's ToRGB layer): the whole op is bias, leaky ReLU, gain and clamp.
        return bias_act_fast.apply(x, b, dim=1, act='lrelu', alpha=slope, gain=gain, clamp=clamp)
    plan = _Plan(x.shape, x.dtype, fu, fd, up, down, padding, gain, slope, clamp, flip_filter, channels_last=_is_channels_last(x))
    if not torch.is_grad_enabled() or not (x.requires_grad or (b is not None and b.requires_grad)):
        return plan.run(x, b, adjoint=False, mode=_FORWARD)[0]   # No backward can follow: no codes.
    return _FusedForward.apply(x, b, plan)

#----------------------------------------------------------------------------

def _plugin():
    # Generic x86-64 code with AVX2 and AVX-512 versions chosen at run time, so that a build cache
    # shared between machines never hands one machine instructions that another lacks.
    return custom_ops.get_plugin(
        module_name='filtered_lrelu_cpu_plugin',
        sources=['filtered_lrelu_cpu.cpp'],
        headers=['filtered_lrelu_cpu_nhwc.h'],
        source_dir=_SOURCE_DIR,
        extra_cflags=['-O3', '-fopenmp'],
        extra_ldflags=['-fopenmp'],
    )


def _is_channels_last(x):
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class _Axis:
    """One axis of an upfirdn stage: out[k] = sum_j g[j] * U[down*k + j - pad0], U = `up`-fold zero-stuffed input."""
    def __init__(self, in_len, up, down, pad0, out_len):
        self.in_len, self.up, self.down, self.pad0, self.out_len = in_len, up, down, pad0, out_len

    def adjoint(self, taps):
        pad0, _ = _geometry.adjoint_padding(self.in_len, self.out_len, self.up, self.down, self.pad0, taps)
        return _Axis(in_len=self.out_len, up=self.down, down=self.up, pad0=pad0, out_len=self.in_len)

    def params(self):
        return [self.in_len, self.up, self.down, self.pad0, self.out_len]


class _Stage:
    """A 2-D upfirdn: axes along W and H, and either separable kernels (gx, gy) or a 2-D kernel g2
    (float64 numpy arrays, correlation order)."""
    def __init__(self, ax, ay, gx=None, gy=None, g2=None):
        self.ax, self.ay, self.gx, self.gy, self.g2 = ax, ay, gx, gy, g2

    def adjoint(self):
        """The transposed stage: axes adjoint, kernels reversed."""
        if self.g2 is not None:
            taps_x, taps_y = self.g2.shape[1], self.g2.shape[0]
        else:
            taps_x, taps_y = self.gx.size, self.gy.size
        flip = lambda g: None if g is None else g[(slice(None, None, -1),) * g.ndim]
        return _Stage(self.ax.adjoint(taps_x), self.ay.adjoint(taps_y), gx=flip(self.gx), gy=flip(self.gy), g2=flip(self.g2))

    def kernel_args(self, dtype):
        """[axis params, gx, gy, g2] as the kernel takes them, kernels as `dtype` tensors (absent = empty)."""
        np_dtype = {torch.float32: np.float32, torch.float64: np.float64}[dtype]
        as_tensor = lambda g: torch.from_numpy(np.array(np.zeros([0]) if g is None else g, dtype=np_dtype, order="C", copy=True))
        return [self.ax.params() + self.ay.params(), as_tensor(self.gx), as_tensor(self.gy), as_tensor(self.g2)]


def _make_stage(f, in_w, in_h, up, down, padding, gain, flip_filter):
    """The stage computing upfirdn2d(x, f, up, down, padding, flip_filter, gain) on [in_h, in_w] planes."""
    px0, px1, py0, py1 = padding
    f = np.ones([1]) if f is None else f.detach().cpu().numpy().astype(np.float64)
    if not flip_filter:
        f = f[(slice(None, None, -1),) * f.ndim]  # Convolution = correlation with the flipped kernel.
    taps_x, taps_y = f.shape[-1], f.shape[0]
    ax = _Axis(in_len=in_w, up=up, down=down, pad0=px0, out_len=_geometry.resampled_length(in_w, up, down, px0, px1, taps_x))
    ay = _Axis(in_len=in_h, up=up, down=down, pad0=py0, out_len=_geometry.resampled_length(in_h, up, down, py0, py1, taps_y))
    if f.ndim == 2:
        return _Stage(ax, ay, g2=f * gain)
    g = f * np.sqrt(gain)
    return _Stage(ax, ay, gx=g, gy=g)


_FORWARD, _RECORD, _MASKED = 0, 1, 2   # Kernel modes: plain forward; forward recording the codes; linearised by the codes.


class _Plan:
    """Everything the kernel needs for one call, forward and backward."""
    def __init__(self, x_shape, dtype, fu, fd, up, down, padding, gain, slope, clamp, flip_filter, channels_last=False):
        n, c, h, w = x_shape
        self.channels_last = channels_last   # Layout of every output: y, dx and the double-backward terms.
        self.in_shape = [n, c, h, w]
        self.dtype = dtype
        up_stage = _make_stage(fu, w, h, up=up, down=1, padding=padding, gain=up ** 2, flip_filter=flip_filter)
        down_stage = _make_stage(fd, up_stage.ax.out_len, up_stage.ay.out_len, up=1, down=down, padding=[0, 0, 0, 0], gain=1, flip_filter=flip_filter)
        self.stages = {False: (up_stage, down_stage), True: (down_stage.adjoint(), up_stage.adjoint())}
        self.kernel_args = dict()
        self.gain, self.slope = float(gain), float(slope)
        self.clamp = float(clamp) if clamp is not None and clamp >= 0 else -1.0
        self.vector_bytes = _vector_bytes   # The codes of a forward are laid out for this width.

    def run(self, x, b, adjoint, mode, codes=None):
        """Runs the pipeline on NCHW `x` (the adjoint pipeline if `adjoint`); returns (y, codes), the
        codes of the activation when mode is _RECORD, else None."""
        if adjoint not in self.kernel_args:
            st1, st2 = self.stages[adjoint]
            self.kernel_args[adjoint] = (st1.kernel_args(self.dtype), st2.kernel_args(self.dtype))
        args1, args2 = self.kernel_args[adjoint]
        bias = torch.empty([0], dtype=self.dtype) if b is None else b.detach().to(self.dtype).contiguous()
        if codes is None:
            codes = torch.empty([0], dtype=torch.uint8)
        y, codes = _plugin().filtered_lrelu_nhwc(x.detach().to(self.dtype), bias, *args1, mode, self.slope, self.gain,
                                                     self.clamp, codes, *args2, self.channels_last, self.vector_bytes)
        return y, (codes if mode == _RECORD else None)


class _FusedForward(torch.autograd.Function):
    """y = filtered_lrelu(x + b); records the activation's derivative for the backward."""
    @staticmethod
    def forward(ctx, x, b, plan):
        y, codes = plan.run(x, b, adjoint=False, mode=_RECORD)
        ctx.save_for_backward(codes)
        ctx.plan = plan
        ctx.has_bias = b is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        codes, = ctx.saved_tensors
        dx, db = _LinearizedAdjoint.apply(dy, codes, ctx.plan, ctx.has_bias and ctx.needs_input_grad[1])
        return dx, db, None


class _LinearizedAdjoint(torch.autograd.Function):
    """(dx, db) = transpose of the op linearised at the recorded activation pattern, applied to dy."""
    @staticmethod
    def forward(ctx, dy, codes, plan, need_db):
        dx, _ = plan.run(dy, None, adjoint=True, mode=_MASKED, codes=codes)
        db = dx.sum([0, 2, 3]) if need_db else None
        ctx.save_for_backward(codes)
        ctx.plan = plan
        return dx, db

    @staticmethod
    def backward(ctx, ddx, ddb):
        codes, = ctx.saved_tensors
        if ddx is None:
            ddx = torch.zeros(ctx.plan.in_shape, dtype=ctx.plan.dtype)   # Any layout: the kernel reads strides.
        ddy = _Linearized.apply(ddx, ddb, codes, ctx.plan)
        return ddy, None, None, None


class _Linearized(torch.autograd.Function):
    """y = the op linearised at the recorded activation pattern, applied to (x + b)."""
    @staticmethod
    def forward(ctx, x, b, codes, plan):
        y, _ = plan.run(x, b, adjoint=False, mode=_MASKED, codes=codes)
        ctx.save_for_backward(codes)
        ctx.plan = plan
        ctx.has_bias = b is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        codes, = ctx.saved_tensors
        dx, db = _LinearizedAdjoint.apply(dy, codes, ctx.plan, ctx.has_bias and ctx.needs_input_grad[1])
        return dx, db, None, None

#----------------------------------------------------------------------------
