"""CPU timings of the StyleGAN3 generators: default ops against the plain-PyTorch reference ops.

    python benchmarks/networks_sg3.py [--configs T,R] [--repeats 3] [--threads N] [--no-step]

StyleGAN3-T (64x64, channel_base 8192, channel_max 256) and StyleGAN3-R (64x64, channel_base 16384,
channel_max 512, 1x1 convolutions, radial filters), batch 4, as configured for training by the official
code (2 mapping layers, 4 FP16 resolutions -- FP32 on the CPU --, conv_clamp 256). Each is timed twice in
one process, once with the default op dispatch and once with every op forced to impl='ref'
(torch_utils.ops.force_impl), for

  G_forward: G(z, c) under no_grad;
  GD_step:   G(z, c) -> D on the fakes and on reals -> non-saturating logistic loss -> backward through
             G and D (D is the StyleGAN2 discriminator, resnet, channel_base 8192, channel_max 256).

Every time is also given as a multiple of its floor: the arithmetic the network cannot avoid divided by
the float32 matrix-multiply rate measured in the same run (torch.mm of large matrices, best of 10). The
arithmetic of G's forward is counted analytically -- convolutions (including the 1x1 Fourier-feature
mixing) plus the filtering of filtered_lrelu done the cheapest direct way (polyphase upsampling,
separable filters where the filter is separable, the output computed only at the kept samples) --; for
the step, torch.utils.flop_counter counts every convolution and matrix product of G and D, forward and
backward, and G's filtering counts twice (the forward and its adjoint in the backward). Timings on a
shared machine are noisy; the median of `repeats` runs is reported, with the load average.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # Run from anywhere.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_utils.ops  # noqa: E402
from training import networks_stylegan2, networks_stylegan3  # noqa: E402
from timing import counted_flops, load_average, matmul_flops_per_second, median_seconds  # noqa: E402

COMMON_G_KWARGS = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=64, img_channels=3, num_fp16_res=4,
                       conv_clamp=256, mapping_kwargs=dict(num_layers=2))
G_KWARGS = {
    'T': dict(COMMON_G_KWARGS, channel_base=8192, channel_max=256),
    'R': dict(COMMON_G_KWARGS, channel_base=16384, channel_max=512, conv_kernel=1, use_radial_filters=True),
}
# The official training code doubles channel_base/channel_max of G only (for R), so D is the same for both.
D_KWARGS = dict(c_dim=0, img_resolution=64, img_channels=3, architecture='resnet', channel_base=8192,
                channel_max=256, num_fp16_res=4, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=4))


def synthesis_layer_flops(layer):
    """(convolution FLOPs, minimal filtering FLOPs) of one SynthesisLayer, per image."""
    conv_size = int(layer.in_size[0]) + layer.conv_kernel - 1
    conv = 2 * layer.out_channels * layer.in_channels * layer.conv_kernel ** 2 * conv_size ** 2

    # Upsampling: only up_taps/up_factor taps of the zero-stuffed signal are non-zero; rows first
    # (on the conv_size rows), then columns (on the upsampled rows).
    up_size = conv_size * layer.up_factor + layer.padding[0] + layer.padding[1] - layer.up_taps + 1
    up = 0
    if layer.up_filter is not None:
        up = 2 * (layer.up_taps / layer.up_factor) * (conv_size * up_size + up_size * up_size)

    # Downsampling: filter values are needed only at the kept samples.
    out_size = int(layer.out_size[0])
    down = 0
    if layer.down_filter is not None and layer.down_filter.ndim == 1:
        down = 2 * layer.down_taps * (up_size * out_size + out_size * out_size)
    elif layer.down_filter is not None:
        down = 2 * layer.down_taps ** 2 * out_size ** 2
    return conv, (up + down) * layer.out_channels


def generator_flops(G):
    """(convolution/matmul FLOPs, filtering FLOPs) of G.synthesis per image; the mapping is negligible."""
    synthesis = G.synthesis
    conv = 2 * synthesis.input.channels ** 2 * int(synthesis.input.size[0]) * int(synthesis.input.size[1])
    filtering = 0
    for name in synthesis.layer_names:
        layer_conv, layer_filtering = synthesis_layer_flops(getattr(synthesis, name))
        conv += layer_conv
        filtering += layer_filtering
    return conv, filtering


def benchmark_stylegan3_cpu(config, batch_size=4, repeats=3, impls=('default', 'ref'), with_step=True, seed=0):
    """Times of G_forward and GD_step for one config, per impl, with their floors in seconds.

    Returns dict(floors=dict(G_forward_s=..., GD_step_s=...), mm_flops_per_s=..., gflop_per_image=...,
    timings={impl: dict(G_forward_s=..., GD_step_s=...)}).
    """
    torch.manual_seed(seed)
    G = networks_stylegan3.Generator(**G_KWARGS[config]).train().requires_grad_(True)
    D = networks_stylegan2.Discriminator(**D_KWARGS).train().requires_grad_(True)
    z = torch.randn([batch_size, G.z_dim])
    c = torch.zeros([batch_size, G.c_dim])
    reals = torch.randn([batch_size, G.img_channels, G.img_resolution, G.img_resolution])

    def g_forward():
        with torch.no_grad():
            G(z, c)

    def gd_step():
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        fakes = G(z, c)
        loss = torch.nn.functional.softplus(D(fakes, c)).sum() + torch.nn.functional.softplus(-D(reals, c)).sum()
        loss.backward()

    # Floors.
    mm_rate = matmul_flops_per_second()
    conv, filtering = generator_flops(G)
    floors = dict(G_forward_s=batch_size * (conv + filtering) / mm_rate)
    if with_step:
        floors['GD_step_s'] = (counted_flops(gd_step) + batch_size * 2 * filtering) / mm_rate

    timings = {}
    saved_force_impl = torch_utils.ops.force_impl
    try:
        for impl in impls:
            torch_utils.ops.force_impl = None if impl == 'default' else impl
            timings[impl] = dict(G_forward_s=median_seconds(g_forward, repeats))
            if with_step:
                timings[impl]['GD_step_s'] = median_seconds(gd_step, repeats)
    finally:
        torch_utils.ops.force_impl = saved_force_impl
    return dict(floors=floors, mm_flops_per_s=mm_rate, timings=timings,
                gflop_per_image=dict(conv=conv / 1e9, filtering=filtering / 1e9))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--configs', default='T,R', help='comma-separated subset of T,R')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--impls', default='default,ref', help='comma-separated subset of default,ref,fast')
    parser.add_argument('--no-step', action='store_true', help='time the forward pass only')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: unchanged)')
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    impls = args.impls.split(',')
    for config in args.configs.split(','):
        result = benchmark_stylegan3_cpu(config, batch_size=args.batch, repeats=args.repeats, impls=impls,
                                         with_step=not args.no_step)
        kwargs = G_KWARGS[config]
        gflop = result['gflop_per_image']
        print(f'StyleGAN3-{config} {kwargs["img_resolution"]}x{kwargs["img_resolution"]}, channel_base '
              f'{kwargs["channel_base"]}, channel_max {kwargs["channel_max"]}, batch {args.batch}, '
              f'{torch.get_num_threads()} threads, median of {args.repeats}, load average {load_average()}')
        print(f'  floor: {gflop["conv"]:.1f} GFLOP/image convolution + {gflop["filtering"]:.2f} GFLOP/image filtering '
              f'at {result["mm_flops_per_s"] / 1e9:.0f} GFLOP/s (torch.mm)')
        for key, label in [('G_forward_s', 'G forward'), ('GD_step_s', 'G+D forward/backward step')]:
            if key not in result['timings'][impls[0]]:
                continue
            floor = result['floors'][key]
            print(f'  {label}: floor {floor:.2f} s')
            for impl, timings in result['timings'].items():
                print(f'    {impl:8s} {timings[key]:8.2f} s  = {timings[key] / floor:5.2f}x floor')
            if 'default' in result['timings'] and 'ref' in result['timings']:
                speedup = result['timings']['ref'][key] / result['timings']['default'][key]
                print(f'    speed-up of default over ref: {speedup:.2f}x')


if __name__ == '__main__':
    main()
