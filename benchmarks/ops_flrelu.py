"""CPU timings of filtered_lrelu: 'fast' (fused C++ kernel) against 'ref', measured in the same run.

Usage: python benchmarks/ops_flrelu.py [--threads 2] [--repeats 5] [--batch 4] [--example-only] [--cpu-time] [--config T|R]

Shapes: every filtered_lrelu of a StyleGAN3-T generator at 64x64 (channel_base 8192, channel_max 256,
batch 4; layers with identical shapes are timed once and counted) -- or, with --config R, the StyleGAN3-R
64x64 layers with radial 2-D downsampling filters (channel_base 16384, channel_max 512) --, plus the example of the issue
(batch 4, 256 channels, 82x82, up 2, down 2, 12-tap filters). bench_filtered_lrelu() returns rows
(op, shape, ref ms, fast ms) like the bench_* functions of benchmarks/ops_core.py.
"""

import argparse
import collections
import os
import statistics
import sys
import time

import numpy as np
import scipy.signal
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torch_utils.ops import filtered_lrelu     # noqa: E402

#----------------------------------------------------------------------------

def time_ms(fn, repeats=5, warmup=1, clock=time.perf_counter):
    """Median time of fn() in milliseconds (wall clock, or time.process_time for CPU time of all threads)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append((clock() - start) * 1e3)
    return statistics.median(times)


LayerShape = collections.namedtuple('LayerShape', 'channels x_size up down up_taps down_taps padding')


def sg3t_layer_shapes(img_resolution=64, img_channels=3, channel_base=8192, channel_max=256, num_layers=14, num_critical=2,
                      first_cutoff=2, first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3, margin_size=10,
                      filter_size=6, lrelu_upsampling=2, conv_kernel=3):
    """filtered_lrelu arguments of each synthesis layer of StyleGAN3-T (schedule of the paper, Appendix F):
    cutoffs and stopbands grow geometrically up to the last `num_critical` layers, sampling rates are the
    next power of two above twice the stopband, image sizes add a margin of 10 on each side."""
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (img_resolution / 2 / first_cutoff) ** exponents
    stopbands = first_stopband * (img_resolution / 2 * last_stopband_rel / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    layers = []
    for idx in range(num_layers + 1):
        prev = max(idx - 1, 0)
        torgb = idx == num_layers
        tmp_rate = max(sampling_rates[prev], sampling_rates[idx]) * (1 if torgb else lrelu_upsampling)
        up = int(round(tmp_rate / sampling_rates[prev]))
        down = int(round(tmp_rate / sampling_rates[idx]))
        up_taps = filter_size * up if up > 1 and not torgb else 1
        down_taps = filter_size * down if down > 1 and not torgb else 1
        x_size = int(sizes[prev]) + (1 if torgb else conv_kernel) - 1
        pad_total = (int(sizes[idx]) - 1) * down + 1 - x_size * up + (up_taps - 1) + (down_taps - 1)
        pad_lo = (pad_total + up) // 2
        shape = LayerShape(int(channels[idx]), x_size, up, down, up_taps, down_taps, (pad_lo, pad_total - pad_lo))
        filters = dict(
            fu=_lowpass(up_taps, cutoffs[prev], half_widths[prev] * 2, tmp_rate),
            fd=_lowpass(down_taps, cutoffs[idx], half_widths[idx] * 2, tmp_rate),
            gain=1 if torgb else np.sqrt(2), slope=1 if torgb else 0.2)
        layers.append((f'L{idx}', shape, filters))
    return layers


def _lowpass(taps, cutoff, width, fs):
    if taps == 1:
        return None
    return torch.as_tensor(scipy.signal.firwin(numtaps=taps, cutoff=cutoff, width=width, fs=fs), dtype=torch.float32)


def sg3r_radial_layer_shapes(img_resolution=64, channel_base=16384, channel_max=512):
    """filtered_lrelu arguments of the StyleGAN3-R synthesis layers that use a radial (non-separable
    2-D) downsampling filter, taken from the network itself (1x1 convolutions, conv_clamp 256)."""
    from training import networks_stylegan3  # pylint: disable=import-outside-toplevel
    synthesis = networks_stylegan3.SynthesisNetwork(w_dim=512, img_resolution=img_resolution, img_channels=3,
        channel_base=channel_base, channel_max=channel_max, conv_kernel=1, use_radial_filters=True, conv_clamp=256)
    layers = []
    for name in synthesis.layer_names:
        layer = getattr(synthesis, name)
        if layer.down_filter is None or layer.down_filter.ndim != 2:
            continue
        px0, px1, py0, py1 = layer.padding
        assert (px0, px1) == (py0, py1) and layer.in_size[0] == layer.in_size[1]
        shape = LayerShape(layer.out_channels, int(layer.in_size[0]) + layer.conv_kernel - 1,
                           layer.up_factor, layer.down_factor, layer.up_taps, layer.down_taps, (px0, px1))
        filters = dict(fu=layer.up_filter, fd=layer.down_filter, gain=np.sqrt(2), slope=0.2)
        layers.append((name.split('_')[0], shape, filters))
    return layers

#----------------------------------------------------------------------------

def _compare(name, shape_str, batch, shape, filters, repeats, clock):
    x = torch.randn([batch, shape.channels, shape.x_size, shape.x_size])
    b = torch.randn([shape.channels])
    px0, px1 = shape.padding
    kwargs = dict(fu=filters['fu'], fd=filters['fd'], up=shape.up, down=shape.down, padding=[px0, px1, px0, px1],
                  gain=filters['gain'], slope=filters['slope'], clamp=256)
    xg, bg = x.clone().requires_grad_(), b.clone().requires_grad_()
    rows = []
    for mode in ['fwd', 'fwd+bwd']:
        def make(impl):
            if mode == 'fwd':
                def run():
                    with torch.no_grad():
                        filtered_lrelu.filtered_lrelu(x, b=b, **kwargs, impl=impl)
            else:
                def run():
                    y = filtered_lrelu.filtered_lrelu(xg, b=bg, **kwargs, impl=impl)
                    torch.autograd.grad(y, [xg, bg], y)
            return run
        ref_ms = time_ms(make('ref'), repeats, clock=clock)
        fast_ms = time_ms(make('fast'), repeats, clock=clock)
        rows.append((f'{name} {mode}', shape_str, ref_ms, fast_ms))
    return rows


def bench_filtered_lrelu(batch=4, repeats=5, example_only=False, clock=time.perf_counter, config='T'):
    """Rows (op, shape, ref ms, fast ms); the issue's example and the 64x64 layers of StyleGAN3-T
    (config 'T': every layer) or StyleGAN3-R (config 'R': the layers with radial 2-D downsampling
    filters), grouped by shape, plus a total weighted by how often each shape occurs."""
    rows = []
    example = LayerShape(256, 82, 2, 2, 12, 12, (11, 10))
    example_filters = dict(fu=_lowpass(12, 8, 8, 64), fd=_lowpass(12, 8, 8, 64), gain=np.sqrt(2), slope=0.2)
    rows += _compare('flrelu example', f'{batch}x256x82 u2d2', batch, example, example_filters, repeats, clock)
    if example_only:
        return rows
    groups = collections.OrderedDict()
    layers = sg3t_layer_shapes() if config == 'T' else sg3r_radial_layer_shapes()
    for name, shape, filters in layers:
        groups.setdefault(shape, []).append((name, filters))
    totals = collections.defaultdict(lambda: [0.0, 0.0])
    for shape, members in groups.items():
        names = members[0][0] if len(members) == 1 else f'{members[0][0]}-{members[-1][0]}'
        shape_str = f'{batch}x{shape.channels}x{shape.x_size} u{shape.up}d{shape.down}'
        for op, s, ref_ms, fast_ms in _compare(f'flrelu {names}', shape_str, batch, shape, members[0][1], repeats, clock):
            rows.append((op, s, ref_ms, fast_ms))
            mode = op.split()[-1]
            totals[mode][0] += ref_ms * len(members)
            totals[mode][1] += fast_ms * len(members)
    for mode, (ref_ms, fast_ms) in totals.items():
        rows.append((f'flrelu G total {mode}', f'sg3{config.lower()}-64 b{batch}', ref_ms, fast_ms))
    return rows

#----------------------------------------------------------------------------

def print_table(rows):
    print(f'{"op":<32} {"shape":<20} {"ref ms":>9} {"fast ms":>9} {"speedup":>8}')
    for op, shape, ref_ms, fast_ms in rows:
        print(f'{op:<32} {shape:<20} {ref_ms:9.2f} {fast_ms:9.2f} {ref_ms / fast_ms:7.2f}x')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per measurement (median reported)')
    parser.add_argument('--batch', type=int, default=4, help='batch size')
    parser.add_argument('--example-only', action='store_true', help='only the 82x82 example of the issue')
    parser.add_argument('--config', choices=['T', 'R'], default='T', help='StyleGAN3-T layers, or the radial-filter layers of StyleGAN3-R')
    parser.add_argument('--cpu-time', action='store_true', help='process CPU time (all threads) instead of wall time; steadier on a busy machine')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clock = time.process_time if args.cpu_time else time.perf_counter
    rows = bench_filtered_lrelu(batch=args.batch, repeats=args.repeats, example_only=args.example_only, clock=clock, config=args.config)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} runs, '
          f'{"CPU" if args.cpu_time else "wall"} time')
    print_table(rows)


if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
