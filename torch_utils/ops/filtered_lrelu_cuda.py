"""CUDA kernel for filtered_lrelu (StyleGAN3), with gradients of any order for x and b.

Interface used by torch_utils.ops.filtered_lrelu:

    available(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=sqrt(2), slope=0.2,
              clamp=None, flip_filter=False) -> bool
    filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=sqrt(2), slope=0.2,
                   clamp=None, flip_filter=False) -> Tensor

Both take the public op's arguments minus `impl`. `available` is True when x is a float32, float16
or bfloat16 CUDA tensor, the filters are constants, the plugin builds, and this kind of
configuration (dtype, up, down, filter shapes, padding, flip_filter, with/without bias and clamp)
passed its first-use self-check against impl='ref' (see verify_cuda). Pass the same arguments you
will pass to `filtered_lrelu`; with x alone the identity configuration is checked, and
`filtered_lrelu` then checks its own configuration on first use and computes it with impl='ref'
if that check fails.

One kernel pass does bias, upsampling filter, leaky ReLU, gain, clamp and downsampling filter
through shared memory, and records per upsampled sample (2 bits each) whether it was positive,
negative or clamped. The backward needs only those signs: it is the same kernel run in the
adjoint configuration (up and down swapped, filters flipped), multiplying by the recorded
derivative instead of applying the nonlinearity, so it is linear in the incoming gradient. Its
own gradient is the forward linearised around the signs (the same kernel again), and so on to any
order; the derivative of the leaky ReLU is piecewise constant, so nothing flows back into x
through the signs. CPU tensors run the same kernel code on the CPU (slowly; used to test the
kernel on machines without a GPU).
"""

from typing import NamedTuple

import numpy as np
import torch

from torch_utils.ops import plugin_cuda
from torch_utils.ops import verify_cuda

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_MODE_FORWARD, _MODE_LINEAR = 0, 1


#----------------------------------------------------------------------------

def available(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2, clamp=None, flip_filter=False):
    """True if the kernel can and may compute filtered_lrelu(x, ...) with these arguments."""
    if not isinstance(x, torch.Tensor) or x.device.type != 'cuda':
        return False
    return _config_ok(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2, clamp=None, flip_filter=False):
    """Same result as torch_utils.ops.filtered_lrelu.filtered_lrelu(..., impl='ref'), computed by the kernel."""
    kwargs = dict(fu=fu, fd=fd, b=b, up=up, down=down, padding=padding, gain=gain, slope=slope, clamp=clamp, flip_filter=flip_filter)
    if not _config_ok(x, **kwargs):
        from torch_utils.ops import filtered_lrelu as public
        with verify_cuda.reference_impl():
            return public.filtered_lrelu(x, **kwargs, impl='ref')
    return _filtered_lrelu_kernel(x, **kwargs)

#----------------------------------------------------------------------------

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


def _config_ok(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    if x.dtype not in _DTYPES or x.ndim != 4:
        return False
    for f in (fu, fd):
        if f is not None and (f.ndim not in (1, 2) or f.requires_grad):
            return False  # Filter gradients are left to the PyTorch implementations.
    if plugin_cuda.get_plugin() is None:
        return False
    padding = _parse_padding(padding)
    key = (str(x.device), str(x.dtype), f'up={int(up)}', f'down={int(down)}', f'fu {list(fu.shape) if fu is not None else None}',
           f'fd {list(fd.shape) if fd is not None else None}', f'padding={padding}', f'flip_filter={bool(flip_filter)}',
           'bias' if b is not None else 'no bias', 'clamp' if clamp is not None and clamp >= 0 else 'no clamp')
    return verify_cuda.check_once('filtered_lrelu', key, lambda: _self_check(
        x.device, x.dtype, fu, fd, b is not None, int(up), int(down), padding, float(gain), float(slope), clamp, bool(flip_filter)))


def _self_check(device, dtype, fu, fd, has_bias, up, down, padding, gain, slope, clamp, flip_filter):
    """Values, gradients and second-order gradients against impl='ref' on a small random input
    whose output spans more than one tile of the kernel."""
    from torch_utils.ops import filtered_lrelu as public
    (fu_w, fu_h), (fd_w, fd_h) = _filter_taps(fu), _filter_taps(fd)
    out_size = 19
    w = max(-(-((out_size - 1) * down + fd_w + fu_w - 1 - padding[0] - padding[1]) // up), 1)
    h = max(-(-((out_size - 1) * down + fd_h + fu_h - 1 - padding[2] - padding[3]) // up), 1) + 1
    filters = []
    for seed, f in ((8, fu), (9, fd)):
        if f is not None:  # Perturbed, so that index mix-ups in symmetric filters show.
            f = f.to(device=device, dtype=torch.float32) + verify_cuda.random_tensor(f.shape, seed, device, torch.float32, 0.05)
        filters.append(f)
    fu, fd = filters
    scale = 1.0 if clamp is None or clamp < 0 else max(1.0, 1.5 * clamp / max(gain, 1e-8))
    x = verify_cuda.random_tensor([2, 3, h, w], 10, device, dtype, scale)
    b = verify_cuda.random_tensor([3], 11, device, dtype, scale) if has_bias else None
    kwargs = dict(fu=fu, fd=fd, up=up, down=down, padding=padding, gain=gain, slope=slope, clamp=clamp, flip_filter=flip_filter)

    def run(fn, x, b):
        x = x.detach().requires_grad_(True)
        b = b.detach().requires_grad_(True) if b is not None else None
        y = fn(x, b)
        dy = verify_cuda.random_tensor(y.shape, 12, device, x.dtype).requires_grad_(True)
        inputs = [x] + ([b] if b is not None else [])
        grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
        v = verify_cuda.random_tensor(x.shape, 13, device, x.dtype)
        return [y] + list(grads) + [torch.autograd.grad((grads[0] * v).sum(), dy)[0]]

    got = run(lambda x, b: _filtered_lrelu_kernel(x, b=b, **kwargs), x, b)
    ref = run(lambda x, b: public.filtered_lrelu(x, b=b, **kwargs, impl='ref'), x.float(), b.float() if b is not None else None)
    names = ['y', 'dx'] + (['db'] if has_bias else []) + ['d(dx.v)/ddy']
    return verify_cuda.first_problem(*[verify_cuda.mismatch(n, g, r, dtype) for n, g, r in zip(names, got, ref)])

#----------------------------------------------------------------------------

class _Filter(NamedTuple):
    """A filter as the kernel takes it: correlation order, gain folded in."""
    taps: torch.Tensor      # 2-D: [taps_y, taps_x]; separable: [2, taps] (x taps with the gain, y taps)
    separable: bool
    size: tuple             # (taps_x, taps_y)

    def transposed(self):
        """The filter of the adjoint configuration: the taps reversed along each axis."""
        return _Filter(self.taps.flip([1] if self.separable else [0, 1]).contiguous(), self.separable, self.size)


def _kernel_filter(f, flip_filter, gain, device):
    f = torch.ones([1, 1]) if f is None else f
    f = f.to(device=device, dtype=torch.float32)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))  # The kernel correlates; the op convolves.
    if f.ndim == 1:
        return _Filter(torch.stack([f * gain, f]).contiguous(), True, (f.shape[0], f.shape[0]))
    return _Filter((f * gain).contiguous(), False, (f.shape[1], f.shape[0]))


class _Plan(NamedTuple):
    """Everything the three kernel configurations need."""
    up: int
    down: int
    padding: tuple          # (px0, px1, py0, py1) of the upsampled image
    in_size: tuple          # (w, h) of x
    mid_size: tuple         # (w, h) after the upsampling filter
    out_size: tuple         # (w, h) of the result
    f_up: _Filter           # gain up**2 included
    f_down: _Filter
    gain: float
    slope: float
    clamp: float            # < 0: none


def _make_plan(x, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
    px0, px1, py0, py1 = _parse_padding(padding)
    f_up = _kernel_filter(fu, flip_filter, up ** 2, x.device)
    f_down = _kernel_filter(fd, flip_filter, 1, x.device)
    in_w, in_h = x.shape[3], x.shape[2]
    mid_w = in_w * up + px0 + px1 - f_up.size[0] + 1
    mid_h = in_h * up + py0 + py1 - f_up.size[1] + 1
    out_w = (mid_w - f_down.size[0] + down) // down
    out_h = (mid_h - f_down.size[1] + down) // down
    assert mid_w >= 1 and mid_h >= 1 and out_w >= 1 and out_h >= 1, 'filtered_lrelu: empty output (check padding and filter sizes)'
    return _Plan(up=up, down=down, padding=(px0, px1, py0, py1), in_size=(in_w, in_h), mid_size=(mid_w, mid_h),
                 out_size=(out_w, out_h), f_up=f_up, f_down=f_down, gain=float(gain), slope=float(slope),
                 clamp=float(clamp if clamp is not None and clamp >= 0 else -1))


def _filtered_lrelu_kernel(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    plan = _make_plan(x, fu, fd, int(up), int(down), padding, gain, slope, clamp, flip_filter)
    # The signs are the backward's only state; skip them when there will be no backward.
    need_signs = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    return _FilteredLRelu.apply(x, b, plan, need_signs)


def _launch_forward_config(plan, x, b, signs, mode, write_signs):
    """Upsample, nonlinearity (mode 0) or recorded derivative (mode 1), downsample."""
    px0, _, py0, _ = plan.padding
    b = b.to(device=x.device, dtype=torch.float32).contiguous() if b is not None else x.new_empty([0], dtype=torch.float32)
    signs = signs if signs is not None else x.new_empty([0], dtype=torch.int32)
    return plugin_cuda.get_plugin().filtered_lrelu(
        x, b, plan.f_up.taps, plan.f_down.taps, signs, plan.up, px0, py0, plan.mid_size[0], plan.mid_size[1],
        plan.down, 0, 0, plan.out_size[0], plan.out_size[1], mode, plan.gain, plan.slope, plan.clamp,
        write_signs, plan.f_up.separable, plan.f_down.separable)


def _launch_adjoint_config(plan, dy, signs):
    """The transpose of the linearised forward: the gradient with respect to x. Per axis, the
    downsampling becomes an upsampling by `down` with the reversed filter and padding taps - 1,
    and the upsampling a downsampling by `up` with the reversed filter and padding taps - 1 - pad0."""
    px0, _, py0, _ = plan.padding
    f_down_t, f_up_t = plan.f_down.transposed(), plan.f_up.transposed()
    (fd_w, fd_h), (fu_w, fu_h) = plan.f_down.size, plan.f_up.size
    dx, _ = plugin_cuda.get_plugin().filtered_lrelu(
        dy, dy.new_empty([0], dtype=torch.float32), f_down_t.taps, f_up_t.taps, signs, plan.down,
        fd_w - 1, fd_h - 1, plan.mid_size[0], plan.mid_size[1],
        plan.up, fu_w - 1 - px0, fu_h - 1 - py0, plan.in_size[0], plan.in_size[1],
        _MODE_LINEAR, plan.gain, plan.slope, plan.clamp, False, f_down_t.separable, f_up_t.separable)
    return dx


class _FilteredLRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, plan, need_signs):
        y, signs = _launch_forward_config(plan, x, b, None, _MODE_FORWARD, write_signs=need_signs)
        ctx.save_for_backward(signs)
        ctx.plan = plan
        ctx.b_dtype = b.dtype if b is not None else None
        return y

    @staticmethod
    def backward(ctx, dy):
        signs, = ctx.saved_tensors
        dx = _FilteredLReluGrad.apply(dy, signs, ctx.plan)
        db = dx.sum([0, 2, 3]).to(ctx.b_dtype) if ctx.needs_input_grad[1] else None
        return dx, db, None, None


class _FilteredLReluGrad(torch.autograd.Function):
    """dy -> dx for fixed signs; linear in dy, its transpose is _FilteredLReluGradT."""
    @staticmethod
    def forward(ctx, dy, signs, plan):
        ctx.save_for_backward(signs)
        ctx.plan = plan
        return _launch_adjoint_config(plan, dy.contiguous(), signs)

    @staticmethod
    def backward(ctx, ddx):
        signs, = ctx.saved_tensors
        return _FilteredLReluGradT.apply(ddx, signs, ctx.plan), None, None


class _FilteredLReluGradT(torch.autograd.Function):
    """v -> forward linearised around the signs; the transpose of _FilteredLReluGrad."""
    @staticmethod
    def forward(ctx, v, signs, plan):
        ctx.save_for_backward(signs)
        ctx.plan = plan
        y, _ = _launch_forward_config(plan, v, None, signs, _MODE_LINEAR, write_signs=False)
        return y

    @staticmethod
    def backward(ctx, g):
        signs, = ctx.saved_tensors
        return _FilteredLReluGrad.apply(g, signs, ctx.plan), None, None
