"""CPU timings of the StyleGAN-T networks: default ops against the plain-PyTorch reference ops.

    python benchmarks/networks_stylegan_t.py [--batch 4] [--repeats 3] [--threads N]

The generator is the lite preset's architecture (2 residual block pairs per resolution) at 64x64 with the
channels reduced (channel_base 8192, channel_max 256) so that it fits a CPU; the discriminator has DINO
ViT-S/16's architecture (random weights: the timing does not depend on them) at its 224-pixel input. Text
embeddings are given as c, so the frozen text encoder is not part of the step.

The same networks and inputs are timed twice in one process, with the default op dispatch and with every op
forced to impl='ref' (torch_utils.ops.force_impl); the median of `repeats` runs is reported, and each time as
a multiple of its floor (its convolution and matrix-product FLOPs over the float32 matrix-multiply rate
measured in the same run).
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # Run from anywhere.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from training import networks_stylegan_t  # noqa: E402
from timing import network_benchmark_options, print_network_timings, time_network_step  # noqa: E402

C_DIM = 768  # CLIP ViT-L/14's text embedding.
G_KWARGS = dict(z_dim=64, c_dim=C_DIM, img_resolution=64, img_channels=3, channel_base=8192, channel_max=256,
                res_blocks=2, text_encoder_kwargs=dict(vocab_size=16, context_length=4, width=8, layers=1, heads=1,
                                                       mlp_width=8, embed_dim=C_DIM))
DINO_VIT_S16 = dict(img_size=224, patch_size=16, width=384, depth=12, heads=6, mlp_width=1536, hooks=[2, 5, 8, 11])
D_KWARGS = dict(c_dim=C_DIM, img_resolution=64, img_channels=3, backbone_kwargs=DINO_VIT_S16)


def benchmark_stylegan_t_cpu(batch_size=4, repeats=3, impls=('default', 'ref'), seed=0):
    """{impl: {'G_forward_s': ..., 'GD_step_s': ...}, 'flops': {...}, 'matmul_flops_per_s': ...}.

    G_forward: G(z, c) under no_grad with constant noise.
    GD_step:   G(z, c) -> D on fakes and on reals -> hinge losses -> backward through both.
    """
    torch.manual_seed(seed)
    G = networks_stylegan_t.Generator(**G_KWARGS).train().requires_grad_(True)
    D = networks_stylegan_t.Discriminator(**D_KWARGS).train().requires_grad_(True)
    z = torch.randn([batch_size, G.z_dim])
    c = torch.nn.functional.normalize(torch.randn([batch_size, C_DIM]), dim=1)
    reals = torch.rand([batch_size, 3, 64, 64]) * 2 - 1

    def g_forward():
        with torch.no_grad():
            G(z, c, noise_mode='const')

    def gd_step():
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        fakes = G(z, c)
        loss = (-D(fakes, c)).mean() + torch.relu(1 - D(reals, c)).mean()
        loss.backward()

    return time_network_step(g_forward, gd_step, impls=impls, repeats=repeats)


def main():
    args = network_benchmark_options(__doc__)

    results = benchmark_stylegan_t_cpu(batch_size=args.batch, repeats=args.repeats)
    print_network_timings(f'StyleGAN-T lite G at 64x64 (channel_base 8192, channel_max 256), D on DINO ViT-S/16 at '
                          f'224, batch {args.batch}', results, args.repeats)


if __name__ == '__main__':
    main()
