"""The metric registry: names as users know them, evaluation, and reporting to JSONL."""

import json
import os
import re
import time

import torch

import dnnlib
from . import clip_score
from . import equivariance
from . import frechet_inception_distance
from . import inception_score
from . import kernel_inception_distance
from . import metric_utils
from . import perceptual_path_length
from . import precision_recall
from . import zero_shot

# ----------------------------------------------------------------------------

_metric_dict = dict()  # name -> fn(opts) -> dict of results, for the names list_valid_metrics() gives.


def register_metric(fn):
    assert callable(fn)
    _metric_dict[fn.__name__] = fn
    return fn


# A metric's name says what it measures and on how many images: 'fid50k_full', 'kid200_full', 'pr5k3',
# 'is1k', 'eqt50k_frac', 'eqr200', 'fid30k_coco64', 'cs10k'. Kinds: fid, kid, pr (with the neighbourhood size
# after the count), is, eqt (_int or _frac), eqr and cs (CLIP score). '_full' compares with every dataset image
# (without x-flips); without it, with as many dataset images as are generated. The text-to-image metrics of
# StyleGAN-T: '_coco64' and '_coco256', zero-shot FID against the COCO val images at that size; cs with
# prompts from the training captions, or with '_coco' from the COCO val captions (metrics/zero_shot.py).
_NAME_PATTERN = re.compile(r'(?P<kind>fid|kid|is|eqt|eqr|pr|cs)(?P<digits>\d+)(?P<kilo>k?)(?P<nhood>\d+)?'
                           r'(?P<suffix>_full|_int|_frac|_coco64|_coco256|_coco)?')
_SUFFIXES = {'fid': (None, '_full', '_coco64', '_coco256'), 'kid': (None, '_full'), 'pr': (None, '_full'),
             'is': (None,), 'eqt': ('_int', '_frac'), 'eqr': (None,), 'cs': (None, '_coco')}
_COCO_SUFFIXES = ('_coco64', '_coco256', '_coco')


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


def _reads_training_images(spec):
    return spec.kind in ('fid', 'kid', 'pr', 'is') and spec.suffix not in _COCO_SUFFIXES


def _streamed(dataset_kwargs):
    """Whether the dataset class streams (training.dataset.ShardDataset), without opening the dataset."""
    class_name = (dataset_kwargs or {}).get('class_name')
    try:
        return bool(class_name) and bool(getattr(dnnlib.util.get_obj_by_name(class_name), 'streamed', False))
    except (ImportError, AttributeError):
        return False  # Constructing it will say what is wrong.


def _measure(opts, name, spec):
    """Results of the metric `name` (parsed into `spec`) as {result name: value}."""
    full = (spec.suffix == '_full')
    count = spec.count
    if _reads_training_images(spec) and _streamed(opts.dataset_kwargs):
        raise metric_utils.streamed_refusal(f'{name} reads the training images')
    if spec.kind == 'fid' and spec.suffix in _COCO_SUFFIXES:
        resolution = int(spec.suffix[len('_coco'):])
        return {name: zero_shot.compute_fid_coco(opts, num_gen=count, resolution=resolution, name=name)}
    if spec.kind == 'cs':
        return {name: zero_shot.compute_cs(opts, num_gen=count, coco=(spec.suffix == '_coco'), name=name)}
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


# The metrics of the StyleGAN3 release, then the earlier ones of StyleGAN2-ADA, then StyleGAN-T's, in the order
# they are listed.
for _name in ('fid50k_full', 'kid50k_full', 'pr50k3_full', 'ppl2_wend', 'eqt50k_int', 'eqt50k_frac', 'eqr50k',
              'fid50k', 'kid50k', 'pr50k3', 'is50k', 'fid30k_coco64', 'fid30k_coco256', 'cs10k', 'cs10k_coco'):
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


def reads_dataset(metric):
    """Whether a metric reads the training data: its images (FID, KID, precision/recall) or its captions
    (cs without '_coco')."""
    spec = _parse_metric_name(metric)
    if spec is None:
        return False
    return (spec.kind in ('fid', 'kid', 'pr') and spec.suffix not in _COCO_SUFFIXES) or \
        (spec.kind == 'cs' and spec.suffix is None)


def needs_coco(metric):
    """Whether a metric reads the COCO val zip (metrics/zero_shot.py)."""
    spec = _parse_metric_name(metric)
    return spec is not None and spec.suffix in _COCO_SUFFIXES


def needs_clip_scorer(metric):
    """Whether a metric loads the CLIP scorer (metrics/clip_score.py)."""
    spec = _parse_metric_name(metric)
    return spec is not None and spec.kind == 'cs'


def check_inputs(metrics, dataset_kwargs, clip_scorer=None, load_scorer=True):
    """Checks before long work what the metrics need besides their detectors: a training set they can read (not a
    stream, for those that read its images), the COCO zip, the CLIP scorer (fetched; with `load_scorer` also built
    once on the CPU). MetricError (one line) for the first problem; else EasyDict(coco_zip, clip_scorer), the
    COCO zip's path and the scorer value used (None where no metric needs them)."""
    found = dnnlib.EasyDict(coco_zip=None, clip_scorer=None)
    for metric in metrics:
        spec = _parse_metric_name(metric)
        if spec is not None and _reads_training_images(spec) and _streamed(dataset_kwargs):
            raise metric_utils.streamed_refusal(f'{metric} reads the training images')
    coco_metrics = [metric for metric in metrics if needs_coco(metric)]
    if coco_metrics:
        found.coco_zip = zero_shot.find_coco_zip(dataset_kwargs, what=', '.join(coco_metrics))
    if any(needs_clip_scorer(metric) for metric in metrics):
        found.clip_scorer = clip_score.check_scorer(clip_scorer, load=load_scorer)
    return found


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
