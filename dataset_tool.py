"""Converts an image collection into a training dataset for training/dataset.py.

The dataset is a zip archive (DEST ending in .zip) or a folder holding uncompressed PNGs in numbered
subfolders ('00000/img00000000.png', 1000 per subfolder) and dataset.json with the labels:
{"labels": [["00000/img00000000.png", 6], ...]} or {"labels": null}. A label may be a caption string, for
text-to-image training: {"labels": [["00000/img00000000.png", "a red disc on grey"], ...]}.

Captions come from a folder (or zip) whose images each have a same-named .txt file beside them (cat.png and
cat.txt; UTF-8, line breaks become spaces), or from COCO: --source names the captions_*.json annotations and
the images are read from --coco-images, by default the split's folder beside the annotations folder
(annotations/captions_train2017.json -> train2017/). COCO gives one caption per image, drawn among the image's
captions with a fixed seed (numpy RandomState(0)), so that reruns write identical datasets; images without a
caption are left out.

A folder of img2dataset's webdataset shards (NNNNN.tar of KEY.jpg|png|webp with KEY.txt) gives its captioned
samples as RGB images, from the finished shards only (NNNNN_stats.json beside them), in sorted order.

A video with its poses (--pose=FILE.pose, pose-format; MediaPipe Holistic or OpenPose layout), or a folder of
videos with same-named .pose files (a.mp4 and a.pose; --pose=DIR when the poses lie elsewhere), gives a square
crop of each frame around the signer, resized with Lanczos to --resolution (any square size; 256x256 by
default; training wants a power of two). Per frame: frames without a pose (confidences summing to 0) or
without both shoulders are skipped; the square is centred on the shoulders' midpoint with a side of 3 shoulder
widths; a square sticking out above the frame is moved down to the top edge; while it leaves the frame
elsewhere the factor 3 shrinks by 0.95, and below 0.65 the frame is skipped. Beside the images, the dataset
(zip or folder) holds:

\b
poses.pose  the kept frames' poses (pose-format), pose frame k <-> image k in file-name order, in pixels of
            the crops (header dimensions: the crop size; fps: the first clip's)
poses.json  {"layout": "holistic" | "openpose", "fps": fps of poses.pose, "frames": [source frame index of
            image k within its clip, ...], "clips": [{"name": video name without extension, "start": first
            image index, "stop": image index after the last, "fps": the clip's fps}, ...]}

Videos are read in name order; a pose file must have no more frames than its video (extra video frames are
ignored) and be for the video's frame size. Without --pose, a video (or a folder of videos) whose NAME.pose is
not beside it has its poses estimated with MediaPipe Holistic, which is optional (python3 -m pip install -r
requirements.txt -r requirements-pose.txt; Python 3.10 to 3.12), and saved there as NAME.pose for the next run.

Examples:

\b
python dataset_tool.py --source=~/downloads/cifar-10-python.tar.gz --dest=~/datasets/cifar10-32x32.zip
python dataset_tool.py --source=~/downloads/mnist/train-images-idx3-ubyte.gz --dest=~/datasets/mnist-32x32.zip
python dataset_tool.py --source=~/downloads/photos --dest=~/datasets/photos-256x256.zip \\
    --transform=center-crop --resolution=256x256
python dataset_tool.py --source=~/downloads/lsun/car_lmdb --dest=~/datasets/lsuncar-512x384.zip \\
    --transform=center-crop-wide --resolution=512x384
python dataset_tool.py --source=~/downloads/captioned-photos --dest=~/datasets/captioned-256x256.zip \\
    --transform=center-crop --resolution=256x256
python dataset_tool.py --source=~/downloads/coco/annotations/captions_train2017.json \\
    --dest=~/datasets/coco2017-256x256.zip --transform=center-crop --resolution=256x256
python dataset_tool.py --source=~/downloads/cc3m-shards --dest=~/datasets/cc3m-256x256.zip \\
    --transform=center-crop --resolution=256x256
python dataset_tool.py --source=~/downloads/coco/annotations/captions_val2014.json \\
    --dest=~/datasets/coco_val256.zip --transform=center-crop --resolution=256x256
python dataset_tool.py --source=~/signs/clip.mp4 --pose=~/signs/clip.pose --dest=~/datasets/signer-256x256.zip
python dataset_tool.py --source=~/signs/clip.mp4 --dest=~/datasets/signer-256x256.zip
python dataset_tool.py --source=~/signs/videos --pose=~/signs/poses --dest=~/datasets/signer-512x512.zip \\
    --resolution=512x512
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import gzip
import importlib.util
import io
import itertools
import json
import os
import pickle
import shutil
import sys
import tarfile
import zipfile
from typing import Any, Callable, Iterator

import click
import numpy as np
import PIL.Image
import tqdm

import dnnlib
import dnnlib.cli
# Decoding and shard reading shared with training/dataset.py, from modules that do not import torch (quick start-up).
from training import pose as pose_lib
from training import pose_estimation, shards
from training.image_files import (CorruptImageError, DatasetError, UnsupportedImageError, decode_image,
                                  is_image_fname)

# ----------------------------------------------------------------------------
# Sources: each opener is a context manager that yields a Source.


@dataclasses.dataclass
class SourceImage:
    name:  str                          # Where the image comes from, for messages.
    read:  Callable[[], np.ndarray]     # Returns uint8 [H, W] or [H, W, C]; raises CorruptImageError.
    label: Any = None                   # Class index, list of numbers, caption str, or None.


@dataclasses.dataclass
class Source:
    num_images: int | None              # Images in the source (before --max-images); None: not known ahead.
    images:     Iterator[SourceImage]   # In a fixed order.
    has_labels: bool                    # Whether every image has a label.
    num_uncaptioned: int = 0            # Images left out of a caption source for having no caption.


def _check_source_labels(labels, fnames, json_name):
    """Validates the labels of a source dataset.json; returns {fname: label} or None."""
    if labels is None:
        return None
    if not isinstance(labels, list) or not all(isinstance(item, list) and len(item) == 2 and
            isinstance(item[0], str) for item in labels):
        raise click.ClickException(f"'{json_name}' must hold {{\"labels\": [[fname, label], ...]}} or "
            f"{{\"labels\": null}}")
    labels = {fname.replace('\\', '/'): label for fname, label in labels}

    def kind(label):
        if isinstance(label, int) and not isinstance(label, bool) and label >= 0:
            return 'class index'
        if isinstance(label, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in label):
            return f'vector of length {len(label)}'
        if isinstance(label, str):
            return 'caption'
        return None

    first_kind = None
    for fname in fnames:
        if fname not in labels:
            raise click.ClickException(f"'{json_name}' has no label for image '{fname}'")
        label_kind = kind(labels[fname])
        if label_kind is None:
            raise click.ClickException(f"'{json_name}' gives image '{fname}' the label {json.dumps(labels[fname])}; "
                f"a label must be a non-negative class index, a list of numbers or a caption string")
        first_kind = first_kind or (fname, label_kind)
        if label_kind != first_kind[1]:
            raise click.ClickException(f"'{json_name}' gives image '{fname}' a {label_kind} label but image "
                f"'{first_kind[0]}' a {first_kind[1]} label")
    return labels


def _read_source_labels(read_json, json_name, fnames):
    try:
        labels = json.loads(read_json())['labels']
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise click.ClickException(f"cannot read '{json_name}': {type(err).__name__}: {err}") from None
    return _check_source_labels(labels, fnames, json_name)


def _image_source(fnames, read_bytes, display_name, labels):
    def read(fname):
        try:
            data = read_bytes(fname)
        except (OSError, zipfile.BadZipFile) as err:
            raise CorruptImageError(f"cannot read image '{display_name(fname)}': {err}") from None
        return decode_image(data, display_name(fname))

    images = (SourceImage(name=display_name(fname), read=lambda fname=fname: read(fname),
        label=None if labels is None else labels[fname]) for fname in fnames)
    return Source(num_images=len(fnames), images=images, has_labels=labels is not None)


def normalize_caption(text):
    """A caption as stored: surrounding whitespace stripped, line breaks inside it turned into single spaces."""
    lines = (line.strip() for line in text.splitlines())
    return ' '.join(line for line in lines if line)


def _caption_fname(image_fname):
    return os.path.splitext(image_fname)[0] + '.txt'


def _read_caption_file(read_bytes, fname, display):
    try:
        text = read_bytes(fname).decode('utf-8-sig') # -sig: a byte-order mark (Windows editors) is not text.
    except (OSError, zipfile.BadZipFile) as err:
        raise click.ClickException(f"cannot read caption file '{display}': {err}") from None
    except UnicodeDecodeError as err:
        raise click.ClickException(f"caption file '{display}' is not UTF-8 text (byte {err.start}: {err.reason}); "
            f"save it as UTF-8") from None
    caption = normalize_caption(text)
    if not caption:
        raise click.ClickException(f"caption file '{display}' is empty; write the image's caption in it or remove "
            f"the image and its caption file")
    return caption


def _read_caption_files(fnames, all_fnames, read_bytes, display_name):
    """{image fname: caption} from the .txt files beside the images, or None when no image has one. Once one
    image has a caption, every image needs one: a caption dataset has no unlabelled images."""
    caption_fnames = {fname: _caption_fname(fname) for fname in fnames}
    if not any(caption_fname in all_fnames for caption_fname in caption_fnames.values()):
        return None
    for fname, caption_fname in caption_fnames.items():
        if caption_fname not in all_fnames:
            raise click.ClickException(f"image '{display_name(fname)}' has no caption file "
                f"'{display_name(caption_fname)}' although other images have one; add it or remove the image")
    return {fname: _read_caption_file(read_bytes, caption_fname, display_name(caption_fname))
            for fname, caption_fname in caption_fnames.items()}


def _read_labels_or_captions(all_fnames, fnames, read_bytes, display_name):
    """dataset.json's labels when there is one, else the captions of .txt files, else None."""
    if 'dataset.json' in all_fnames:
        return _read_source_labels(lambda: read_bytes('dataset.json'), display_name('dataset.json'), fnames)
    return _read_caption_files(fnames, all_fnames, read_bytes, display_name)


@contextlib.contextmanager
def open_image_folder(path):
    all_fnames = set()
    for root, _dirs, files in os.walk(path):
        for fname in files:
            all_fnames.add(os.path.relpath(os.path.join(root, fname), start=path).replace(os.sep, '/'))
    fnames = sorted(fname for fname in all_fnames if is_image_fname(fname))

    def read_bytes(fname):
        with open(os.path.join(path, fname), 'rb') as f:
            return f.read()

    def display_name(fname):
        return os.path.join(path, fname)

    labels = _read_labels_or_captions(all_fnames, fnames, read_bytes, display_name)
    yield _image_source(fnames, read_bytes, display_name, labels)


@contextlib.contextmanager
def open_image_zip(path):
    with zipfile.ZipFile(path) as archive:
        all_fnames = set(name for name in archive.namelist() if not name.endswith('/'))
        fnames = sorted(fname for fname in all_fnames if is_image_fname(fname))

        def display_name(fname):
            return os.path.join(path, fname)

        labels = _read_labels_or_captions(all_fnames, fnames, archive.read, display_name)
        yield _image_source(fnames, archive.read, display_name, labels)


def _read_idx_gz(path, expected_ndim):
    """Reads an MNIST IDX file of unsigned bytes: 0, 0, type 0x08, ndim, then ndim big-endian uint32 sizes."""
    try:
        with gzip.open(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise click.ClickException(f"cannot read '{path}': {err}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] != expected_ndim:
        raise click.ClickException(f"'{path}' is not an IDX file of {expected_ndim}-D unsigned bytes")
    header_size = 4 + 4 * expected_ndim
    shape = np.frombuffer(data[4:header_size], dtype='>u4').astype(np.int64)
    if len(shape) != expected_ndim or len(data) != header_size + int(np.prod(shape)):
        raise click.ClickException(f"'{path}' is truncated or its header does not match its size")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


@contextlib.contextmanager
def open_mnist(images_gz):
    """MNIST from its IDX image file (train- or t10k-images-idx3-ubyte.gz), labels from the file beside it."""
    labels_gz = os.path.join(os.path.dirname(images_gz),
                             os.path.basename(images_gz).replace('-images-idx3-ubyte', '-labels-idx1-ubyte'))
    images = _read_idx_gz(images_gz, expected_ndim=3)
    labels = _read_idx_gz(labels_gz, expected_ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise click.ClickException(f"MNIST '{images_gz}' has {images.shape[0]} images but '{labels_gz}' has "
                                   f"{labels.shape[0]} labels")
    images = np.pad(images, [(0, 0), (2, 2), (2, 2)]) # 28x28 -> 32x32, a power of two.
    yield Source(num_images=images.shape[0], has_labels=True, images=(
        SourceImage(name=f'{images_gz}[{idx}]', read=lambda idx=idx: images[idx], label=int(labels[idx]))
        for idx in range(images.shape[0])))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays: the CIFAR-10 batches need nothing else."""

    _allowed = {
        ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
        ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
        ('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode'),
    }

    def find_class(self, module, name):
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f'refusing to load {module}.{name}')
        return super().find_class(module, name)


@contextlib.contextmanager
def open_cifar10(path):
    images, labels = [], []
    try:
        with tarfile.open(path, 'r:gz') as archive:
            members = {os.path.basename(member.name): member for member in archive.getmembers() if member.isfile()}
            for batch in range(1, 6):
                member_name = f'data_batch_{batch}'
                if member_name not in members:
                    raise click.ClickException(f"'{path}' has no {member_name}; is it cifar-10-python.tar.gz?")
                display_name = f'{path}/{members[member_name].name}'
                try:
                    data = _ArrayUnpickler(archive.extractfile(members[member_name]), encoding='latin1').load()
                    batch_images = np.asarray(data['data'], dtype=np.uint8).reshape(-1, 3, 32, 32)
                    batch_labels = np.asarray(data['labels'], dtype=np.int64)
                except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as err:
                    raise click.ClickException(f"'{display_name}' is not a CIFAR-10 batch: {err}") from None
                if batch_images.shape[0] != batch_labels.shape[0]:
                    raise click.ClickException(f"'{display_name}' has {batch_images.shape[0]} images but "
                        f"{batch_labels.shape[0]} labels")
                images.append(batch_images.transpose(0, 2, 3, 1)) # NCHW -> NHWC
                labels.append(batch_labels)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise click.ClickException(f"cannot read '{path}': {err}") from None
    images = np.concatenate(images)
    labels = np.concatenate(labels)
    yield Source(num_images=images.shape[0], has_labels=True, images=(
        SourceImage(name=f'{path}[{idx}]', read=lambda idx=idx: images[idx], label=int(labels[idx]))
        for idx in range(images.shape[0])))


@contextlib.contextmanager
def open_lmdb(path):
    try:
        import lmdb # pylint: disable=import-outside-toplevel
    except ImportError:
        raise click.ClickException(f"'{path}' is an LMDB database; reading it needs the lmdb package: "
            f"pip install lmdb") from None
    try:
        env = lmdb.open(path, readonly=True, lock=False, readahead=False, max_readers=1)
    except lmdb.Error as err:
        raise click.ClickException(f"cannot open LMDB '{path}': {err}") from None
    with env, env.begin(write=False) as txn:
        def images():
            for key, value in txn.cursor():
                name = f"{path}[{key.decode('utf-8', errors='replace')}]"
                yield SourceImage(name=name, read=lambda value=value, name=name: decode_image(value, name))
        yield Source(num_images=txn.stat()['entries'], images=images(), has_labels=False)


COCO_CAPTION_SEED = 0 # Seeds the RandomState that picks each COCO image's caption: reruns give the same dataset.


def is_coco_captions(path):
    name = os.path.basename(path)
    return name.startswith('captions_') and name.endswith('.json')


def default_coco_images(json_path):
    """COCO's own layout: annotations/captions_val2014.json -> val2014/ beside the annotations folder."""
    split = os.path.basename(json_path)[len('captions_'):-len('.json')]
    return os.path.normpath(os.path.join(os.path.dirname(json_path), os.pardir, split))


def _coco_file_name(image):
    file_name = image['file_name']
    if not isinstance(file_name, str):
        raise TypeError(f'file_name {json.dumps(file_name)} is not a string')
    return file_name


def _read_coco_json(json_path):
    """(images sorted by file name, {image id: [captions in file order]}) of a COCO captions file."""
    try:
        with open(json_path, 'rb') as f:
            data = json.load(f)
        images = sorted(({'id': image['id'], 'file_name': _coco_file_name(image)} for image in data['images']),
            key=lambda image: image['file_name'])
        captions = collections.defaultdict(list)
        for annotation in data['annotations']:
            caption = normalize_caption(annotation['caption'])
            if caption: # A blank caption says nothing: as if absent.
                captions[annotation['image_id']].append(caption)
    except OSError as err:
        raise click.ClickException(f"cannot read '{json_path}': {err}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise click.ClickException(f"'{json_path}' is not a COCO captions file: expected {{\"images\": [{{\"id\", "
            f"\"file_name\"}}, ...], \"annotations\": [{{\"image_id\", \"caption\"}}, ...]}} "
            f"({type(err).__name__}: {err})") from None
    return images, captions


def _choose_coco_captions(images, captions):
    """[(file name, caption)] for the images that have a caption: one of theirs, drawn with a fixed seed."""
    rng = np.random.RandomState(COCO_CAPTION_SEED)
    return [(image['file_name'], choices[rng.randint(len(choices))]) for image in images
            if (choices := captions.get(image['id']))]


def _read_rgb(data, name):
    """COCO mixes a few grayscale photos among colour ones; a dataset needs one channel count, so all become RGB."""
    image = decode_image(data, name)
    if image.ndim == 2:
        image = np.repeat(image[:, :, np.newaxis], 3, axis=2)
    return image


@contextlib.contextmanager
def open_coco_captions(json_path, image_dir=None):
    """COCO images with one caption each (see the module docstring); images are read from image_dir."""
    image_dir = default_coco_images(json_path) if image_dir is None else image_dir
    if not os.path.isdir(image_dir):
        raise click.ClickException(f"COCO image folder '{image_dir}' does not exist; unpack the images of "
            f"'{os.path.basename(json_path)}' there or give their folder with --coco-images=DIR")
    images, captions = _read_coco_json(json_path)
    chosen = _choose_coco_captions(images, captions)
    for fname, _caption in chosen:
        if not os.path.isfile(os.path.join(image_dir, fname)):
            raise click.ClickException(f"image '{os.path.join(image_dir, fname)}' listed in '{json_path}' does not "
                f"exist; check that --coco-images names the folder of this split's images")

    def read(fname):
        name = os.path.join(image_dir, fname)
        try:
            with open(name, 'rb') as f:
                data = f.read()
        except OSError as err:
            raise CorruptImageError(f"cannot read image '{name}': {err}") from None
        return _read_rgb(data, name)

    yield Source(num_images=len(chosen), has_labels=True, num_uncaptioned=len(images) - len(chosen), images=(
        SourceImage(name=os.path.join(image_dir, fname), read=lambda fname=fname: read(fname), label=caption)
        for fname, caption in chosen))


def _raise(error):
    """A SourceImage.read for a sample known to be unusable before decoding: reports it in its turn."""
    def read():
        raise error
    return read


def _as_rgb(image):
    """[H, W, 3] of a decoded web image: grayscale repeated, alpha dropped (as PIL's convert('RGB'), which the
    training stream of shards uses), so that one dataset gets one channel count."""
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.shape[2] < 3:
        return np.repeat(image[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def _read_shard_image(data, name):
    try:
        return _as_rgb(decode_image(data, name))
    except UnsupportedImageError as err:  # A 16-bit web image is one unusable sample, not a reason to stop.
        raise CorruptImageError(str(err)) from None


def _shard_sample_image(shard, sample):
    """The SourceImage of one raw shard sample, named by shard path and key."""
    name = os.path.join(shard, sample['__key__'])
    try:
        caption = normalize_caption(shards.sample_caption(sample))
        data = shards.sample_image_bytes(sample)
    except shards.CorruptSampleError as err:
        return SourceImage(name=name, read=_raise(CorruptImageError(f"sample '{name}': {err}")))
    if not caption:
        return SourceImage(name=name, read=_raise(CorruptImageError(f"sample '{name}': its .txt caption is empty")))
    return SourceImage(name=name, read=lambda: _read_shard_image(data, name), label=caption)


def _error_reason(err):
    """A one-line reason from a tar reading error. webdataset appends ' @ <stream>' to the message and the URL
    to the arguments; the message names the shard already."""
    if err.args and isinstance(err.args[0], str) and err.args[0]:
        return err.args[0].split(' @ ')[0].strip().splitlines()[0]
    return type(err).__name__


def _shard_images(shard):
    """The SourceImages of one shard, then, if the tar is damaged, one more whose read reports that (it counts
    as a source image for --max-images, like the corrupt ones)."""
    errors = []
    count = 0
    try:
        for sample in shards.read_shard(shard, on_error=errors.append):
            count += 1
            yield _shard_sample_image(shard, sample)
    except (OSError, tarfile.TarError) as err:  # Escaping here, it would pass for a failure to write --dest.
        errors.append(err)
    expected = shards.shard_successes(shard)
    if errors:
        problem = f"is damaged after {count} sample(s) ({_error_reason(errors[0])})"
    elif expected is not None and count < expected:
        # tarfile takes a header of garbage after the first one for the end of the archive: only the count tells.
        problem = f"ends after {count} of the {expected} samples its _stats.json counts; the tar is truncated or damaged"
    else:
        return
    yield SourceImage(name=shard, read=_raise(CorruptImageError(f"shard '{shard}' {problem}")))


@contextlib.contextmanager
def open_shards(path):
    """The captioned samples of the finished webdataset shards under `path` (see the module docstring)."""
    if importlib.util.find_spec('webdataset') is None:
        raise click.ClickException(f"'{path}' holds .tar shards; reading them needs the webdataset package: "
            f"pip install webdataset")
    try:
        finished = shards.open_shard_folder(path)
    except DatasetError as err:
        raise click.ClickException(str(err)) from None
    num_unfinished = len(shards.find_shards(path)[1])
    if num_unfinished:
        click.echo(f"Leaving out {num_unfinished} unfinished shard(s) of '{path}': no _stats.json beside them, "
            f"img2dataset may still be writing them", err=True)
    # img2dataset's counts size the progress bar; reading goes on to the end of every shard all the same.
    counts = [shards.shard_successes(shard) for shard in finished]
    num_images = None if None in counts else sum(counts)
    images = itertools.chain.from_iterable(_shard_images(shard) for shard in finished)
    yield Source(num_images=num_images, images=images, has_labels=True)


def open_source(path, coco_images=None):
    """Picks the reader from what `path` is."""
    if coco_images is not None and not is_coco_captions(path):
        raise click.ClickException(f"--coco-images applies only to a COCO captions_*.json --source, not "
            f"'{path}'")
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, 'data.mdb')):
            return open_lmdb(path)
        if os.path.isfile(os.path.join(path, 'train-images-idx3-ubyte.gz')):
            return open_mnist(os.path.join(path, 'train-images-idx3-ubyte.gz'))
        if shards.holds_shards(path):
            return open_shards(path)
        return open_image_folder(path)
    if os.path.isfile(path):
        if os.path.basename(path).endswith('-images-idx3-ubyte.gz'):
            return open_mnist(path)
        if is_coco_captions(path):
            return open_coco_captions(path, coco_images)
        if zipfile.is_zipfile(path):
            return open_image_zip(path)
        if tarfile.is_tarfile(path):
            return open_cifar10(path)
        raise click.ClickException(f"--source '{path}' is not a folder, a zip archive, a CIFAR-10 .tar.gz, an "
                                   f"MNIST *-images-idx3-ubyte.gz or a COCO captions_*.json")
    raise click.ClickException(f"--source '{path}' does not exist")

# ----------------------------------------------------------------------------
# Transforms: HWC or HW uint8 in, HWC or HW uint8 out; None = image too small to use.


def _resize(image, width, height):
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.asarray(PIL.Image.fromarray(image).resize((width, height), PIL.Image.Resampling.LANCZOS))


def _crop_center(image, crop_width, crop_height):
    top = (image.shape[0] - crop_height) // 2
    left = (image.shape[1] - crop_width) // 2
    return image[top : top + crop_height, left : left + crop_width]


def make_transform(transform, resolution):
    """Returns the function that maps every source image to its output image."""
    if transform is None:
        if resolution is None:
            return lambda image: image
        return lambda image: _resize(image, *resolution)

    width, height = resolution
    if transform == 'center-crop':
        def center_crop(image):
            size = min(image.shape[0], image.shape[1])
            return _resize(_crop_center(image, size, size), width, height)
        return center_crop

    def letterbox(image):
        canvas = np.zeros([width, width] + list(image.shape[2:]), dtype=np.uint8)
        top = (width - height) // 2
        canvas[top : top + height] = image
        return canvas

    if transform == 'center-crop-wide':
        def center_crop_wide(image):
            # As the official tool does it: keep the middle rows, as many as the image would have scaled to W
            # wide, resize that band to WxH (stretching images of another aspect) and letterbox it into WxW.
            image_height, image_width = image.shape[:2]
            kept_rows = int(np.round(width * image_height / image_width))
            if image_width < width or kept_rows < height:
                return None
            top = (image_height - kept_rows) // 2
            return letterbox(_resize(image[top : top + kept_rows], width, height))
        return center_crop_wide

    assert transform == 'center-crop-wide-keep-aspect'
    def center_crop_wide_keep_aspect(image):
        # Crop to the aspect of WxH, scale down to WxH and letterbox into WxW: nothing is stretched.
        # Images smaller than WxH are left out rather than upscaled.
        image_height, image_width = image.shape[:2]
        if image_width * height > image_height * width:
            crop_width, crop_height = int(round(image_height * width / height)), image_height
        else:
            crop_width, crop_height = image_width, int(round(image_width * height / width))
        if crop_width < width or crop_height < height:
            return None
        return letterbox(_resize(_crop_center(image, crop_width, crop_height), width, height))
    return center_crop_wide_keep_aspect

# ----------------------------------------------------------------------------
# Destinations: written under a temporary name next to DEST and renamed into place once complete.


def _check_destination(dest):
    if os.path.isdir(dest):
        if os.listdir(dest):
            raise click.ClickException(f"--dest '{dest}' already exists and is not empty")
        if dest.lower().endswith('.zip'):
            raise click.ClickException(f"--dest '{dest}' is a folder; a zip destination must be a file")
    elif os.path.lexists(dest):
        if not dest.lower().endswith('.zip'):
            raise click.ClickException(f"--dest '{dest}' already exists and is not a folder")
        if not os.path.isfile(dest):
            raise click.ClickException(f"--dest '{dest}' already exists and is not a file")
        # An existing zip file is replaced, as the official tool does (once the new one is complete).
    dnnlib.cli.check_output_dir(os.path.dirname(os.path.abspath(os.path.normpath(dest))), '--dest')


def _make_parent_folders(path):
    """Creates the missing parent folders of path; returns them, deepest first, for clean-up."""
    created = []
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    for folder in reversed(created):
        os.mkdir(folder)
    return created


class ZipDestination:
    """Writes an uncompressed zip archive."""

    def __init__(self, dest):
        self._dest = dest
        self._created_folders = _make_parent_folders(dest)
        dnnlib.util.remove_stale_temporaries(dest)  # Left by a killed run of this tool.
        self._tmp_path = dnnlib.util.temporary_path(dest)
        try:
            self._archive = zipfile.ZipFile(self._tmp_path, 'x', compression=zipfile.ZIP_STORED)
        except OSError:
            _remove_empty_folders(self._created_folders)
            raise

    def write(self, fname, data):
        self._archive.writestr(fname, data)

    def commit(self):
        self._archive.close()
        os.replace(self._tmp_path, self._dest)

    def abort(self):
        try:
            self._archive.close()
        finally:
            if os.path.exists(self._tmp_path):
                os.remove(self._tmp_path)
            _remove_empty_folders(self._created_folders)


class FolderDestination:
    """Writes a folder of files."""

    def __init__(self, dest):
        self._dest = dest
        self._created_folders = _make_parent_folders(dest)
        dnnlib.util.remove_stale_temporaries(os.path.normpath(dest))  # Left by a killed run of this tool.
        self._tmp_dir = dnnlib.util.temporary_path(os.path.normpath(dest))
        try:
            os.mkdir(self._tmp_dir)
        except OSError:
            _remove_empty_folders(self._created_folders)
            raise

    def write(self, fname, data):
        path = os.path.join(self._tmp_dir, fname)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)

    def commit(self):
        if os.path.isdir(self._dest):
            os.rmdir(self._dest) # Checked empty at the start; rename cannot replace a folder on every OS.
        os.rename(self._tmp_dir, self._dest)

    def abort(self):
        shutil.rmtree(self._tmp_dir, ignore_errors=True)
        _remove_empty_folders(self._created_folders)


def _remove_empty_folders(folders):
    for folder in folders:
        with contextlib.suppress(OSError):
            os.rmdir(folder)

# ----------------------------------------------------------------------------
# Conversion.


def _describe(image):
    channels = 1 if image.ndim == 2 else image.shape[2]
    return f"{image.shape[1]}x{image.shape[0]} {'grayscale' if channels == 1 else 'RGB'}"


def _as_gray_or_rgb(image, name):
    """Returns [H, W] for grayscale, [H, W, 3] for RGB; refuses images with an alpha channel."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] != 3:
        raise click.ClickException(f"image '{name}' has {image.shape[2]} channels (alpha?); images must be RGB or "
            f"grayscale")
    assert image.dtype == np.uint8
    return image


def _check_first_image(image, name, have_resolution):
    height, width = image.shape[:2]
    hint = '' if have_resolution else '; use --resolution=WxH (with --transform=center-crop for non-square images)'
    if width != height:
        raise click.ClickException(f"image '{name}' is {width}x{height}; dataset images must be square{hint}")
    if width & (width - 1) != 0:
        raise click.ClickException(f"image '{name}' is {width}x{height}; the size must be a power of two{hint}")


def _encode_png(image):
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format='png', compress_level=0, optimize=False)
    return buffer.getvalue()


@contextlib.contextmanager
def writing_destination(dest):
    """The zip or folder destination `dest`, committed when the block ends normally and removed otherwise (an
    OSError there is the destination failing: the sources' reading errors are other exceptions by then)."""
    try:
        destination = ZipDestination(dest) if dest.lower().endswith('.zip') else FolderDestination(dest)
    except OSError as err:
        raise click.ClickException(f"cannot create --dest '{dest}': {err}") from None
    try:
        yield destination
        destination.commit()
    except OSError as err:
        destination.abort()
        raise click.ClickException(f"cannot write --dest '{dest}': {err}") from None
    except BaseException:
        destination.abort()
        raise


def convert_dataset(source, dest, max_images=None, transform=None, resolution=None, skip_corrupt=False,
                    coco_images=None):
    """Writes the images of `source` to `dest` (see the module docstring); refuses with click.ClickException."""
    if transform is not None and resolution is None:
        raise click.ClickException(f'--transform={transform} needs --resolution=WxH')
    if resolution is not None:
        width, height = resolution
        if transform in ('center-crop-wide', 'center-crop-wide-keep-aspect'):
            if height > width:
                raise click.ClickException(f'--transform={transform} needs a wide --resolution (W >= H), got '
                    f'{width}x{height}')
        elif width != height:
            raise click.ClickException(f'--resolution={width}x{height} is not square; dataset images must be square '
                f'(--transform=center-crop-wide letterboxes wide images into WxW)')
        if width & (width - 1) != 0:
            raise click.ClickException(f'--resolution={width}x{height}: the output size {width} is not a power of two')
    _check_destination(dest)
    apply_transform = make_transform(transform, resolution)

    with open_source(source, coco_images) as src:
        if src.num_images == 0:
            raise click.ClickException(f"--source '{source}' contains no images")
        with writing_destination(dest) as destination:
            # Reading errors are CorruptImageErrors there, so an OSError is the destination's.
            stats = _convert_images(src, destination, max_images, apply_transform, resolution is not None,
                skip_corrupt)
    return stats


def _prepare_image(source_image, apply_transform):
    """Runs in a worker thread: (source_image, transformed image or None, PNG bytes or None, CorruptImageError)."""
    try:
        image = source_image.read()
    except CorruptImageError as err:
        return source_image, None, None, err
    except UnsupportedImageError as err:
        raise click.ClickException(str(err)) from None
    image = apply_transform(_as_gray_or_rgb(image, source_image.name))
    return source_image, image, None if image is None else _encode_png(image), None


def _map_in_order(fn, items, num_threads):
    """Like map(fn, items) but runs fn in threads (PIL releases the GIL while decoding, resizing and encoding)."""
    pool = concurrent.futures.ThreadPoolExecutor(num_threads)
    try:
        pending = collections.deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 4 * num_threads: # Bounded look-ahead keeps memory flat.
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _progress_total(num_images, max_images):
    """Images the progress bar expects: None when neither the source nor --max-images tells."""
    known = [count for count in (num_images, max_images) if count is not None]
    return min(known) if known else None


def image_fname(idx):
    """The name of a dataset's image number `idx`: 1000 per numbered subfolder."""
    return f'{idx // 1000:05d}/img{idx:08d}.png'


def _convert_images(src, destination, max_images, apply_transform, have_resolution, skip_corrupt):
    # The first max_images source images (all by default) are read; each written one is named by its index among
    # them, so names skip the images left out, as in the official tool's archives.
    labels = []
    first = None # (name, image) of the first image written.
    num_corrupt = 0
    num_too_small = 0
    num_threads = min(8, os.cpu_count() or 1)
    prepared = _map_in_order(lambda source_image: _prepare_image(source_image, apply_transform),
        itertools.islice(src.images, max_images), num_threads)
    total = _progress_total(src.num_images, max_images)
    with tqdm.tqdm(total=total, unit='img', disable=None) as progress, contextlib.closing(prepared):
        for idx, (source_image, image, png, corrupt_error) in enumerate(prepared):
            progress.update(1)
            if corrupt_error is not None:
                if not skip_corrupt:
                    raise click.ClickException(f'{corrupt_error} (--skip-corrupt skips unreadable images)')
                tqdm.tqdm.write(f'Skipping corrupt image: {corrupt_error}', file=sys.stderr)
                num_corrupt += 1
                continue
            if image is None:
                num_too_small += 1
                continue
            if first is None:
                _check_first_image(image, source_image.name, have_resolution)
                first = (source_image.name, image)
            elif image.shape != first[1].shape:
                if image.shape[:2] != first[1].shape[:2] and not have_resolution:
                    hint = '; use --resolution=WxH to resize all images to one size'
                elif image.ndim != first[1].ndim:
                    hint = '; convert the images to all RGB or all grayscale first (e.g. with PIL\'s Image.convert)'
                else:
                    hint = ''
                raise click.ClickException(f"image '{source_image.name}' is {_describe(image)} but image "
                    f"'{first[0]}' is {_describe(first[1])}; all images must have the same size and channels{hint}")
            fname = image_fname(idx)
            destination.write(fname, png)
            labels.append([fname, source_image.label])

    if first is None:
        raise click.ClickException('no image could be converted' +
            (f' ({num_corrupt} corrupt)' if num_corrupt else '') +
            (f' ({num_too_small} smaller than --resolution)' if num_too_small else ''))
    metadata = {'labels': labels if src.has_labels else None}
    destination.write('dataset.json', json.dumps(metadata).encode('utf-8'))
    return dict(num_images=len(labels), image=_describe(first[1]), num_corrupt=num_corrupt,
        num_too_small=num_too_small, num_uncaptioned=src.num_uncaptioned)

# ----------------------------------------------------------------------------
# Videos with poses: each frame cropped around the signer's shoulders (training/pose.py), the cropped poses
# stored beside the images as poses.pose and poses.json (see the module docstring).

VIDEO_EXTENSIONS = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v')
POSE_EXTENSION = '.pose'
DEFAULT_POSE_RESOLUTION = 256  # Side of the crops when --resolution is not given.


@dataclasses.dataclass
class PoseClip:
    name:      str          # The video's file name without its extension; names the clip in poses.json.
    video:     str          # Path of the video.
    pose_path: str          # Path of its .pose file.
    pose:      Any = None   # The Pose read from pose_path.
    estimate:  bool = False # pose_path does not exist: the poses are estimated and saved there.


def is_video_fname(fname):
    name = os.path.basename(fname)
    return not name.startswith('.') and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def _clip_name(video):
    return os.path.splitext(os.path.basename(video))[0]


def holds_pose_pairs(path):
    """Whether the folder `path` holds a video with a same-named .pose file beside it (a.mp4 and a.pose)."""
    if not os.path.isdir(path):
        return False
    names = set(os.listdir(path))
    return any(is_video_fname(name) and _clip_name(name) + POSE_EXTENSION in names for name in names)


def holds_only_videos(path):
    """Whether the folder `path` holds videos and no image anywhere below it (their poses are to be estimated)."""
    if not os.path.isdir(path) or not any(is_video_fname(name) for name in os.listdir(path)):
        return False
    return not any(is_image_fname(name) for _root, _dirs, files in os.walk(path) for name in files)


def is_pose_source(source, pose):
    """Whether the conversion crops videos by their poses rather than reading images."""
    return (pose is not None or (os.path.isfile(source) and is_video_fname(source)) or holds_pose_pairs(source)
        or holds_only_videos(source))


def _beside(video):
    return os.path.join(os.path.dirname(video), _clip_name(video) + POSE_EXTENSION)


def _single_video_clip(video, pose):
    if pose is None:
        pose_path = _beside(video)
        return [PoseClip(
            name=_clip_name(video),
            video=video,
            pose_path=pose_path,
            estimate=not os.path.isfile(pose_path),
        )]
    pose_path = os.path.join(pose, _clip_name(video) + POSE_EXTENSION) if os.path.isdir(pose) else pose
    if not os.path.isfile(pose_path):
        raise click.ClickException(f"pose file '{pose_path}' for video '{video}' does not exist")
    return [PoseClip(name=_clip_name(video), video=video, pose_path=pose_path)]


def _folder_clips(folder, pose_dir):
    """The clips of the videos of `folder`; pose_dir None: each one's NAME.pose beside it, estimated if missing."""
    if pose_dir is not None and not os.path.isdir(pose_dir):
        raise click.ClickException(f"--pose '{pose_dir}' is not a folder; with a folder --source, --pose names the "
            f"folder of its NAME.pose files")
    videos = sorted(name for name in os.listdir(folder)
                    if is_video_fname(name) and os.path.isfile(os.path.join(folder, name)))
    if not videos:
        raise click.ClickException(f"--source '{folder}' holds no videos ({', '.join(VIDEO_EXTENSIONS)})")
    names = [_clip_name(video) for video in videos]
    twins = sorted(name for name in set(names) if names.count(name) > 1)
    if twins:
        raise click.ClickException(f"--source '{folder}' holds several videos named '{twins[0]}'; each clip "
            f"needs a name of its own")
    clips = [PoseClip(name=name, video=os.path.join(folder, video), pose_path=os.path.join(pose_dir or folder, name +
        POSE_EXTENSION)) for name, video in zip(names, videos)]
    for clip in clips:
        if not os.path.isfile(clip.pose_path):
            if pose_dir is not None:  # Poses named elsewhere are the user's: a missing one is a mistake.
                raise click.ClickException(f"video '{clip.video}' has no pose file '{clip.pose_path}'")
            clip.estimate = True
    return clips


def find_pose_clips(source, pose):
    """The (video, .pose) pairs of --source and --pose, in name order."""
    if os.path.isfile(source):
        if not is_video_fname(source):
            raise click.ClickException(f"--pose applies to a video --source ({', '.join(VIDEO_EXTENSIONS)}) or a "
                f"folder of videos, not '{source}'")
        return _single_video_clip(source, pose)
    if os.path.isdir(source):
        return _folder_clips(source, pose)
    raise click.ClickException(f"--source '{source}' does not exist")


def read_clip_poses(clips):
    """Reads the pose of every clip not read yet and checks that all have one layout; returns it (None for no
    clips)."""
    layouts = []
    for clip in clips:
        try:
            if clip.pose is None:
                clip.pose = pose_lib.read_pose(clip.pose_path)
            layouts.append(pose_lib.pose_layout(clip.pose.header, name=clip.pose_path))
            pose_lib.check_same_components([clips[0].pose, clip.pose], [clips[0].pose_path, clip.pose_path])
        except pose_lib.PoseError as err:
            raise click.ClickException(str(err)) from None
    return layouts[0] if layouts else None


def _video_frames(path):
    """Yields the frames of a video as uint8 [H, W, 3]."""
    try:
        with pose_estimation.open_video(path) as video:
            yield from video.frames
    except pose_estimation.VideoError as err:
        raise click.ClickException(str(err)) from None


def _check_estimation(clips):
    """Refuses, before anything is written, when a clip's poses are to be estimated and MediaPipe is missing."""
    missing = [clip for clip in clips if clip.estimate]
    if not missing:
        return
    try:
        pose_estimation.check_available()
    except pose_estimation.EstimationUnavailableError as err:
        raise click.ClickException(f"video '{missing[0].video}' has no poses ('{missing[0].pose_path}' does not "
            f"exist and --pose is not given) and they cannot be estimated: {err}") from None


def save_pose(pose, path):
    """Writes `pose` to `path` atomically, unless a file `path` exists by then (it is kept); returns whether it
    wrote."""
    dnnlib.util.remove_stale_temporaries(path)  # Left by a run killed while writing it.
    tmp_path = dnnlib.util.temporary_path(path)
    try:
        with open(tmp_path, 'wb') as f:
            pose.write(f)
        try:
            os.link(tmp_path, path)  # Unlike a rename, fails when `path` exists: another run's poses are kept.
        except FileExistsError:
            return False
        except OSError:  # A file system without hard links.
            if os.path.exists(path):
                return False
            os.replace(tmp_path, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)


def estimate_clip_poses(clips):
    """Estimates the poses of the clips that have none and saves each beside its video (NAME.pose), for reruns to
    read; where that folder cannot be written, the poses are used all the same."""
    for clip in clips:
        if not clip.estimate:
            continue
        try:
            pose = pose_estimation.estimate_video(clip.video)
        except pose_estimation.VideoError as err:
            raise click.ClickException(str(err)) from None
        try:
            saved = save_pose(pose, clip.pose_path)
        except OSError as err:
            click.echo(f"warn: cannot save the estimated poses of '{clip.video}' to '{clip.pose_path}' "
                f"({err.strerror or err}); they are used but not kept", err=True)
            clip.pose = pose
            continue
        if saved:
            click.echo(f"Saved the estimated poses of '{clip.video}' to '{clip.pose_path}'")
        # Left for read_clip_poses to read back: this run crops with exactly what a rerun will read, and a file
        # that another run wrote meanwhile (save_pose keeps it) is the one used.


def _check_pose_frame_size(clip, frame_size):
    """The pose's coordinates are pixels of the frames it was estimated on: those must be this video's."""
    dims = clip.pose.header.dimensions
    if dims.width and dims.height and (dims.width, dims.height) != tuple(frame_size):
        raise click.ClickException(f"pose file '{clip.pose_path}' is for {dims.width}x{dims.height} frames but "
            f"video '{clip.video}' is {frame_size[0]}x{frame_size[1]}")


def _kept_frames(clip, layout):
    """(frames, boxes, iterator of (frame image, box) of the kept frames). The iterator reads the video up to
    the last pose frame and refuses a video with fewer frames than its pose."""
    frames = _video_frames(clip.video)
    first = next(frames, None)
    if first is None:
        raise click.ClickException(f"video '{clip.video}' has no frames")
    frame_size = (first.shape[1], first.shape[0])
    _check_pose_frame_size(clip, frame_size)
    kept, boxes = pose_lib.select_frames(clip.pose, layout, frame_size)
    num_pose_frames = clip.pose.body.data.shape[0]
    box_of = dict(zip(kept.tolist(), boxes))

    def crops():
        num_read = 0
        with contextlib.closing(frames):
            for index, image in enumerate(itertools.islice(itertools.chain([first], frames), num_pose_frames)):
                num_read = index + 1
                if index in box_of:
                    yield image, box_of[index]
        if num_read < num_pose_frames:
            raise click.ClickException(f"video '{clip.video}' has {num_read} frames but its pose file "
                f"'{clip.pose_path}' has {num_pose_frames}; they must come from the same video")
    return kept, boxes, crops()


def _crop_to_png(image, box, resolution):
    return _encode_png(pose_lib.crop_image(image, box, resolution))


def _convert_clips(clips, layout, destination, resolution):
    """Writes the crops of every clip, then dataset.json, poses.pose and poses.json; returns the stats."""
    num_threads = min(8, os.cpu_count() or 1)
    cropped_poses, frames, clip_ranges = [], [], []
    with tqdm.tqdm(unit='img', disable=None) as progress:
        for clip in clips:
            kept, boxes, crops = _kept_frames(clip, layout)
            pngs = _map_in_order(lambda item: _crop_to_png(*item, resolution), crops, num_threads)
            start = len(frames)
            with contextlib.closing(pngs):
                for offset, png in enumerate(pngs):
                    destination.write(image_fname(start + offset), png)
                    progress.update(1)
            frames += kept.tolist()
            cropped_poses.append(pose_lib.crop_pose(clip.pose, kept, boxes, resolution))
            clip_ranges.append(dict(name=clip.name, start=start, stop=len(frames), fps=float(clip.pose.body.fps)))
    num_pose_frames = sum(clip.pose.body.data.shape[0] for clip in clips)
    if not frames:
        raise click.ClickException(f"no frame survived the crop rule: none of the {num_pose_frames} pose frames has "
            f"both shoulders and room for a square of at least {pose_lib.CROP_MIN_FACTOR} shoulder widths")
    poses = pose_lib.concatenate_poses(cropped_poses, [clip.pose_path for clip in clips])
    buffer = io.BytesIO()
    poses.write(buffer)
    index = dict(layout=layout, fps=float(poses.body.fps), frames=frames, clips=clip_ranges)
    destination.write('dataset.json', json.dumps({'labels': None}).encode('utf-8'))
    destination.write('poses.pose', buffer.getvalue())
    destination.write('poses.json', json.dumps(index).encode('utf-8'))
    return dict(num_images=len(frames), image=f'{resolution}x{resolution} RGB', num_pose_frames=num_pose_frames)


def _pose_resolution(resolution):
    if resolution is None:
        return DEFAULT_POSE_RESOLUTION
    width, height = resolution
    if width != height:
        raise click.ClickException(f'--resolution={width}x{height} is not square; pose crops are square')
    return width


def convert_pose_dataset(source, pose, dest, resolution=None, **unused_options):
    """Writes the shoulder-centred crops of the videos of `source` with the poses of `pose` to `dest`, and the
    cropped poses as poses.pose and poses.json (see the module docstring); refuses with click.ClickException."""
    for option, value in unused_options.items():
        if value not in (None, False):
            raise click.ClickException(f"--{option.replace('_', '-')} does not apply to videos with poses")
    resolution = _pose_resolution(resolution)
    clips = find_pose_clips(source, pose)
    _check_estimation(clips)
    read_clip_poses([clip for clip in clips if not clip.estimate])  # Bad pose files are refused before estimating.
    _check_destination(dest)
    estimate_clip_poses(clips)
    layout = read_clip_poses(clips)
    with writing_destination(dest) as destination:  # Video reading errors are ClickExceptions there.
        stats = _convert_clips(clips, layout, destination, resolution)
    return stats

# ----------------------------------------------------------------------------


def parse_resolution(value):
    """'WxH' or 'W,H' (the official spelling) -> (W, H); 'N' -> (N, N)."""
    parts = value.lower().replace(',', 'x').split('x')
    try:
        if len(parts) in (1, 2) and all(int(part) > 0 for part in parts):
            return (int(parts[0]), int(parts[-1]))
    except ValueError:
        pass
    raise click.BadParameter(f"expected WxH or W,H such as 256x256, got '{value}'")


class _ResolutionType(click.ParamType):
    name = 'WxH'

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return parse_resolution(value)
        except click.BadParameter as err:
            self.fail(err.message, param, ctx)


@click.command(help=__doc__)
@click.option('--source',       help='Image folder or zip (labels from dataset.json, or captions from a .txt file '
                                'beside each image), MNIST train-images-idx3-ubyte.gz (or its folder), '
                                'cifar-10-python.tar.gz, LSUN LMDB folder, COCO annotations/captions_*.json, or a '
                                'folder of webdataset .tar shards with captions (img2dataset)',
                                metavar='PATH', required=True)
@click.option('--dest',         help='Output zip archive (*.zip) or folder', metavar='PATH', required=True)
@click.option('--max-images',   help='Read at most this many source images', type=click.IntRange(min=1), metavar='INT')
@click.option('--transform',    help='Crop before resizing: square center crop, wide crop letterboxed into WxW (as '
                                'the official tool, stretching other aspects), or the same keeping the aspect',
                                type=click.Choice(['center-crop', 'center-crop-wide', 'center-crop-wide-keep-aspect']))
@click.option('--resolution',   help='Output image size (resize with Lanczos)', type=_ResolutionType(), metavar='WxH')
@click.option('--skip-corrupt', help='Skip unreadable images, uncaptioned shard samples and the rest of damaged shards '
                                '(each is reported) instead of stopping', is_flag=True)
@click.option('--coco-images',  help='Folder of the COCO images of a captions_*.json --source  [default: the '
                                'split\'s folder beside the annotations folder]', metavar='DIR')
@click.option('--pose',         help='Poses (pose-format .pose) of a video --source, or the folder of the NAME.pose '
                                'files of a folder of NAME.mp4 videos  [default: NAME.pose beside each video, '
                                'estimated with MediaPipe and saved there when missing (requirements-pose.txt)]; '
                                'each frame is cropped around the shoulders (square, --resolution default 256x256) '
                                'and the cropped poses are stored as poses.pose and poses.json', metavar='PATH')
def main(source, dest, max_images, transform, resolution, skip_corrupt, coco_images, pose):
    source = os.path.expanduser(source)
    dest = os.path.normpath(os.path.expanduser(dest))
    coco_images = None if coco_images is None else os.path.expanduser(coco_images)
    pose = None if pose is None else os.path.expanduser(pose)
    if is_pose_source(source, pose):
        stats = convert_pose_dataset(source=source, pose=pose, dest=dest, resolution=resolution, transform=transform,
            max_images=max_images, skip_corrupt=skip_corrupt, coco_images=coco_images)
        click.echo(f"Wrote {stats['num_images']} {stats['image']} images to '{dest}' (kept {stats['num_images']} of "
            f"{stats['num_pose_frames']} pose frames; poses in poses.pose and poses.json)")
        return
    stats = convert_dataset(source=source, dest=dest, max_images=max_images, transform=transform,
        resolution=resolution, skip_corrupt=skip_corrupt, coco_images=coco_images)
    notes = []
    if stats['num_corrupt']:
        notes.append(f"skipped {stats['num_corrupt']} corrupt")
    if stats['num_too_small']:
        notes.append(f"left out {stats['num_too_small']} smaller than {resolution[0]}x{resolution[1]}")
    if stats['num_uncaptioned']:
        notes.append(f"skipped {stats['num_uncaptioned']} without a caption")
    notes = f" ({', '.join(notes)})" if notes else ''
    click.echo(f"Wrote {stats['num_images']} {stats['image']} images to '{dest}'{notes}")


if __name__ == '__main__':
    main() # pylint: disable=no-value-for-parameter

# ----------------------------------------------------------------------------
