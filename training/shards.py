"""Captioned images in webdataset tar shards, the layout img2dataset writes: a folder (searched recursively)
of `NNNNN.tar` files, each holding samples `KEY.jpg` (or .png, .webp) with `KEY.txt`, and beside each shard a
`NNNNN_stats.json` once img2dataset has finished it. Only finished shards are read. Imports no torch, so
that dataset_tool.py starts quickly; training/dataset.py streams shards for training with these functions."""

import io
import json
import os

import numpy as np
import PIL.Image

from training import image_files
from training.image_files import DatasetError

SAMPLE_IMAGE_EXTENSIONS = ('jpg', 'jpeg', 'png', 'webp')  # Looked for in this order within a sample.
CAPTION_EXTENSION = 'txt'

# ----------------------------------------------------------------------------


class CorruptSampleError(DatasetError):
    """A sample that cannot be used: no image, no caption, or bytes that do not decode. Streams skip these."""


def _stats_path(shard):
    return os.path.splitext(shard)[0] + '_stats.json'


def holds_shards(path):
    """Whether `path` is a folder of tar shards: a .tar file in it or below it, and no loose image files (a folder
    of images with a stray archive among them is a folder of images)."""
    if not os.path.isdir(path):
        return False
    names = [name for _root, _dirs, files in os.walk(path) for name in files]
    return any(name.endswith('.tar') for name in names) and not any(image_files.is_image_fname(name) for name in names)


def find_shards(path):
    """(finished, unfinished): sorted paths of the .tar shards under the folder `path`. A shard is finished
    when its `_stats.json` lies beside it; one without may still be growing and is left alone."""
    finished, unfinished = [], []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            if name.endswith('.tar'):
                shard = os.path.join(root, name)
                (finished if os.path.isfile(_stats_path(shard)) else unfinished).append(shard)
    return finished, unfinished


def shard_successes(shard):
    """How many samples img2dataset wrote into a finished shard (its stats' `successes`), or None if unknown."""
    try:
        with open(_stats_path(shard)) as f:
            count = json.load(f).get('successes')
        return int(count) if count is not None else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def open_shard_folder(path):
    """The finished shards of `path`, refusing a folder without any in one line."""
    if not os.path.isdir(path):
        raise DatasetError(f"'{path}' is not a folder of .tar shards")
    finished, unfinished = find_shards(path)
    if not finished:
        detail = (f"its {len(unfinished)} .tar file(s) have no _stats.json beside them, so img2dataset has not "
                  f"finished them" if unfinished else "it holds no .tar files")
        raise DatasetError(f"'{path}' has no finished shards: {detail}")
    return finished

# ----------------------------------------------------------------------------


def _webdataset():
    try:
        import webdataset
    except ImportError:
        raise DatasetError('reading tar shards needs the webdataset package: pip install webdataset') from None
    return webdataset


def read_shard(shard, on_error):
    """The raw samples of one shard: dicts with '__key__' and bytes by lower-case extension. A damaged tar
    calls `on_error(exception)` and ends the shard there (the samples before the damage are kept)."""
    def handler(exc):
        on_error(exc)
        return False  # A tar stream cannot be resynchronised after damage: stop this shard.
    yield from _webdataset().tarfile_samples([dict(url=shard)], handler=handler)


def sample_caption(sample):
    """The caption of a raw sample, stripped; CorruptSampleError if it has none."""
    data = sample.get(CAPTION_EXTENSION)
    if data is None:
        raise CorruptSampleError('no .txt caption')
    try:
        return data.decode('utf-8').strip()
    except UnicodeDecodeError:
        raise CorruptSampleError('the caption is not UTF-8 text') from None


def sample_image_bytes(sample):
    for ext in SAMPLE_IMAGE_EXTENSIONS:
        if sample.get(ext) is not None:
            return sample[ext]
    raise CorruptSampleError('no .jpg, .png or .webp image')


def center_crop_resize(image, resolution):
    """A PIL image as uint8 RGB [3, resolution, resolution]: the central square, resized with Lanczos."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.convert('RGB').crop((left, top, left + side, top + side))
    if side != resolution:
        square = square.resize((resolution, resolution), PIL.Image.Resampling.LANCZOS)
    return np.array(square, dtype=np.uint8).transpose(2, 0, 1).copy()


def decode_sample(sample, resolution):
    """(image uint8 [3, R, R], caption str) of a raw sample; CorruptSampleError when it is unusable."""
    caption = sample_caption(sample)
    try:
        with PIL.Image.open(io.BytesIO(sample_image_bytes(sample))) as image:
            image.load()
            return center_crop_resize(image, resolution), caption
    except CorruptSampleError:
        raise
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as err:
        raise CorruptSampleError(f'the image does not decode ({type(err).__name__})') from None

# ----------------------------------------------------------------------------
