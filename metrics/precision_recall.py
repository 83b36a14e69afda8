"""Improved precision and recall (Kynkäänniemi et al. 2019) on VGG16 features: a sample counts as
inside a manifold if it lies within the k-th nearest-neighbour radius of some sample of that set."""

import torch

from . import metric_utils


def _pairwise_distances(rows, cols, col_batch_size):
    return torch.cat([torch.cdist(rows, cols[i:i + col_batch_size]) for i in range(0, cols.shape[0], col_batch_size)], dim=1)


def _rank_rows(num_rows, num_gpus, rank, row_batch_size):
    return [list(range(start, min(start + row_batch_size, num_rows)))
            for batch_idx, start in enumerate(range(0, num_rows, row_batch_size)) if batch_idx % num_gpus == rank]


def _all_reduce_sum(x, num_gpus, device):
    if num_gpus > 1:
        x = x.to(device)
        torch.distributed.all_reduce(x)
    return x.cpu()


def manifold_radii(features, nhood_size, row_batch_size, col_batch_size, num_gpus=1, rank=0, device='cpu'):
    """Distance from each sample to its `nhood_size`-th nearest neighbour (excluding itself)."""
    radii = torch.zeros([features.shape[0]], dtype=torch.float32)
    for rows in _rank_rows(features.shape[0], num_gpus, rank, row_batch_size):
        dist = _pairwise_distances(features[rows].to(device), features.to(device), col_batch_size)
        radii[rows] = dist.kthvalue(nhood_size + 1, dim=1).values.cpu()  # +1: the sample itself is at 0.
    return _all_reduce_sum(radii, num_gpus, device)


def fraction_inside(manifold, radii, probes, row_batch_size, col_batch_size, num_gpus=1, rank=0, device='cpu'):
    """Fraction of `probes` within the radius of at least one manifold sample."""
    inside = torch.zeros([probes.shape[0]], dtype=torch.float32)
    for rows in _rank_rows(probes.shape[0], num_gpus, rank, row_batch_size):
        dist = _pairwise_distances(probes[rows].to(device), manifold.to(device), col_batch_size)
        inside[rows] = (dist <= radii.to(device).unsqueeze(0)).any(dim=1).float().cpu()
    return float(_all_reduce_sum(inside, num_gpus, device).mean())


def precision_recall(real_features, gen_features, nhood_size, row_batch_size, col_batch_size, num_gpus=1, rank=0, device='cpu'):
    """(precision, recall) of generated features against real ones."""
    real = torch.as_tensor(real_features, dtype=torch.float32)
    gen = torch.as_tensor(gen_features, dtype=torch.float32)
    kwargs = dict(row_batch_size=row_batch_size, col_batch_size=col_batch_size, num_gpus=num_gpus, rank=rank, device=device)
    real_radii = manifold_radii(real, nhood_size, **kwargs)
    gen_radii = manifold_radii(gen, nhood_size, **kwargs)
    precision = fraction_inside(real, real_radii, gen, **kwargs)
    recall = fraction_inside(gen, gen_radii, real, **kwargs)
    return precision, recall


def compute_pr(opts, max_real, num_gen, nhood_size, row_batch_size, col_batch_size):
    detector_kwargs = dict(return_features=True)
    real_features = metric_utils.compute_feature_stats_for_dataset(
        opts=opts, detector_url=metric_utils.VGG16_URL, detector_kwargs=detector_kwargs,
        rel_lo=0, rel_hi=0, capture_all=True, max_items=max_real).get_all()
    gen_features = metric_utils.compute_feature_stats_for_generator(
        opts=opts, detector_url=metric_utils.VGG16_URL, detector_kwargs=detector_kwargs,
        rel_lo=0, rel_hi=1, capture_all=True, max_items=num_gen).get_all()
    precision, recall = precision_recall(real_features, gen_features, nhood_size, row_batch_size, col_batch_size,
                                         num_gpus=opts.num_gpus, rank=opts.rank, device=opts.device)
    if opts.rank != 0:
        return float('nan'), float('nan')
    return precision, recall
