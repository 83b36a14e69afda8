"""Perceptual Path Length (Karras et al. 2019): LPIPS distance (VGG16) between images generated from
two latents `epsilon` apart along an interpolation path, divided by epsilon^2."""

import copy

import numpy as np
import torch

import dnnlib
from training import networks_creps
from . import metric_utils


def slerp(a, b, t):
    """Spherical interpolation between normalised a and b, t of shape [N, 1]."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t * torch.acos(d.clamp(-1, 1))
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    d = a * torch.cos(p) + c * torch.sin(p)
    return d / d.norm(dim=-1, keepdim=True)


def prepare_for_lpips(img, crop):
    """Generator output [-1, 1] -> float [0, 255], optionally cropped to the face region, at most 256 px."""
    if crop:
        assert img.shape[2] == img.shape[3]
        c = img.shape[2] // 8
        img = img[:, :, c * 3: c * 7, c * 2: c * 6]
    factor = img.shape[2] // 256
    if factor > 1:
        img = img.reshape([-1, img.shape[1], img.shape[2] // factor, factor, img.shape[3] // factor, factor]).mean([3, 5])
    img = (img + 1) * (255 / 2)
    if img.shape[1] == 1:
        img = img.repeat([1, 3, 1, 1])
    return img


def path_distances(G, vgg16, z0, z1, c, t, epsilon, space, crop, G_kwargs):
    """Squared LPIPS distance / epsilon^2 for each pair of latents at interpolation position t."""
    t = t.unsqueeze(1)
    if space == 'w':
        w0, w1 = G.mapping(z=torch.cat([z0, z1]), c=torch.cat([c, c])).chunk(2)
        wt0 = torch.lerp(w0, w1, t.unsqueeze(2))
        wt1 = torch.lerp(w0, w1, t.unsqueeze(2) + epsilon)
    else:
        zt0 = slerp(z0, z1, t)
        zt1 = slerp(z0, z1, t + epsilon)
        wt0, wt1 = G.mapping(z=torch.cat([zt0, zt1]), c=torch.cat([c, c])).chunk(2)
    synthesis_kwargs = {k: v for k, v in G_kwargs.items() if k not in ('truncation_psi', 'truncation_cutoff', 'noise_mode', 'force_fp32')}
    img = G.synthesis(ws=torch.cat([wt0, wt1]), noise_mode='const', force_fp32=True, **synthesis_kwargs)
    img = prepare_for_lpips(img, crop)
    lpips_t0, lpips_t1 = vgg16(img, resize_images=False, return_lpips=True).chunk(2)
    return (lpips_t0 - lpips_t1).square().sum(1) / epsilon ** 2


def filtered_mean(dist):
    """Mean after dropping the lowest and highest percentile (outliers from degenerate pairs)."""
    lo = np.percentile(dist, 1, method='lower')
    hi = np.percentile(dist, 99, method='higher')
    return float(np.extract(np.logical_and(dist >= lo, dist <= hi), dist).mean())


def compute_ppl(opts, num_samples, epsilon, space, sampling, crop, batch_size):
    assert space in ('z', 'w') and sampling in ('full', 'end')
    vgg16 = metric_utils.get_feature_detector(metric_utils.VGG16_URL, device=opts.device, num_gpus=opts.num_gpus,
                                              rank=opts.rank, verbose=opts.progress.verbose)
    G = copy.deepcopy(opts.G).eval().requires_grad_(False).to(opts.device)
    dataset = dnnlib.util.construct_class_by_name(**opts.dataset_kwargs) if G.c_dim > 0 else None

    stats = metric_utils.FeatureStats(capture_all=True, max_items=num_samples)
    progress = opts.progress.sub(tag='ppl sampling', num_items=num_samples)
    with networks_creps.rendering_scale(G, opts.scale):
        for batch in metric_utils.rank_items(num_samples, opts.num_gpus, opts.rank, batch_size):
            z0 = torch.from_numpy(metric_utils.sample_latents([2 * i for i in batch], G.z_dim, opts.seed)).to(opts.device)
            z1 = torch.from_numpy(metric_utils.sample_latents([2 * i + 1 for i in batch], G.z_dim, opts.seed)).to(opts.device)
            c = metric_utils.generator_labels(batch, dataset, G, opts.seed, opts.device)
            if sampling == 'full':
                t = torch.as_tensor([np.random.RandomState(opts.seed * 7919 + i).rand() for i in batch],
                                    dtype=torch.float32, device=opts.device)
            else:
                t = torch.zeros([len(batch)], device=opts.device)
            dist = path_distances(G, vgg16, z0, z1, c, t, epsilon, space, crop, opts.G_kwargs)
            stats.append_torch(dist.unsqueeze(1), num_gpus=opts.num_gpus, rank=opts.rank)
            progress.update(min(stats.num_items, num_samples))
    if opts.rank != 0:
        return float('nan')
    return filtered_mean(stats.get_all()[:, 0])
