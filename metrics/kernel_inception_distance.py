"""Kernel Inception Distance (Binkowski et al. 2018): unbiased estimate of the squared MMD between
Inception features with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over subsets."""

import numpy as np

from . import metric_utils


def kernel_distance(real_features, gen_features, num_subsets, max_subset_size, seed=0):
    """Mean over `num_subsets` random subsets of the unbiased MMD^2 estimate."""
    n = real_features.shape[1]
    m = min(real_features.shape[0], gen_features.shape[0], max_subset_size)
    assert m >= 2, 'KID needs at least two samples per set'
    rnd = np.random.RandomState(seed)
    t = 0.0
    for _ in range(num_subsets):
        x = gen_features[rnd.choice(gen_features.shape[0], m, replace=False)].astype(np.float64)
        y = real_features[rnd.choice(real_features.shape[0], m, replace=False)].astype(np.float64)
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


def compute_kid(opts, max_real, num_gen, num_subsets, max_subset_size):
    detector_kwargs = dict(return_features=True)
    real_features = metric_utils.compute_feature_stats_for_dataset(
        opts=opts, detector_url=metric_utils.INCEPTION_URL, detector_kwargs=detector_kwargs,
        rel_lo=0, rel_hi=0, capture_all=True, max_items=max_real).get_all()
    gen_features = metric_utils.compute_feature_stats_for_generator(
        opts=opts, detector_url=metric_utils.INCEPTION_URL, detector_kwargs=detector_kwargs,
        rel_lo=0, rel_hi=1, capture_all=True, max_items=num_gen).get_all()
    if opts.rank != 0:
        return float('nan')
    return kernel_distance(real_features, gen_features, num_subsets, max_subset_size, seed=opts.seed)
