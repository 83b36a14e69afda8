"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) over splits, mean and std."""

import numpy as np

from . import metric_utils


def inception_score(probs, num_splits):
    """Mean and standard deviation over `num_splits` equal splits of class probabilities [N, K]."""
    probs = np.asarray(probs, dtype=np.float64)
    num = probs.shape[0]
    scores = []
    for i in range(num_splits):
        part = probs[i * num // num_splits: (i + 1) * num // num_splits]
        py = np.mean(part, axis=0, keepdims=True)
        kl = part * (np.log(part + 1e-30) - np.log(py + 1e-30))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def compute_is(opts, num_gen, num_splits):
    detector_kwargs = dict(no_output_bias=True)  # Class probabilities, matching the original TF evaluation.
    probs = metric_utils.compute_feature_stats_for_generator(
        opts=opts, detector_url=metric_utils.INCEPTION_URL, detector_kwargs=detector_kwargs,
        capture_all=True, max_items=num_gen).get_all()
    if opts.rank != 0:
        return float('nan'), float('nan')
    return inception_score(probs, num_splits)
