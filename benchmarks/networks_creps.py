"""CPU timings and memory of the CREPS generator against its op-by-op formulation.

    python benchmarks/networks_creps.py [--repeats 3] [--threads N] [--scales 1,2,4] [--no-step]

CREPS at 64x64 as `train.py --cfg=creps --cbase=8192 --cmax=256` configures it (the base of the StyleGAN
benchmarks, doubled for G: channel_base 16384, channel_max 512; 8 mapping layers, z and w 512, 32 bi-line
channels), batch 4. Two implementations of the same function run in one process:

  ours:      training/networks_creps.py;
  reference: tests/creps_reference.py, the formulation of the paper and the public release written with
             einsum (per-sample weights, a batch of identical Fourier features, channels-last per-pixel
             stage), reading the same parameters.

and each is timed for

  G_forward: G(z, c) under no_grad, at every scale of --scales (networks_creps.rendering_scale);
  GD_step:   G(z, c) -> D on the fakes and on reals -> non-saturating logistic loss -> backward through
             G and D (D is the StyleGAN2 discriminator of benchmarks/networks_sg3.py: resnet,
             channel_base 8192, channel_max 256).

Every time is also given as a multiple of its floor: the matrix-product FLOPs of our implementation
(torch.utils.flop_counter, forward, and forward and backward of G and D for the step; CREPS has no other
arithmetic of that order) divided by the float32 rate of torch.mm measured in the same run. Memory is the
peak of the bytes allocated by torch during one forward pass (torch.profiler with profile_memory), at every
scale. Timings on a shared machine are noisy; the median of `repeats` runs is reported, with the load
average. Where the GEMM threads and PyTorch's other OpenMP threads compete for few cores,
OMP_WAIT_POLICY=PASSIVE (set before Python starts) can change every time here several-fold; the header
shows its value.
"""

import argparse
import os
import sys

import torch
from torch.profiler import ProfilerActivity
from torch.profiler import profile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # Run from anywhere.
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests'))  # The reference formulation lives with the tests.
import creps_reference  # noqa: E402
from training import networks_creps, networks_stylegan2  # noqa: E402
from timing import counted_flops, load_average, matmul_flops_per_second, median_seconds  # noqa: E402

G_KWARGS = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=64, img_channels=3, channel_base=16384,
                channel_max=512, mapping_kwargs=dict(num_layers=8))
D_KWARGS = dict(c_dim=0, img_resolution=64, img_channels=3, architecture='resnet', channel_base=8192,
                channel_max=256, num_fp16_res=4, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=4))


def peak_allocated_bytes(fn):
    """Peak of the bytes held by tensors that `fn` allocates, from the profiler's allocation events."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    held = peak = 0
    for _start, delta in events:
        held += delta
        peak = max(peak, held)
    return peak


def benchmark_creps_cpu(batch_size=4, repeats=3, scales=(1, 2, 4), with_step=True, seed=0):
    """Times (G_forward at each scale, GD_step) and forward memory at each scale, for ours and the reference.

    Returns dict(mm_flops_per_s=..., floors={key: seconds}, timings={impl: {key: seconds}},
    memory={impl: {scale: bytes}}, gflop_per_image={key: ...}), with keys 'G_forward_x{scale}' and 'GD_step'.
    """
    torch.manual_seed(seed)
    G = networks_creps.Generator(**G_KWARGS).train().requires_grad_(True)
    D = networks_stylegan2.Discriminator(**D_KWARGS).train().requires_grad_(True)
    z = torch.randn([batch_size, G.z_dim])
    c = torch.zeros([batch_size, G.c_dim])
    reals = torch.randn([batch_size, G.img_channels, G.img_resolution, G.img_resolution])
    generators = {
        'ours': lambda: G(z, c),
        'reference': lambda: creps_reference.synthesis(G, creps_reference.mapping(G, z, c),
                                                       num_points=G.synthesis.b4.input.coords.shape[1]),
    }

    def forward(impl):
        with torch.no_grad():
            generators[impl]()

    def step(impl):
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        fakes = generators[impl]()
        loss = torch.nn.functional.softplus(D(fakes, c)).sum() + torch.nn.functional.softplus(-D(reals, c)).sum()
        loss.backward()

    mm_rate = matmul_flops_per_second()
    flops = {}
    for scale in scales:
        with networks_creps.rendering_scale(G, scale):
            flops[f'G_forward_x{scale:g}'] = counted_flops(lambda: forward('ours'))
    if with_step:
        flops['GD_step'] = counted_flops(lambda: step('ours'))
    floors = {key: value / mm_rate for key, value in flops.items()}

    timings = {impl: {} for impl in generators}
    memory = {impl: {} for impl in generators}
    for scale in scales:
        with networks_creps.rendering_scale(G, scale):
            for impl in generators:
                timings[impl][f'G_forward_x{scale:g}'] = median_seconds(lambda: forward(impl), repeats)
                memory[impl][scale] = peak_allocated_bytes(lambda: forward(impl))
    if with_step:
        for impl in generators:
            timings[impl]['GD_step'] = median_seconds(lambda: step(impl), repeats)
    return dict(mm_flops_per_s=mm_rate, floors=floors, timings=timings, memory=memory,
                gflop_per_image={key: value / batch_size / 1e9 for key, value in flops.items()})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--scales', default='1,2,4', help='comma-separated rendering scales of the forward pass')
    parser.add_argument('--no-step', action='store_true', help='time the forward passes only')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: unchanged)')
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    scales = [float(s) if not float(s).is_integer() else int(s) for s in args.scales.split(',')]

    result = benchmark_creps_cpu(batch_size=args.batch, repeats=args.repeats, scales=scales, with_step=not args.no_step)
    print(f'CREPS {G_KWARGS["img_resolution"]}x{G_KWARGS["img_resolution"]}, channel_base {G_KWARGS["channel_base"]}, '
          f'channel_max {G_KWARGS["channel_max"]}, batch {args.batch}, {torch.get_num_threads()} threads, median of '
          f'{args.repeats}, load average {load_average()}, OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY", "unset")}')
    print(f'  floor: matrix products at {result["mm_flops_per_s"] / 1e9:.0f} GFLOP/s (torch.mm)')
    for key, floor in result['floors'].items():
        label = 'G+D forward/backward step' if key == 'GD_step' else f'G forward at scale {key[len("G_forward_x"):]}'
        print(f'  {label}: {result["gflop_per_image"][key]:.2f} GFLOP/image, floor {floor:.3f} s')
        for impl, timings in result['timings'].items():
            print(f'    {impl:10s} {timings[key]:8.3f} s  = {timings[key] / floor:5.2f}x floor')
        print(f'    speed-up of ours over the reference: {result["timings"]["reference"][key] / result["timings"]["ours"][key]:.2f}x')
    print('  peak memory of a forward pass:')
    for scale in scales:
        ours, ref = result['memory']['ours'][scale], result['memory']['reference'][scale]
        print(f'    scale {scale:g} ({int(G_KWARGS["img_resolution"] * scale)} px): ours {ours / 2**20:7.1f} MiB, '
              f'reference {ref / 2**20:7.1f} MiB ({ref / max(ours, 1):.1f}x)')


if __name__ == '__main__':
    main()
