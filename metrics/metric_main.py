"""The metric registry: names as users know them, evaluation, and reporting to JSONL."""

import json
import os
import re
import time

import torch

import dnnlib
from . import equivariance
from . import frechet_inception_distance
from . import inception_score
from . import kernel_inception_distance
from . import metric_utils
from . import perceptual_path_length
from . import precision_recall

# ----------------------------------------------------------------------------

_metric_dict = dict()  # name -> fn(opts) -> dict of results.


def register_metric(fn):
    assert callable(fn)
    _metric_dict[fn.__name__] = fn
    return fn


def _sized_metric(name):
    """Metrics with a custom sample count, e.g. 'fid5k_full' or 'kid200_full' (handy for quick checks).

    The count is the number of generated images (the same number of reals for the non-'full'
    variants), written as an integer with an optional 'k' for thousands.
    """
    m = re.fullmatch(r'(fid|kid|is|eqt|eqr|pr)(\d+)(k?)(?:(\d+))?(_full|_int|_frac)?', name)
    if m is None:
        return None
    kind, count, kilo, nhood, suffix = m.groups()
    num = int(count) * (1000 if kilo else 1)
    if num <= 0 or (kind == 'pr') != (nhood is not None):
        return None
    if (kind == 'eqt') != (suffix in ('_int', '_frac')) or (suffix in ('_int', '_frac') and kind != 'eqt'):
        return None
    if kind in ('is', 'eqr') and suffix is not None:
        return None
    full = suffix == '_full'

    def fn(opts):
        if kind == 'fid':
            opts.dataset_kwargs.update(max_size=None, **(dict(xflip=False) if full else {}))
            return {name: frechet_inception_distance.compute_fid(opts, max_real=None if full else num, num_gen=num)}
        if kind == 'kid':
            opts.dataset_kwargs.update(max_size=None, **(dict(xflip=False) if full else {}))
            return {name: kernel_inception_distance.compute_kid(opts, max_real=1000000 if full else num, num_gen=num,
                                                                num_subsets=100, max_subset_size=1000)}
        if kind == 'pr':
            opts.dataset_kwargs.update(max_size=None, **(dict(xflip=False) if full else {}))
            precision, recall = precision_recall.compute_pr(opts, max_real=200000 if full else num, num_gen=num,
                                                            nhood_size=int(nhood), row_batch_size=10000, col_batch_size=10000)
            return {f'{name}_precision': precision, f'{name}_recall': recall}
        if kind == 'is':
            opts.dataset_kwargs.update(max_size=None, xflip=False)
            mean, std = inception_score.compute_is(opts, num_gen=num, num_splits=10)
            return {f'{name}_mean': mean, f'{name}_std': std}
        if kind == 'eqt':
            psnr, = equivariance.compute_equivariance_metrics(opts, num_samples=num, batch_size=4,
                                                             compute_eqt_int=(suffix == '_int'), compute_eqt_frac=(suffix == '_frac'))
            return {name: psnr}
        psnr, = equivariance.compute_equivariance_metrics(opts, num_samples=num, batch_size=4, compute_eqr=True)
        return {name: psnr}
    fn.__name__ = name
    return fn


def get_metric_fn(name):
    if name in _metric_dict:
        return _metric_dict[name]
    return _sized_metric(name)


def detectors_needed(metric):
    """URLs of the feature detectors a metric loads (so callers can fetch them before long work)."""
    base = re.sub(r'^(fid|kid|is|pr|ppl|eqt|eqr).*$', r'\1', metric)
    return {'fid': [metric_utils.INCEPTION_URL], 'kid': [metric_utils.INCEPTION_URL], 'is': [metric_utils.INCEPTION_URL],
            'pr': [metric_utils.VGG16_URL], 'ppl': [metric_utils.VGG16_URL]}.get(base, [])


def is_valid_metric(metric):
    return get_metric_fn(metric) is not None


def list_valid_metrics():
    return list(_metric_dict.keys())

# ----------------------------------------------------------------------------


def calc_metric(metric, **kwargs):
    """Evaluates one metric; kwargs go to MetricOptions. Returns EasyDict(results, metric, total_time, ...)."""
    fn = get_metric_fn(metric)
    if fn is None:
        raise metric_utils.MetricError(f'Unknown metric {metric!r}; valid metrics: {", ".join(list_valid_metrics())}')
    opts = metric_utils.MetricOptions(**kwargs)

    start_time = time.time()
    results = fn(opts)
    total_time = time.time() - start_time

    # Every process must agree on the results' shape; the values come from rank 0.
    for key, value in list(results.items()):
        if opts.num_gpus > 1:
            value = torch.as_tensor(value, dtype=torch.float64, device=opts.device)
            torch.distributed.broadcast(tensor=value, src=0)
            value = float(value.cpu())
        results[key] = value

    result = dnnlib.EasyDict(
        results=dnnlib.EasyDict(results),
        metric=metric,
        total_time=total_time,
        total_time_str=dnnlib.util.format_time(total_time),
        num_gpus=opts.num_gpus,
    )
    if opts.scale != 1:
        result.scale = opts.scale  # Rendered at this multiple of the training resolution (CREPS).
    return result


def report_metric(result_dict, run_dir=None, snapshot_pkl=None):
    """Prints the result as one JSON line and appends it to <run_dir>/metric-<name>.jsonl."""
    metric = result_dict['metric']
    assert is_valid_metric(metric)
    if run_dir is not None and snapshot_pkl is not None:
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)
    line = json.dumps(dict(result_dict, snapshot_pkl=snapshot_pkl, timestamp=time.time()))
    print(line)
    if run_dir is not None and os.path.isdir(run_dir):
        with open(os.path.join(run_dir, f'metric-{metric}.jsonl'), 'at') as f:
            f.write(line + '\n')

# ----------------------------------------------------------------------------
# The metrics of the StyleGAN3 release.


@register_metric
def fid50k_full(opts):
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    return dict(fid50k_full=frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=50000))


@register_metric
def kid50k_full(opts):
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    return dict(kid50k_full=kernel_inception_distance.compute_kid(opts, max_real=1000000, num_gen=50000,
                                                                 num_subsets=100, max_subset_size=1000))


@register_metric
def pr50k3_full(opts):
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    precision, recall = precision_recall.compute_pr(opts, max_real=200000, num_gen=50000, nhood_size=3,
                                                    row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_full_precision=precision, pr50k3_full_recall=recall)


@register_metric
def ppl2_wend(opts):
    ppl = perceptual_path_length.compute_ppl(opts, num_samples=50000, epsilon=1e-4, space='w', sampling='end',
                                             crop=False, batch_size=2)
    return dict(ppl2_wend=ppl)


@register_metric
def eqt50k_int(opts):
    opts.G_kwargs.update(force_fp32=True)
    psnr, = equivariance.compute_equivariance_metrics(opts, num_samples=50000, batch_size=4, compute_eqt_int=True)
    return dict(eqt50k_int=psnr)


@register_metric
def eqt50k_frac(opts):
    opts.G_kwargs.update(force_fp32=True)
    psnr, = equivariance.compute_equivariance_metrics(opts, num_samples=50000, batch_size=4, compute_eqt_frac=True)
    return dict(eqt50k_frac=psnr)


@register_metric
def eqr50k(opts):
    opts.G_kwargs.update(force_fp32=True)
    psnr, = equivariance.compute_equivariance_metrics(opts, num_samples=50000, batch_size=4, compute_eqr=True)
    return dict(eqr50k=psnr)

# Legacy metrics of StyleGAN2-ADA.


@register_metric
def fid50k(opts):
    opts.dataset_kwargs.update(max_size=None)
    return dict(fid50k=frechet_inception_distance.compute_fid(opts, max_real=50000, num_gen=50000))


@register_metric
def kid50k(opts):
    opts.dataset_kwargs.update(max_size=None)
    return dict(kid50k=kernel_inception_distance.compute_kid(opts, max_real=50000, num_gen=50000,
                                                            num_subsets=100, max_subset_size=1000))


@register_metric
def pr50k3(opts):
    opts.dataset_kwargs.update(max_size=None)
    precision, recall = precision_recall.compute_pr(opts, max_real=50000, num_gen=50000, nhood_size=3,
                                                    row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_precision=precision, pr50k3_recall=recall)


@register_metric
def is50k(opts):
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    mean, std = inception_score.compute_is(opts, num_gen=50000, num_splits=10)
    return dict(is50k_mean=mean, is50k_std=std)
