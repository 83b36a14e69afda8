"""Parity test of the CUDA kernels against the reference ops, for running on your own GPU.

    python -m torch_utils.ops.selftest [--device cuda|cpu] [--dtypes float32,float16,bfloat16] [--no-bench]

For every configuration in the grid (bias_act: each activation with/without bias and clamp;
upfirdn2d: up/down/padding/filter kinds; filtered_lrelu: the StyleGAN3 configurations and more)
and every dtype, the kernels are compared with impl='ref': values, gradients, and second-order
gradients where the op has them. Prints one table row per test and, on a GPU, a short timing
comparison. Exit status: 0 when everything agrees, 1 on any mismatch, and 1 with a one-line
message when there is no CUDA device (--device cpu instead runs the kernels' own code on the CPU,
slowly, which checks their logic but not the GPU).
"""

import argparse
import sys
import time

import numpy as np
import torch

from torch_utils.ops import bias_act
from torch_utils.ops import dispatch
from torch_utils.ops import filtered_lrelu
from torch_utils.ops import plugin_cuda
from torch_utils.ops import upfirdn2d

#----------------------------------------------------------------------------

def _filter(taps, seed):
    """A normalised 1-D lowpass-like filter of `taps` taps, or a random 2-D one for a (h, w) tuple."""
    if taps is None:
        return None
    g = torch.Generator().manual_seed(seed)
    if isinstance(taps, int):
        f = torch.rand([taps], generator=g) + 0.5
        return f / f.sum()
    f = torch.rand(list(taps), generator=g) + 0.1
    return f / f.sum()


def check(op_module, x_shape, device, dtype, **kwargs):
    """The kernel's self-check for a call of op_module's op on an x of `x_shape` with these arguments:
    None when it agrees with the reference, else a description."""
    x = torch.zeros(x_shape, device=device, dtype=dtype)
    if 'b' in kwargs:  # A bias flag becomes a bias of the right length.
        kwargs['b'] = torch.zeros([x_shape[kwargs.get('dim', 1)]], device=device, dtype=dtype) if kwargs['b'] else None
    tensors, args = op_module._prepare(x, **kwargs)
    return dispatch.check_kernel(op_module._LEAVES, tensors, args)


def bias_act_grid():
    for act in bias_act.activation_funcs:
        for has_bias, clamp in [(True, None), (True, 1.0), (False, None)]:
            for ndim, dim in [(4, 1), (2, 1)]:
                yield f'act={act} bias={has_bias} clamp={clamp} ndim={ndim}', \
                    lambda device, dtype, act=act, has_bias=has_bias, clamp=clamp, ndim=ndim, dim=dim: check(
                        bias_act, [2] * ndim, device, dtype, b=has_bias, dim=dim, act=act, clamp=clamp)


def upfirdn2d_grid():
    cases = [
        (None, 1, 1, 0, False), (4, 1, 1, [1, 2], False), (4, 2, 1, [2, 1], False), (4, 1, 2, [1, 1], False),
        (4, 2, 2, [1, 2, -1, 3], True), ((3, 5), 1, 1, [2, 2], False), ((3, 5), [2, 1], [1, 3], [1, -2, 3, 0], True),
        ((4, 4), 4, 2, 3, False), (12, 2, 1, [6, 5], False), (12, 1, 2, [5, 5], False), (6, 1, 3, [-1, 4, 2, 2], True),
        ((12, 12), 2, 2, [5, 6], False),
    ]
    for taps, up, down, padding, flip in cases:
        yield f'f={taps} up={up} down={down} padding={padding} flip={flip}', \
            lambda device, dtype, taps=taps, up=up, down=down, padding=padding, flip=flip: check(
                upfirdn2d, [2, 3, 32, 32], device, dtype, f=_filter(taps, 1), up=up, down=down, padding=padding, flip_filter=flip)


def filtered_lrelu_grid():
    cases = [
        # fu, fd, up, down, padding, clamp, flip_filter, bias
        (None, None, 1, 1, 0, None, False, True),
        (12, 12, 2, 2, [10, 10, 10, 10], 256.0, False, True),        # StyleGAN3-T, critically sampled
        (12, 12, 2, 2, [10, 10, 10, 10], 0.5, False, True),          # ... with the clamp active
        ((12, 12), (12, 12), 2, 2, [10, 10, 10, 10], None, False, True),  # StyleGAN3-R radial filters
        (24, 12, 4, 2, [20, 19, 20, 19], 256.0, False, True),
        (12, 24, 2, 4, [21, 20, 21, 20], None, False, True),
        (12, 6, 2, 1, [5, 6, 5, 6], None, True, False),
        (6, 12, 1, 2, [3, 2], 0.3, False, True),
        (6, (3, 5), 2, 1, [5, -1, 2, 4], 0.3, False, True),
        ((4, 5), None, 1, 2, [3, 2], None, True, True),
    ]
    for fu, fd, up, down, padding, clamp, flip, bias in cases:
        yield f'fu={fu} fd={fd} up={up} down={down} padding={padding} clamp={clamp} flip={flip} bias={bias}', \
            lambda device, dtype, fu=fu, fd=fd, up=up, down=down, padding=padding, clamp=clamp, flip=flip, bias=bias: check(
                filtered_lrelu, [2, 3, 32, 32], device, dtype, fu=_filter(fu, 2), fd=_filter(fd, 3), b=bias, up=up, down=down,
                padding=padding, clamp=clamp, flip_filter=flip)

#----------------------------------------------------------------------------

def _time(fn, repeats=10):
    """Median seconds of fn() on the GPU."""
    fn()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def benchmark(device):
    """Forward + backward, kernel against impl='ref', on StyleGAN-sized tensors."""
    from torch_utils.ops import bias_act, filtered_lrelu, upfirdn2d
    x = torch.randn([8, 256, 64, 64], device=device, requires_grad=True)
    b = torch.randn([256], device=device, requires_grad=True)
    f12 = upfirdn2d.setup_filter(_filter(12, 1), device=device)
    f4 = upfirdn2d.setup_filter([1, 3, 3, 1], device=device)
    cases = [
        ('bias_act lrelu', lambda impl: bias_act.bias_act(x, b, act='lrelu', impl=impl)),
        ('upfirdn2d up=2, 4 taps', lambda impl: upfirdn2d.upsample2d(x, f4, impl=impl)),
        ('filtered_lrelu up=2 down=2, 12 taps', lambda impl: filtered_lrelu.filtered_lrelu(
            x, f12, f12, b, up=2, down=2, padding=10, clamp=256, impl=impl)),
    ]
    print(f'\n{"timing (forward + backward, [8, 256, 64, 64] float32)":58s} {"cuda":>9s} {"ref":>9s}')
    for name, fn in cases:
        row = []
        for impl in ['cuda', 'ref']:
            row.append(_time(lambda: fn(impl).square().sum().backward()))
        print(f'{name:58s} {row[0] * 1e3:7.2f}ms {row[1] * 1e3:7.2f}ms')

#----------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description='Compare the CUDA kernels with the reference ops.')
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'],
                        help='cuda (default) or cpu, which runs the kernel code on the CPU')
    parser.add_argument('--dtypes', default='float32,float16,bfloat16', help='comma-separated dtypes')
    parser.add_argument('--no-bench', action='store_true', help='skip the timing comparison')
    args = parser.parse_args(argv)

    if args.device == 'cuda' and not torch.cuda.is_available():
        print('selftest: no CUDA device; nothing to test (use --device cpu to check the kernel code on the CPU)')
        return 1
    if plugin_cuda.get_plugin() is None:
        print('selftest: the CUDA plugin could not be built (see the warning above)')
        return 1
    device = torch.device(args.device)
    dtypes = [getattr(torch, name.strip()) for name in args.dtypes.split(',')]
    if device.type == 'cuda':
        print(f'Device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}')

    failures = 0
    print(f'{"op":15s} {"dtype":9s} {"result":6s} configuration')
    for op, grid in [('bias_act', bias_act_grid), ('upfirdn2d', upfirdn2d_grid), ('filtered_lrelu', filtered_lrelu_grid)]:
        for config, check in grid():
            for dtype in dtypes:
                try:
                    problem = check(device, dtype)
                except Exception as e:  # Report and go on with the grid.
                    problem = f'{type(e).__name__}: {e}'
                failures += problem is not None
                result = 'ok' if problem is None else 'FAIL'
                print(f'{op:15s} {str(dtype).replace("torch.", ""):9s} {result:6s} {config}' + (f'  -- {problem}' if problem else ''))
    print(f'\n{"All tests passed." if failures == 0 else f"{failures} test(s) FAILED."}')
    if device.type == 'cuda' and not args.no_bench:
        benchmark(device)
    return 0 if failures == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
