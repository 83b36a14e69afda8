"""Throughput of the work behind the metrics: feature extraction and generator sampling.

Usage: python benchmarks/metrics.py [--threads 2] [--batch 16] [--repeats 3] [--device cpu|cuda]

- Feature extraction: an Inception-v3 of the published architecture (torchvision's, random
  weights: the same arithmetic as the real detector, which is a download) on 299x299 inputs.
- Generator sampling: StyleGAN2 and StyleGAN3-T generators at 64x64 (channel_base 8192,
  channel_max 256), producing uint8 images exactly as compute_feature_stats_for_generator does.
- The cached dataset statistics: time to read them back against computing them, in the same run.

Prints images per second and ratios measured in this run.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from metrics import metric_utils  # noqa: E402


def median_seconds(fn, repeats):
    fn()  # Warm-up.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def inception_like(device):
    import torchvision
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    return net.eval().requires_grad_(False).to(device)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f'torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, batch {args.batch}, '
          f'median of {args.repeats} runs')

    # Feature extraction.
    net = inception_like(device)
    images = torch.randn([args.batch, 3, 299, 299], device=device)
    with torch.no_grad():
        sec = median_seconds(lambda: net(images), args.repeats)
    extract_rate = args.batch / sec
    print(f'{"Inception-v3 features":<32} {extract_rate:8.1f} img/s')

    # Generator sampling.
    from training import networks_stylegan2, networks_stylegan3
    for name, module, extra in (('StyleGAN2 64x64', networks_stylegan2, {}),
                                ('StyleGAN3-T 64x64', networks_stylegan3, {})):
        G = module.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=64, img_channels=3,
                             channel_base=8192, channel_max=256, mapping_kwargs=dict(num_layers=2), **extra)
        G = G.eval().requires_grad_(False).to(device)
        z = torch.randn([args.batch, G.z_dim], device=device)
        c = torch.zeros([args.batch, 0], device=device)
        with torch.no_grad():
            sec = median_seconds(lambda: metric_utils.make_images_uint8(G(z=z, c=c)), args.repeats)
        rate = args.batch / sec
        print(f'{name + " sampling":<32} {rate:8.1f} img/s   ({extract_rate / rate:.2f}x the time of feature extraction)')

    # Cached statistics against computing them.
    stats = metric_utils.FeatureStats(capture_mean_cov=True, max_items=args.batch)
    with torch.no_grad():
        compute_sec = median_seconds(lambda: metric_utils.FeatureStats(capture_mean_cov=True).append(
            net(images).flatten(1).cpu().numpy()), 1)
    stats.append(torch.randn([args.batch, 2048]).numpy())
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'stats.pkl')
        stats.save(path)
        load_sec = median_seconds(lambda: metric_utils.FeatureStats.load(path), args.repeats)
    print(f'{"dataset statistics from cache":<32} {compute_sec / load_sec:8.0f}x faster than computing {args.batch} images '
          f'(a full dataset multiplies this by its size / {args.batch})')


if __name__ == '__main__':
    main()
