"""Timing helpers shared by the network benchmarks (networks_sg2.py, networks_sg3.py, networks_stylegan_t.py).

median_seconds() times a callable; matmul_flops_per_second() measures the float32 matrix-multiply rate
that floors are expressed against; counted_flops() counts the convolution and matrix-product FLOPs
that a callable runs (forward and backward) with torch.utils.flop_counter; time_network_step() and
print_network_timings() time and report a G forward pass and a G+D step per op implementation.
"""

import os
import time

import numpy as np
import torch
import torch.utils.flop_counter


def median_seconds(fn, repeats):
    """Median wall time of `repeats` calls of fn(), after one untimed warm-up call (allocator,
    lazily built kernels, caches)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def matmul_flops_per_second(size=2048, repeats=10):
    """Float32 rate of torch.mm on square matrices on this machine, now: the best of `repeats`, so
    that a floor derived from it is never inflated by a slow moment."""
    a = torch.randn([size, size])
    b = torch.randn([size, size])
    torch.mm(a, b)
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def counted_flops(fn):
    """FLOPs of the matrix products and convolutions that fn() runs, forward and backward."""
    with torch.utils.flop_counter.FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def load_average():
    """The 1-minute load average (None where the OS does not tell): timings mean little when it is
    well above the number of threads."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def time_network_step(g_forward, gd_step, impls, repeats):
    """FLOPs and median times of a generator forward pass and a G+D training step, once per op implementation
    ('default' = the normal dispatch, otherwise forced): {impl: {'G_forward_s', 'GD_step_s'}, 'flops': {...},
    'matmul_flops_per_s': ...}."""
    import torch_utils.ops
    results = dict(flops=dict(G_forward=counted_flops(g_forward), GD_step=counted_flops(gd_step)),
                   matmul_flops_per_s=matmul_flops_per_second())
    saved_force_impl = torch_utils.ops.force_impl
    try:
        for impl in impls:
            torch_utils.ops.force_impl = None if impl == 'default' else impl
            results[impl] = dict(G_forward_s=median_seconds(g_forward, repeats), GD_step_s=median_seconds(gd_step, repeats))
    finally:
        torch_utils.ops.force_impl = saved_force_impl
    return results


def print_network_timings(title, results, repeats):
    """The report of time_network_step(): floors, each implementation's times against them, and the speed-up."""
    print(f'{title}, {torch.get_num_threads()} threads, median of {repeats}, load average {load_average()}')
    rate = results['matmul_flops_per_s']
    floors = {key: results['flops'][key] / rate for key in ['G_forward', 'GD_step']}
    print(f'  floors: G forward {floors["G_forward"] * 1e3:.1f} ms ({results["flops"]["G_forward"] / 1e9:.1f} GFLOP), '
          f'G+D step {floors["GD_step"] * 1e3:.1f} ms ({results["flops"]["GD_step"] / 1e9:.1f} GFLOP) '
          f'at {rate / 1e9:.0f} GFLOP/s (torch.mm)')
    for impl in [key for key in results if key not in ('flops', 'matmul_flops_per_s')]:
        timings = results[impl]
        print(f'  {impl:8s} G forward {timings["G_forward_s"] * 1e3:8.1f} ms '
              f'({timings["G_forward_s"] / floors["G_forward"]:.1f}x floor)   '
              f'G+D forward/backward {timings["GD_step_s"] * 1e3:8.1f} ms '
              f'({timings["GD_step_s"] / floors["GD_step"]:.1f}x floor)')
    if 'default' in results and 'ref' in results:
        for key in ['G_forward_s', 'GD_step_s']:
            print(f'  speed-up of default over ref, {key[:-2]}: {results["ref"][key] / results["default"][key]:.2f}x')


def network_benchmark_options(doc):
    """The command line of a network benchmark: --batch, --repeats, --threads (applied here)."""
    import argparse
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: unchanged)')
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args
