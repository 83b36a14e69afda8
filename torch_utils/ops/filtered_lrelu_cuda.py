"""filtered_lrelu, CUDA implementation (StyleGAN3), with gradients of any order for x and b.

Leaf of torch_utils.ops.filtered_lrelu (see torch_utils.ops.dispatch); arguments arrive normalised.
Takes float32, float16 and bfloat16 tensors with constant filters; the dispatcher runs the kernel
only for configurations that passed their first-use self-check (`config_key`, `check_inputs`,
verify_cuda).

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

import torch

from torch_utils.ops import _geometry
from torch_utils.ops import plugin_cuda
from torch_utils.ops import verify_cuda

DEVICE = 'cuda'

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_MODE_FORWARD, _MODE_LINEAR = 0, 1

#----------------------------------------------------------------------------

def built():
    return plugin_cuda.get_plugin() is not None


def supported(x, b, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
    # Filter gradients are left to the PyTorch implementations.
    filters_constant = all(f is None or not f.requires_grad for f in (fu, fd))
    return x.dtype in _DTYPES and filters_constant and built()


def apply(x, b, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
    plan = _make_plan(x, fu, fd, up, down, padding, gain, slope, clamp, flip_filter)
    # The signs are the backward's only state; skip them when there will be no backward.
    need_signs = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    return _FilteredLRelu.apply(x, b, plan, need_signs)


def config_key(x, b, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
    """What selects a distinct code path: device, dtype, up, down, filter shapes, padding, flip, bias, clamp."""
    shape = lambda f: list(f.shape) if f is not None else None
    return (str(x.device), str(x.dtype), f'up={up}', f'down={down}', f'fu {shape(fu)}', f'fd {shape(fd)}',
            f'padding={list(padding)}', f'flip_filter={flip_filter}', 'bias' if b is not None else 'no bias',
            'clamp' if clamp >= 0 else 'no clamp')


def check_inputs(x, b, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
    """A small random input of the same configuration whose output spans more than one tile of the
    kernel, with the filters perturbed so that index mix-ups in symmetric filters show: ([x, b], args)."""
    (fu_w, fu_h), (fd_w, fd_h) = _geometry.filter_size(fu), _geometry.filter_size(fd)
    out_size = 19
    w = max(-(-((out_size - 1) * down + fd_w + fu_w - 1 - padding[0] - padding[1]) // up), 1)
    h = max(-(-((out_size - 1) * down + fd_h + fu_h - 1 - padding[2] - padding[3]) // up), 1) + 1
    filters = []
    for seed, f in ((8, fu), (9, fd)):
        if f is not None:
            f = f.to(device=x.device, dtype=torch.float32) + verify_cuda.random_tensor(f.shape, seed, x.device, torch.float32, 0.05)
        filters.append(f)
    scale = 1.0 if clamp < 0 else max(1.0, 1.5 * clamp / max(gain, 1e-8))
    xc = verify_cuda.random_tensor([2, 3, h, w], 10, x.device, x.dtype, scale)
    bc = verify_cuda.random_tensor([3], 11, x.device, x.dtype, scale) if b is not None else None
    return [xc, bc], dict(fu=filters[0], fd=filters[1], up=up, down=down, padding=padding, gain=gain, slope=slope,
                          clamp=clamp, flip_filter=flip_filter)

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
    px0, px1, py0, py1 = padding
    f_up = _kernel_filter(fu, flip_filter, up ** 2, x.device)
    f_down = _kernel_filter(fd, flip_filter, 1, x.device)
    in_w, in_h = x.shape[3], x.shape[2]
    mid_w = _geometry.resampled_length(in_w, up, 1, px0, px1, f_up.size[0])
    mid_h = _geometry.resampled_length(in_h, up, 1, py0, py1, f_up.size[1])
    out_w = _geometry.resampled_length(mid_w, 1, down, 0, 0, f_down.size[0])
    out_h = _geometry.resampled_length(mid_h, 1, down, 0, 0, f_down.size[1])
    assert mid_w >= 1 and mid_h >= 1 and out_w >= 1 and out_h >= 1, 'filtered_lrelu: empty output (check padding and filter sizes)'
    return _Plan(up=up, down=down, padding=(px0, px1, py0, py1), in_size=(in_w, in_h), mid_size=(mid_w, mid_h),
                 out_size=(out_w, out_h), f_up=f_up, f_down=f_down, gain=float(gain), slope=float(slope),
                 clamp=float(clamp))


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
