"""CPU timings of the core ops: 'fast' against 'ref', measured in the same run.

Usage: python benchmarks/ops_core.py [--threads 2] [--repeats 7] [--small]
Each bench_* function returns rows (op, shape, ref ms, fast ms); benchmarks/ops.py gathers them.
"""

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torch_utils.ops import bias_act           # noqa: E402
from torch_utils.ops import conv2d_resample    # noqa: E402
from torch_utils.ops import upfirdn2d          # noqa: E402

#----------------------------------------------------------------------------

def compare(op, shape, make_fn, repeats, warmup=2):
    """Median wall times (ms) of make_fn('ref')() and make_fn('fast')(). The two are timed in
    alternation, so that a change in machine load affects both alike."""
    fns = {impl: make_fn(impl) for impl in ('ref', 'fast')}
    times = {impl: [] for impl in fns}
    for i in range(warmup + repeats):
        for impl, fn in fns.items():
            start = time.perf_counter()
            fn()
            if i >= warmup:
                times[impl].append((time.perf_counter() - start) * 1e3)
    return (op, shape, statistics.median(times['ref']), statistics.median(times['fast']))

#----------------------------------------------------------------------------

def bench_upfirdn2d(shape=(4, 256, 64, 64), repeats=7):
    x = torch.randn(shape)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    shape_str = 'x'.join(str(s) for s in shape)
    rows = []
    rows.append(compare('upsample2d up=2 4-tap', shape_str, lambda impl: (lambda: upfirdn2d.upsample2d(x, f, up=2, impl=impl)), repeats))
    rows.append(compare('downsample2d down=2 4-tap', shape_str, lambda impl: (lambda: upfirdn2d.downsample2d(x, f, down=2, impl=impl)), repeats))
    f8 = upfirdn2d.setup_filter([1, 3, 5, 7, 7, 5, 3, 1])   # separable (>= 8 taps)
    rows.append(compare('upsample2d up=2 8-tap sep', shape_str, lambda impl: (lambda: upfirdn2d.upsample2d(x, f8, up=2, impl=impl)), repeats))
    return rows


def bench_upfirdn2d_backward(shape=(4, 256, 64, 64), repeats=7):
    x = torch.randn(shape, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    shape_str = 'x'.join(str(s) for s in shape)
    def make(impl):
        def run():
            y = upfirdn2d.upsample2d(x, f, up=2, impl=impl)
            torch.autograd.grad(y, [x], y)
        return run
    return [compare('upsample2d up=2 fwd+bwd', shape_str, make, repeats)]


def bench_bias_act(shape=(4, 256, 64, 64), repeats=7):
    x = torch.randn(shape)
    b = torch.randn(shape[1])
    shape_str = 'x'.join(str(s) for s in shape)
    rows = []
    for act, clamp in [('lrelu', None), ('lrelu', 256.0), ('linear', None), ('swish', None)]:
        name = f'bias_act {act}' + (' clamp' if clamp is not None else '')
        rows.append(compare(name + ' fwd', shape_str, lambda impl: (lambda: bias_act.bias_act(x, b, act=act, clamp=clamp, impl=impl)), repeats))
        xg = x.clone().requires_grad_(True)
        bg = b.clone().requires_grad_(True)
        def make(impl):
            def run():
                y = bias_act.bias_act(xg, bg, act=act, clamp=clamp, impl=impl)
                torch.autograd.grad(y, [xg, bg], y)
            return run
        rows.append(compare(name + ' fwd+bwd', shape_str, make, repeats))
    return rows


def bench_conv2d_resample(shape=(4, 128, 32, 32), repeats=5):
    x = torch.randn(shape)
    w = torch.randn([128, shape[1], 3, 3]) * 0.05
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    shape_str = 'x'.join(str(s) for s in shape)
    rows = []
    rows.append(compare('conv2d_resample up=2 3x3', shape_str, lambda impl: (lambda: conv2d_resample.conv2d_resample(x, w, f, up=2, padding=1, impl=impl)), repeats))
    rows.append(compare('conv2d_resample down=2 3x3', shape_str, lambda impl: (lambda: conv2d_resample.conv2d_resample(x, w, f, down=2, padding=1, impl=impl)), repeats))
    return rows


ALL_BENCHMARKS = [bench_upfirdn2d, bench_upfirdn2d_backward, bench_bias_act, bench_conv2d_resample]

#----------------------------------------------------------------------------

def print_table(rows):
    print(f'{"op":<32} {"shape":<16} {"ref ms":>9} {"fast ms":>9} {"speedup":>8}')
    for op, shape, ref_ms, fast_ms in rows:
        print(f'{op:<32} {shape:<16} {ref_ms:9.2f} {fast_ms:9.2f} {ref_ms / fast_ms:7.2f}x')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    parser.add_argument('--repeats', type=int, default=7, help='timed runs per measurement (median reported)')
    parser.add_argument('--small', action='store_true', help='smaller shapes, for a quick check')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kwargs = dict(repeats=args.repeats)
    rows = []
    for bench in ALL_BENCHMARKS:
        if args.small:
            shape = (1, 64, 32, 32) if bench is not bench_conv2d_resample else (1, 32, 16, 16)
            rows += bench(shape=shape, **kwargs)
        else:
            rows += bench(**kwargs)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} runs')
    print_table(rows)


if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
