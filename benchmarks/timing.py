"""Timing helpers shared by the network benchmarks (networks_sg2.py, networks_sg3.py).

median_seconds() times a callable; matmul_flops_per_second() measures the float32 matrix-multiply rate
that floors are expressed against; counted_flops() counts the convolution and matrix-product FLOPs
that a callable runs (forward and backward) with torch.utils.flop_counter.
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
