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

_metric_dict = dict()  # name -> fn(opts) -> dict of results, for the names list_valid_metrics() gives.


def register_metric(fn):
    assert callable(fn)
    _metric_dict[fn.__name__] = fn
    return fn


# A metric's name says what it measures and on how many images: 'fid50k_full', 'kid200_full', 'pr5k3',
# 'is1k', 'eqt50k_frac', 'eqr200'. Kinds: fid, kid, pr (with the neighbourhood size after the count), is,
# eqt (_int or _frac) and eqr. '_full' compares with every dataset image (without x-flips); without it,
# with as many dataset images as are generated.
_NAME_PATTERN = re.compile(r'(?P<kind>fid|kid|is|eqt|eqr|pr)(?P<digits>\d+)(?P<kilo>k?)(?P<nhood>\d+)?'
                           r'(?P<suffix>_full|_int|_frac)?')
_SUFFIXES = {'fid': (None, '_full'), 'kid': (None, '_full'), 'pr': (None, '_full'), 'is': (None,),
             'eqt': ('_int', '_frac'), 'eqr': (None,)}


def _parse_metric_name(name):
    """EasyDict(kind, count, nhood, suffix) of a metric name of the pattern above, or None."""
    match = _NAME_PATTERN.fullmatch(name)
    if match is None:
        return None
    spec = dnnlib.EasyDict(kind=match['kind'], count=int(match['digits']) * (1000 if match['kilo'] else 1),
                           nhood=None if match['nhood'] is None else int(match['nhood']), suffix=match['suffix'])
    if spec.count <= 0 or (spec.kind == 'pr') != (spec.nhood is not None) or spec.suffix not in _SUFFIXES[spec.kind]:
        return None
    return spec


def _measure(opts, name, spec):
    """Results of the metric `name` (parsed into `spec`) as {result name: value}."""
    full = (spec.suffix == '_full')
    count = spec.count
    if spec.kind in ('fid', 'kid', 'pr', 'is'):
        # The whole dataset is in reach; the full metrics and IS see it without x-flips.
        opts.dataset_kwargs.update(max_size=None)
        if full or spec.kind == 'is':
            opts.dataset_kwargs.update(xflip=False)
    if spec.kind == 'fid':
        return {name: frechet_inception_distance.compute_fid(opts, max_real=None if full else count, num_gen=count)}
    if spec.kind == 'kid':
        kid = kernel_inception_distance.compute_kid(opts, max_real=1000000 if full else count, num_gen=count,
                                                    num_subsets=100, max_subset_size=1000)
        return {name: kid}
    if spec.kind == 'pr':
        precision, recall = precision_recall.compute_pr(opts, max_real=200000 if full else count, num_gen=count,
                                                        nhood_size=spec.nhood, row_batch_size=10000,
                                                        col_batch_size=10000)
        return {f'{name}_precision': precision, f'{name}_recall': recall}
    if spec.kind == 'is':
        mean, std = inception_score.compute_is(opts, num_gen=count, num_splits=10)
        return {f'{name}_mean': mean, f'{name}_std': std}
    opts.G_kwargs.update(force_fp32=True)  # Equivariance is measured on float32 renders.
    transform = {'_int': 'compute_eqt_int', '_frac': 'compute_eqt_frac', None: 'compute_eqr'}[spec.suffix]
    psnr, = equivariance.compute_equivariance_metrics(opts, num_samples=count, batch_size=4, **{transform: True})
    return {name: psnr}


def _metric_of(name):
    spec = _parse_metric_name(name)
    if spec is None:
        return None

    def metric(opts):
        return _measure(opts, name, spec)
    metric.__name__ = name
    return metric


def _ppl2_wend(opts):
    ppl = perceptual_path_length.compute_ppl(opts, num_samples=50000, epsilon=1e-4, space='w', sampling='end',
                                             crop=False, batch_size=2)
    return dict(ppl2_wend=ppl)


# The metrics of the StyleGAN3 release, then the earlier ones of StyleGAN2-ADA, in the order they are listed.
for _name in ('fid50k_full', 'kid50k_full', 'pr50k3_full', 'ppl2_wend', 'eqt50k_int', 'eqt50k_frac', 'eqr50k',
              'fid50k', 'kid50k', 'pr50k3', 'is50k'):
    _metric_dict[_name] = _ppl2_wend if _name == 'ppl2_wend' else _metric_of(_name)


def get_metric_fn(name):
    return _metric_dict.get(name) or _metric_of(name)


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
    started = time.time()
    results = {key: _from_rank0(value, opts) for key, value in fn(opts).items()}
    seconds = time.time() - started
    result = dnnlib.EasyDict(results=dnnlib.EasyDict(results), metric=metric, total_time=seconds,
                             total_time_str=dnnlib.util.format_time(seconds), num_gpus=opts.num_gpus)
    if opts.scale != 1:
        result.scale = opts.scale  # Rendered at this multiple of the training resolution (CREPS).
    return result


def _from_rank0(value, opts):
    """A result as rank 0 computed it, on every process (they all call this for the same keys)."""
    if opts.num_gpus <= 1:
        return value
    shared = torch.as_tensor(value, dtype=torch.float64, device=opts.device)
    torch.distributed.broadcast(tensor=shared, src=0)
    return float(shared.cpu())


def report_metric(result_dict, run_dir=None, snapshot_pkl=None):
    """Prints the result as one JSON line and appends it to <run_dir>/metric-<name>.jsonl."""
    assert is_valid_metric(result_dict['metric'])
    in_run = run_dir is not None
    if in_run and snapshot_pkl is not None:
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)  # Runs can move; the name inside stays valid.
    record = json.dumps(dict(result_dict, snapshot_pkl=snapshot_pkl, timestamp=time.time()))
    print(record)
    if in_run and os.path.isdir(run_dir):
        with open(os.path.join(run_dir, f'metric-{result_dict["metric"]}.jsonl'), 'at') as f:
            print(record, file=f)
