"""Fréchet Inception Distance (Heusel et al. 2017): distance between Gaussians fitted to the
Inception pool features of real and generated images."""

import numpy as np
import scipy.linalg

from . import metric_utils


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    diff = np.square(mu1 - mu2).sum()
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(np.real(diff + np.trace(sigma1 + sigma2 - covmean * 2)))


def compute_fid(opts, max_real, num_gen, captions=None, resolution=None):
    """FID of `num_gen` generated images against `max_real` dataset images (None: all). `captions` and
    `resolution` go to the generated images (see metric_utils.compute_feature_stats_for_generator)."""
    detector_kwargs = dict(return_features=True)  # 2048-D pool features.
    mu_real, sigma_real = metric_utils.compute_feature_stats_for_dataset(
        opts=opts, detector_url=metric_utils.INCEPTION_URL, detector_kwargs=detector_kwargs,
        rel_lo=0, rel_hi=0, capture_mean_cov=True, max_items=max_real).get_mean_cov()
    mu_gen, sigma_gen = metric_utils.compute_feature_stats_for_generator(
        opts=opts, detector_url=metric_utils.INCEPTION_URL, detector_kwargs=detector_kwargs,
        rel_lo=0, rel_hi=1, capture_mean_cov=True, max_items=num_gen, captions=captions,
        resolution=resolution).get_mean_cov()
    if opts.rank != 0:
        return float('nan')
    return frechet_distance(mu_gen, sigma_gen, mu_real, sigma_real)
