"""Filtered leaky ReLU (StyleGAN3): upsample with a FIR filter, apply leaky ReLU, downsample.

    y = upfirdn2d(clamp(lrelu(upfirdn2d(x + b, fu, up, padding, gain=up**2), slope) * gain), fd, down)

Three implementations (see torch_utils.ops): 'ref' composes upfirdn2d and bias_act and serves as
the oracle; 'fast' is a fused C++ kernel (filtered_lrelu_cpu.cpp), vectorised over channels, for CPU tensors;
'cuda' calls the kernels in filtered_lrelu_cuda. Gradients flow to `x` and `b` to any order (the
derivative of the leaky ReLU is taken as piecewise constant, so second-order terms flow through the
incoming gradient only); the filters are float32 constants, as in upfirdn2d.
"""

import os
import warnings

import numpy as np
import torch

from torch_utils import custom_ops
from torch_utils import misc
from torch_utils.ops import resolve_impl

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
    assert isinstance(x, torch.Tensor) and x.ndim == 4, 'x must be a 4-D NCHW tensor'
    up, down = int(up), int(down)
    assert up >= 1 and down >= 1, 'up and down must be positive integers'
    if b is not None:
        assert isinstance(b, torch.Tensor) and b.ndim == 1 and b.shape[0] == x.shape[1], 'b must be [channels]'
    for f in (fu, fd):
        if f is not None:
            assert isinstance(f, torch.Tensor) and f.ndim in (1, 2), 'filters must be 1-D or 2-D tensors'
            assert f.dtype == torch.float32 and not f.requires_grad, 'filters must be float32 constants (see upfirdn2d.setup_filter)'
    padding = _parse_padding(padding)
    out_shape = output_shape(x.shape, fu=fu, fd=fd, up=up, down=down, padding=padding)
    impl = resolve_impl(impl, x)

    if impl == 'cuda':
        try:
            from torch_utils.ops import filtered_lrelu_cuda
        except ImportError:
            filtered_lrelu_cuda = None
        kwargs = dict(fu=fu, fd=fd, b=b, up=up, down=down, padding=padding, gain=gain, slope=slope, clamp=clamp, flip_filter=flip_filter)
        if filtered_lrelu_cuda is not None and filtered_lrelu_cuda.available(x, **kwargs):
            return filtered_lrelu_cuda.filtered_lrelu(x, **kwargs)
        if filtered_lrelu_cuda is None:
            _warn_once('cuda', 'the CUDA kernel module is missing; using the reference implementation')
        impl = 'ref'

    if impl == 'fast':
        if fu is None and fd is None and up == 1 and down == 1 and not any(padding):
            # Nothing to filter (e.g. StyleGAN3's ToRGB layer): the whole op is bias, leaky ReLU, gain and clamp.
            from torch_utils.ops import bias_act
            return bias_act.bias_act(x, b, act='lrelu', alpha=slope, gain=gain, clamp=clamp, impl='fast')
        if _fast_path_applies(x, fu, fd, b):
            y = _filtered_lrelu_fast(x=x, fu=fu, fd=fd, b=b, up=up, down=down, padding=padding,
                                     gain=gain, slope=slope, clamp=clamp, flip_filter=flip_filter)
            misc.assert_shape(y, out_shape)
            return y
        impl = 'ref'

    y = _filtered_lrelu_ref(x=x, fu=fu, fd=fd, b=b, up=up, down=down, padding=padding,
                            gain=gain, slope=slope, clamp=clamp, flip_filter=flip_filter)
    misc.assert_shape(y, out_shape)
    return y

#----------------------------------------------------------------------------
# Shapes.

def _parse_padding(padding):
    if isinstance(padding, (int, np.integer)):
        padding = [padding, padding]
    padding = list(padding)
    assert all(isinstance(p, (int, np.integer)) for p in padding), 'padding must be an int or a list of ints'
    if len(padding) == 2:
        px, py = padding
        padding = [px, px, py, py]
    assert len(padding) == 4, 'padding must be an int, [x, y] or [x0, x1, y0, y1]'
    return [int(p) for p in padding]


def _filter_size(f):
    """(taps_x, taps_y) of a filter; None counts as a single tap."""
    if f is None:
        return 1, 1
    assert isinstance(f, torch.Tensor) and f.ndim in (1, 2), 'filters must be 1-D or 2-D tensors'
    return (f.shape[-1], f.shape[0])


def output_shape(x_shape, fu=None, fd=None, up=1, down=1, padding=0):
    """Shape [N, C, H, W] of filtered_lrelu's output, derived from the two upfirdn2d steps."""
    n, c, h, w = x_shape
    px0, px1, py0, py1 = _parse_padding(padding)
    fu_w, fu_h = _filter_size(fu)
    fd_w, fd_h = _filter_size(fd)
    mid_w = w * up + px0 + px1 - (fu_w - 1)
    mid_h = h * up + py0 + py1 - (fu_h - 1)
    out_w = (mid_w - (fd_w - 1) + (down - 1)) // down
    out_h = (mid_h - (fd_h - 1) + (down - 1)) // down
    assert mid_w >= 1 and mid_h >= 1 and out_w >= 1 and out_h >= 1, \
        f'filtered_lrelu: empty output for input {list(x_shape)} (check padding and filter sizes)'
    return [n, c, out_h, out_w]

#----------------------------------------------------------------------------
# Reference: the literal composition of upfirdn2d and bias_act.

def _filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    from torch_utils.ops import bias_act, upfirdn2d
    x = bias_act.bias_act(x, b, impl='ref')
    x = upfirdn2d.upfirdn2d(x, fu, up=up, padding=padding, flip_filter=flip_filter, gain=up ** 2, impl='ref')
    x = bias_act.bias_act(x, act='lrelu', alpha=slope, gain=gain, clamp=clamp, impl='ref')
    x = upfirdn2d.upfirdn2d(x, fd, down=down, flip_filter=flip_filter, impl='ref')
    return x

#----------------------------------------------------------------------------
# Fast CPU path.
#
# The kernel (filtered_lrelu_cpu.cpp with filtered_lrelu_cpu_nhwc.h) evaluates a two-stage pipeline
# on vectors of neighbouring channels, streaming each image through a few rows of cache; each stage
# is a 2-D upfirdn given as two 1-D axes (in_len, up, down, pad0, out_len) plus separable
# correlation kernels or one 2-D correlation kernel. The forward pipeline is (up stage, down
# stage); the backward pipeline is (adjoint of the down stage, adjoint of the up stage), with the
# derivative of the activation recorded by the forward as one byte per intermediate sample. Inputs
# may have any strides; a channels-last `x` gives a channels-last output and gradient (the layout
# the kernel reads and writes best), any other a contiguous one.

_plugin = None
_plugin_tried = False
_vector_bytes = 0   # Vector width the kernel uses, in bytes: 0 = the widest this CPU supports (tests set 16/32).


def _get_plugin():
    global _plugin, _plugin_tried
    if not _plugin_tried:
        _plugin_tried = True
        # Generic x86-64 code with AVX2 and AVX-512 versions chosen at run time, so that a build
        # cache shared between machines never hands one machine instructions that another lacks.
        _plugin = custom_ops.get_plugin(
            module_name='filtered_lrelu_cpu_plugin',
            sources=['filtered_lrelu_cpu.cpp'],
            headers=['filtered_lrelu_cpu_nhwc.h'],
            source_dir=os.path.dirname(__file__),
            extra_cflags=['-O3', '-fopenmp'],
            extra_ldflags=['-fopenmp'],
        )
    return _plugin


def _fast_path_applies(x, fu, fd, b):
    if x.device.type != 'cpu' or x.dtype not in (torch.float32, torch.float64):
        return False  # Other dtypes are rare on the CPU; the reference handles them.
    if _get_plugin() is None:
        _warn_once('fast', 'the C++ kernel could not be built; using the reference implementation')
        return False
    return True


def _is_channels_last(x):
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class _Axis:
    """One axis of an upfirdn stage: out[k] = sum_j g[j] * U[down*k + j - pad0], U = `up`-fold zero-stuffed input."""
    def __init__(self, in_len, up, down, pad0, out_len):
        self.in_len, self.up, self.down, self.pad0, self.out_len = in_len, up, down, pad0, out_len

    def adjoint(self, taps):
        return _Axis(in_len=self.out_len, up=self.down, down=self.up, pad0=taps - 1 - self.pad0, out_len=self.in_len)

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
    mid_w = in_w * up + px0 + px1 - taps_x + 1
    mid_h = in_h * up + py0 + py1 - taps_y + 1
    ax = _Axis(in_len=in_w, up=up, down=down, pad0=px0, out_len=(mid_w + down - 1) // down)
    ay = _Axis(in_len=in_h, up=up, down=down, pad0=py0, out_len=(mid_h + down - 1) // down)
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
        y, codes = _get_plugin().filtered_lrelu_nhwc(x.detach().to(self.dtype), bias, *args1, mode, self.slope, self.gain,
                                                     self.clamp, codes, *args2, self.channels_last, self.vector_bytes)
        return y, (codes if mode == _RECORD else None)


def _filtered_lrelu_fast(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    plan = _Plan(x.shape, x.dtype, fu, fd, up, down, padding, gain, slope, clamp, flip_filter, channels_last=_is_channels_last(x))
    if not torch.is_grad_enabled() or not (x.requires_grad or (b is not None and b.requires_grad)):
        return plan.run(x, b, adjoint=False, mode=_FORWARD)[0]   # No backward can follow: no codes.
    return _FusedForward.apply(x, b, plan)


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

_warned = set()

def _warn_once(key, message):
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f'filtered_lrelu: {message}.')

#----------------------------------------------------------------------------
