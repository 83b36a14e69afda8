"""CPU timings of the StyleGAN2 networks: default ops against the plain-PyTorch reference ops.

    python benchmarks/networks_sg2.py [--repeats 3] [--threads N]

The same networks and inputs are timed twice in one process, once with the default op dispatch and
once with every op forced to impl='ref' (torch_utils.ops.force_impl). Timings on a shared machine are
noisy; the median of `repeats` runs is reported.

Each time is also given as a multiple of its floor: the FLOPs of the step (torch.utils.flop_counter:
convolutions and matrix products, forward and backward) divided by the float32 matrix-multiply rate
measured in the same run.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # Run from anywhere.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from training import networks_stylegan2  # noqa: E402
from timing import network_benchmark_options, print_network_timings, time_network_step  # noqa: E402

# StyleGAN2 at 64x64 as configured for training by the official code (8 mapping layers, resnet D).
G_KWARGS = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=64, img_channels=3, channel_base=8192,
                channel_max=256, num_fp16_res=4, conv_clamp=256, fused_modconv_default='inference_only',
                mapping_kwargs=dict(num_layers=8))
D_KWARGS = dict(c_dim=0, img_resolution=64, img_channels=3, architecture='resnet', channel_base=8192,
                channel_max=256, num_fp16_res=4, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=4))


def benchmark_stylegan2_cpu(batch_size=4, repeats=3, impls=('default', 'ref'), seed=0):
    """Returns {impl: {'G_forward_s': ..., 'GD_step_s': ...}} for the networks in G_KWARGS / D_KWARGS,
    plus {'flops': {...}, 'matmul_flops_per_s': ...} for the floors.

    G_forward: G(z, c) under no_grad with constant noise.
    GD_step:   G(z, c) -> D on fakes and on reals -> non-saturating logistic loss -> backward through both.
    """
    torch.manual_seed(seed)
    G = networks_stylegan2.Generator(**G_KWARGS).train().requires_grad_(True)
    D = networks_stylegan2.Discriminator(**D_KWARGS).train().requires_grad_(True)
    z = torch.randn([batch_size, G.z_dim])
    c = torch.zeros([batch_size, G.c_dim])
    reals = torch.randn([batch_size, G.img_channels, G.img_resolution, G.img_resolution])

    def g_forward():
        with torch.no_grad():
            G(z, c, noise_mode='const')

    def gd_step():
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        fakes = G(z, c)
        loss = torch.nn.functional.softplus(-D(fakes, c)).sum() + torch.nn.functional.softplus(D(reals, c)).sum()
        loss.backward()

    return time_network_step(g_forward, gd_step, impls=impls, repeats=repeats)


def main():
    args = network_benchmark_options(__doc__)

    results = benchmark_stylegan2_cpu(batch_size=args.batch, repeats=args.repeats)
    print_network_timings(f'StyleGAN2 64x64, channel_base 8192, channel_max 256, batch {args.batch}', results,
                          args.repeats)


if __name__ == '__main__':
    main()
