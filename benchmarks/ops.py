"""CPU timings of every custom op, fast path against the reference, measured in the same run.

Usage: python benchmarks/ops.py [--threads 2] [--repeats 5] [--quick]

Prints one table: upfirdn2d (up 2 / down 2, 4-tap filter), bias_act, conv2d_resample and
filtered_lrelu at the layer shapes of a StyleGAN3-T 64x64 generator (channel_base 8192,
channel_max 256, batch 4) plus the issue's 82x82 example. Ratios are ref time / fast time.
On a GPU, run `python -m torch_utils.ops.selftest` for CUDA against the reference.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ops_core    # noqa: E402
import ops_flrelu  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per measurement (median reported)')
    parser.add_argument('--quick', action='store_true', help='only the filtered_lrelu example and the core ops')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = []
    for bench in ops_core.ALL_BENCHMARKS:
        rows += bench(repeats=args.repeats)
    rows += ops_flrelu.bench_filtered_lrelu(repeats=args.repeats, example_only=args.quick)

    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} runs, wall time')
    print(f'{"op":<34} {"shape":<20} {"ref ms":>9} {"fast ms":>9} {"speedup":>8}')
    for op, shape, ref_ms, fast_ms in rows:
        print(f'{op:<34} {shape:<20} {ref_ms:9.2f} {fast_ms:9.2f} {ref_ms / fast_ms:7.2f}x')


if __name__ == '__main__':
    main()
