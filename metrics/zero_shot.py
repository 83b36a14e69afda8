"""The text-to-image metrics of StyleGAN-T: zero-shot FID against the COCO val 2014 images at 64 or 256 pixels,
and the CLIP score of images generated from training or COCO captions.

The COCO images and captions come from `coco_val256.zip`, made by dataset_tool.py from COCO's
captions_val2014.json. It is found through the environment variable COCOPATH (the zip's path), else beside
the training data (`<folder of the dataset>/coco_val256.zip`), else inside the dataset when that is a folder.

Prompts are drawn once per metric with the metric seed (`random_captions(count, seed)`) and item i gets
prompt i and the latent of index i, so the images do not depend on how items are split over processes.
"""

import copy
import os

import dnnlib
from training.image_files import DatasetError
from . import clip_score
from . import frechet_inception_distance
from . import metric_utils

COCO_ENV = 'COCOPATH'
COCO_ZIP = 'coco_val256.zip'
COCO_HOW = (f'make it with "python dataset_tool.py --source=.../annotations/captions_val2014.json --dest={COCO_ZIP} '
            f'--resolution=256x256 --transform=center-crop" and put it beside the training data or set {COCO_ENV} to it')

# ----------------------------------------------------------------------------
# The COCO zip.


def coco_candidates(dataset_kwargs):
    """Where the COCO zip is looked for when COCOPATH is not set: beside the training data, then inside it."""
    path = (dataset_kwargs or {}).get('path')
    if not path:
        return []
    path = os.path.normpath(os.path.expanduser(path))
    places = [os.path.join(os.path.dirname(path), COCO_ZIP)]
    if os.path.isdir(path):
        places.append(os.path.join(path, COCO_ZIP))
    return places


def find_coco_zip(dataset_kwargs, what='the COCO metrics'):
    """The path of the COCO zip; MetricError (one line, naming `what` needs it and how to make it) when there is none."""
    from_env = os.environ.get(COCO_ENV)
    if from_env:
        path = os.path.expanduser(from_env)
        if not os.path.isfile(path):
            raise metric_utils.MetricError(f'{what}: {COCO_ENV}={from_env}: no such file; {COCO_HOW}')
        return path
    places = coco_candidates(dataset_kwargs)
    for path in places:
        if os.path.isfile(path):
            return path
    where = f'at {" or ".join(places)}' if places else f'(no training data to look beside, and {COCO_ENV} is not set)'
    raise metric_utils.MetricError(f'{what}: no COCO val captions zip {where}; {COCO_HOW}')


def coco_dataset_kwargs(path, resolution=None):
    """Dataset options of the COCO zip with its captions; images resized to `resolution` (Lanczos) if given."""
    kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=path, use_labels=True,
                             max_size=None, xflip=False)
    if resolution is not None:
        kwargs.resize_resolution = resolution
    return kwargs

# ----------------------------------------------------------------------------
# Prompts.


def draw_captions(dataset_kwargs, count, seed, what):
    """`count` captions of random items of the dataset, drawn with `seed` (the same on every process)."""
    try:
        dataset = dnnlib.util.construct_class_by_name(**dataset_kwargs)
        if not dataset.has_captions:
            raise DatasetError(f"'{dataset_kwargs.get('path')}' has no captions (dataset.json)")
        return dataset.random_captions(count, seed)
    except DatasetError as err:
        raise metric_utils.MetricError(f'{what} draws its prompts from captions: {err}') from None


def _with_dataset(opts, dataset_kwargs):
    """A copy of the options that reads another dataset."""
    other = copy.copy(opts)
    other.dataset_kwargs = dnnlib.EasyDict(dataset_kwargs)
    return other

# ----------------------------------------------------------------------------
# The metrics.


def compute_fid_coco(opts, num_gen, resolution, name):
    """Zero-shot FID: `num_gen` images from random COCO val captions against every COCO val image, both at
    `resolution` (reals resized from the zip, generated images when G renders another size; Lanczos)."""
    coco = coco_dataset_kwargs(find_coco_zip(opts.dataset_kwargs, what=name), resolution)
    captions = draw_captions(coco, num_gen, opts.seed, what=name)
    return frechet_inception_distance.compute_fid(_with_dataset(opts, coco), max_real=None, num_gen=num_gen,
                                                  captions=captions, resolution=resolution)


def compute_cs(opts, num_gen, coco, name):
    """CLIP score of `num_gen` images from random captions of the training data, or of the COCO zip (`coco`)."""
    if coco:
        source = coco_dataset_kwargs(find_coco_zip(opts.dataset_kwargs, what=name))
    else:
        source = dnnlib.EasyDict(opts.dataset_kwargs, use_labels=True)  # The captions, whatever training used.
        if not source.get('path'):
            raise metric_utils.MetricError(f'{name} draws its prompts from the training captions: pass the captioned '
                                           f'dataset with --data (or use {name}_coco)')
    captions = draw_captions(source, num_gen, opts.seed, what=name)
    return clip_score.compute_clip_score(opts, num_gen=num_gen, captions=captions)
