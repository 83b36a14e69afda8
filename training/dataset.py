"""Image datasets for training and evaluation: a folder or a zip archive of images, with optional labels.

Images are returned as uint8 numpy arrays [C, H, W] and labels as float32 numpy arrays; integer class labels
are turned into one-hot vectors. A label may instead be a caption string (text-to-image datasets): the item's
label is then that str, and the dataset has no label vectors (`has_labels` False, `has_captions` True).
The on-disk layout is the one written by dataset_tool.py: image files anywhere in the folder or archive,
plus an optional `dataset.json` at its root holding `{"labels": [[relative/path.png, label], ...]}` or
`{"labels": null}`.
"""

import abc
import json
import os
import zipfile

import numpy as np
import PIL.Image
import torch

import dnnlib
from training import shards
from training.image_files import DatasetError, channel_count, decode_image, image_header, is_image_fname  # noqa: F401 (DatasetError: public here too)

# ----------------------------------------------------------------------------


def _starts_with(path, magic):
    with open(path, 'rb') as f:
        return f.read(len(magic)) == magic


def is_power_of_two(value):
    return value >= 1 and (value & (value - 1)) == 0

def _chosen_images(num_images, max_size, seed):
    """Image numbers a dataset uses: all of them, or `max_size` drawn with `seed`. Kept in file order, so
    that reading them goes through the files front to back."""
    numbers = np.arange(num_images, dtype=np.int64)
    if max_size is None or num_images <= max_size:
        return numbers
    np.random.RandomState(seed).shuffle(numbers)
    return np.sort(numbers[:max_size])


def _is_caption_array(labels):
    return labels.dtype == object


def resize_lanczos(image, size):
    """uint8 [C, H, W] -> [C, size, size], each channel resized by PIL with Lanczos. Channel by channel gives
    the same pixels as PIL's RGB resize, and keeps an alpha channel plain data (PIL would premultiply it)."""
    if image.shape[1] == size and image.shape[2] == size:
        return image
    return np.stack([np.asarray(PIL.Image.fromarray(channel).resize((size, size), PIL.Image.Resampling.LANCZOS))
                     for channel in image])

# ----------------------------------------------------------------------------


class Dataset(torch.utils.data.Dataset, metaclass=abc.ABCMeta):
    """Indexing, x-flip mirroring, subsetting and labels on top of raw images loaded by a subclass."""

    streamed = False  # Random access by index (ShardDataset streams instead).

    def __init__(self,
        name,                   # Name of the dataset.
        raw_shape,              # Shape of the raw image data [N, C, H, W].
        max_size    = None,     # Use at most this many images: a subset fixed by random_seed. None = all.
        use_labels  = False,    # Return the stored labels; False = zero-length labels.
        xflip       = False,    # Append a horizontally mirrored copy of every image (doubles the length).
        random_seed = 0,        # Seed that picks the max_size subset.
    ):
        if max_size is not None and max_size < 0:
            raise ValueError(f'max_size must be non-negative, got {max_size}')
        self.name = name                        # The dataset's file or folder name without extension.
        self._raw_shape = list(raw_shape)
        self._use_labels = bool(use_labels)
        self._raw_labels = None
        self._label_shape = None

        # Items: the chosen images, then (with xflip) the same images again, mirrored.
        chosen = _chosen_images(self._raw_shape[0], max_size, random_seed)
        copies = 2 if xflip else 1
        self._raw_idx = np.tile(chosen, copies)
        self._xflip = np.repeat(np.arange(copies, dtype=np.uint8), chosen.size)

        # Labels are small; reading them now reports a broken dataset.json before training starts.
        self._get_raw_labels()

    def _get_raw_labels(self):
        if self._raw_labels is None:
            raw_labels = self._load_raw_labels() if self._use_labels else None
            if raw_labels is None:
                raw_labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            assert isinstance(raw_labels, np.ndarray) and raw_labels.shape[0] == self._raw_shape[0]
            assert raw_labels.dtype in (np.float32, np.int64, object)
            if raw_labels.dtype == np.int64:
                assert raw_labels.ndim == 1 and np.all(raw_labels >= 0)
            if _is_caption_array(raw_labels):
                assert raw_labels.ndim == 1 and all(isinstance(caption, str) for caption in raw_labels)
            self._raw_labels = raw_labels
        return self._raw_labels

    def close(self):
        """Releases open file handles; the dataset reopens them when it is used again."""

    def _load_raw_image(self, raw_idx):
        """Returns image number raw_idx as a uint8 array [C, H, W]."""

    @abc.abstractmethod
    def _load_raw_labels(self):
        """Returns int64 class indices [N], float32 label vectors [N, D], an object array of caption strs [N], or
        None when the dataset has no labels."""

    def __getstate__(self):
        return dict(self.__dict__)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __len__(self):
        return self._raw_idx.size

    def __getitem__(self, idx):
        raw_idx = self._raw_idx[idx]
        image = self._load_raw_image(raw_idx)
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8, 'images load as uint8 arrays'
        assert list(image.shape) == self.image_shape, f'image {raw_idx} has shape {list(image.shape)}'
        if self._xflip[idx]:
            image = np.flip(image, axis=2)
        return image.copy(order="C"), self.get_label(idx)

    def get_label(self, idx):
        """The label of item idx as float32 (one-hot for class labels), or its caption str."""
        stored = self._get_raw_labels()[self._raw_idx[idx]]
        if self.has_captions:
            return str(stored)
        if stored.dtype != np.int64:
            return np.array(stored)
        one_hot = np.zeros(self.label_shape, dtype=np.float32)
        one_hot[stored] = 1
        return one_hot

    def random_captions(self, count, seed):
        """The captions of `count` items drawn uniformly (with replacement) with `seed`."""
        if not self.has_captions:
            raise DatasetError(f"dataset '{self.name}' has no captions")
        picks = np.random.RandomState(seed).randint(len(self), size=count)
        return [self.get_label(int(idx)) for idx in picks]

    def get_details(self, idx):
        """Where item idx comes from: raw_idx (image number), xflip (mirrored?) and raw_label (as stored: an
        array, or the caption str)."""
        raw_idx = int(self._raw_idx[idx])
        stored = self._get_raw_labels()[raw_idx]
        raw_label = str(stored) if self.has_captions else np.array(stored)
        return dnnlib.EasyDict(raw_idx=raw_idx, xflip=bool(self._xflip[idx]), raw_label=raw_label)

    @property
    def image_shape(self):
        """[C, H, W], the same for every image."""
        channels, height, width = self._raw_shape[1:]
        return [channels, height, width]

    @property
    def num_channels(self):
        channels, _height, _width = self.image_shape
        return channels

    @property
    def resolution(self):
        _channels, height, width = self.image_shape
        assert height == width, 'dataset images are square'
        return width

    @property
    def label_shape(self):
        """[D] for label vectors; [number of classes] (the largest index + 1) for class indices; [0] for captions,
        so that code treating labels as vectors sees none."""
        if self._label_shape is None:
            stored = self._get_raw_labels()
            if _is_caption_array(stored):
                self._label_shape = [0]
            elif stored.dtype == np.int64:
                self._label_shape = [int(stored.max()) + 1] if stored.size else [0]
            else:
                self._label_shape = list(stored.shape[1:])
        return list(self._label_shape)

    @property
    def label_dim(self):
        (dim,) = self.label_shape
        return dim

    @property
    def has_labels(self):
        return any(self.label_shape)

    @property
    def has_onehot_labels(self):
        return self._get_raw_labels().dtype == np.int64

    @property
    def has_captions(self):
        """Whether every item's label is a caption str (only with use_labels=True)."""
        return _is_caption_array(self._get_raw_labels())

# ----------------------------------------------------------------------------


class ImageFolderDataset(Dataset):
    """Images (PNG, JPEG, WebP, ...) in a folder or a zip archive, searched recursively, in sorted path order."""

    def __init__(self,
        path,                       # Path to a folder or a zip archive.
        resolution          = None, # Required image resolution (after any resize); None = whatever is delivered.
        resize_resolution   = None, # Resize every image on the fly to this size with Lanczos, so one high-resolution
                                    # dataset serves every training stage; None = as stored.
        **super_kwargs,             # Arguments of Dataset other than name and raw_shape.
    ):
        self._path = path
        self._resize_resolution = _checked_resize_resolution(resize_resolution)
        self._zipfile = None
        self._zipfile_pid = None # The process that opened _zipfile: a forked worker must not share its file offset.

        if os.path.isdir(path):
            self._type = 'dir'
            self._all_fnames = set(self._list_folder(path))
        elif os.path.isfile(path) and zipfile.is_zipfile(path):
            self._type = 'zip'
            self._all_fnames = set(name for name in self._get_zipfile().namelist() if not name.endswith('/'))
        elif os.path.isfile(path) and _starts_with(path, b'PK'):
            raise DatasetError(f"dataset '{path}' is a damaged zip archive (truncated or corrupt): create it again "
                f"with dataset_tool.py")
        elif os.path.exists(path):
            raise DatasetError(f"dataset '{path}' is neither a folder nor a zip archive")
        else:
            raise DatasetError(f"dataset '{path}' does not exist")

        self._image_fnames = sorted(fname for fname in self._all_fnames if is_image_fname(fname))
        if len(self._image_fnames) == 0:
            raise DatasetError(f"dataset '{path}' contains no image files")

        name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
        self._stored_shape = self._check_first_image()
        channels, stored_size, _width = self._stored_shape
        size = self._resize_resolution or stored_size
        if resolution is not None and size != resolution:
            first_fname = self._display_name(self._image_fnames[0])
            delivered = (f"images are resized to {size}x{size} (resize_resolution)" if self._resize_resolution else
                f"image '{first_fname}' is {size}x{size}")
            raise DatasetError(f"{delivered} but resolution={resolution} was requested")
        raw_shape = [len(self._image_fnames), channels, size, size]
        super().__init__(name=name, raw_shape=raw_shape, **super_kwargs)
        self.close()

    def _check_first_image(self):
        """[C, H, W] of the first image as stored; refuses a size training cannot use."""
        channels, height, width = self._read_image(0).shape
        first_fname = self._display_name(self._image_fnames[0])
        if width != height:
            raise DatasetError(f"image '{first_fname}' is {width}x{height}; training images must be square "
                f"(convert the images with dataset_tool.py --resolution)")
        if self._resize_resolution is None and not is_power_of_two(width):
            raise DatasetError(f"image '{first_fname}' is {width}x{height}; training images must be square with a "
                f"power-of-two size (convert the images with dataset_tool.py --resolution, or pass resize_resolution)")
        return [channels, height, width]

    @staticmethod
    def _list_folder(path):
        for root, _dirs, files in os.walk(path):
            for fname in files:
                yield os.path.relpath(os.path.join(root, fname), start=path).replace(os.sep, '/')

    @property
    def image_fnames(self):
        """The images' names inside the folder or zip, by raw index (the item order without max_size or xflip)."""
        return list(self._image_fnames)

    def _display_name(self, fname):
        return os.path.join(self._path, fname)

    def _get_zipfile(self):
        assert self._type == 'zip'
        if self._zipfile is None or self._zipfile_pid != os.getpid():
            self._zipfile = zipfile.ZipFile(self._path)
            self._zipfile_pid = os.getpid()
        return self._zipfile

    def _read_file(self, fname):
        if self._type == 'dir':
            with open(os.path.join(self._path, fname), 'rb') as f:
                return f.read()
        with self._get_zipfile().open(fname, 'r') as f:
            return f.read()

    def _read_header(self, fname, display):
        """image_header() of a file from its first bytes (more only when the header is not in them)."""
        for limit in (4096, 65536, None):
            if self._type == 'dir':
                with open(os.path.join(self._path, fname), 'rb') as f:
                    data = f.read(limit if limit is not None else -1)
            else:
                with self._get_zipfile().open(fname, 'r') as f:
                    data = f.read(limit if limit is not None else -1)
            try:
                return image_header(data, display)
            except DatasetError:
                if limit is None or len(data) < limit:  # The whole file was read: it is broken.
                    raise

    def _read_image(self, raw_idx):
        fname = self._image_fnames[raw_idx]
        try:
            data = self._read_file(fname)
        except (OSError, zipfile.BadZipFile) as err:
            raise DatasetError(f"cannot read image '{self._display_name(fname)}': {err}") from None
        image = decode_image(data, self._display_name(fname))
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
        return image.transpose(2, 0, 1) # HWC => CHW

    def close(self):
        try:
            if self._zipfile is not None and self._zipfile_pid == os.getpid():
                self._zipfile.close()
        finally:
            self._zipfile = None
            self._zipfile_pid = None

    def __getstate__(self):
        return dict(super().__getstate__(), _zipfile=None, _zipfile_pid=None)

    def check_image_sizes(self, progress=None):
        """Reads the header of every image (not its pixels) and refuses a dataset whose images differ in size or
        channel count, naming the first that differs; `progress(done, total)` is called along the way."""
        channels, height, width = self._stored_shape
        expected = (width, height)
        for idx, fname in enumerate(self._image_fnames):
            display = self._display_name(fname)
            try:
                size, mode = self._read_header(fname, display)
            except (OSError, zipfile.BadZipFile) as err:
                if isinstance(err, DatasetError):
                    raise
                raise DatasetError(f"cannot read image '{display}': {err}") from None
            if size != expected:
                raise DatasetError(f"image '{display}' is {size[0]}x{size[1]} but the first image is "
                    f"{expected[0]}x{expected[1]}; all images must have the same size (convert them with dataset_tool.py)")
            if channel_count(mode) != channels:
                raise DatasetError(f"image '{display}' has {channel_count(mode)} channel(s) but the first image "
                    f"{channels}; all images must be grayscale or all color (convert them with dataset_tool.py)")
            if progress is not None:
                progress(idx + 1, len(self._image_fnames))

    def _load_raw_image(self, raw_idx):
        image = self._read_image(raw_idx)
        if list(image.shape) != self._stored_shape:
            shape = 'x'.join(str(size) for size in image.shape)
            expected = 'x'.join(str(size) for size in self._stored_shape)
            raise DatasetError(f"image '{self._display_name(self._image_fnames[raw_idx])}' is {shape} (CxHxW) but "
                f"the first image is {expected}; all images must have the same size and channel count")
        if self._resize_resolution is not None:
            image = resize_lanczos(image, self._resize_resolution)
        return image

    def _load_raw_labels(self):
        json_name = self._display_name('dataset.json')
        if 'dataset.json' not in self._all_fnames:
            raise DatasetError(f"labels were requested but '{json_name}' does not exist")
        try:
            labels = json.loads(self._read_file('dataset.json'))['labels']
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DatasetError(f"cannot read '{json_name}': expected {{\"labels\": [[fname, label], ...]}} "
                f"({type(err).__name__}: {err})") from None
        if labels is None:
            return None
        if not isinstance(labels, list) or not all(isinstance(item, list) and len(item) == 2 and
                isinstance(item[0], str) for item in labels):
            raise DatasetError(f"'{json_name}' must hold {{\"labels\": [[fname, label], ...]}}")
        labels = {fname.replace('\\', '/'): label for fname, label in labels}
        kind = 'caption' if any(isinstance(label, str) for label in labels.values()) else 'label'
        for fname in self._image_fnames:
            if fname not in labels:
                raise DatasetError(f"'{json_name}' has no {kind} for image '{fname}'")
        strays = sorted(set(labels) - set(self._image_fnames))
        if strays:
            raise DatasetError(f"'{json_name}' labels '{strays[0]}', which is not an image of the dataset"
                f"{f' (and {len(strays) - 1} more)' if len(strays) > 1 else ''}")
        return _labels_to_array([labels[fname] for fname in self._image_fnames], self._image_fnames, json_name)


def _checked_resize_resolution(size):
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not is_power_of_two(int(size)):
        raise DatasetError(f"resize_resolution={size!r} is not a power of two; pass a size such as 256, or None to "
            f"keep the stored size")
    return int(size)


def _label_kind(label):
    if isinstance(label, int) and not isinstance(label, bool):
        return 'class index'
    if isinstance(label, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in label):
        return 'vector'
    if isinstance(label, str):
        return 'caption'
    return None


def _captions_to_array(captions):
    # An object array (not numpy's fixed-width str) keeps each caption a plain str, of any length.
    array = np.empty(len(captions), dtype=object)
    array[:] = captions
    return array


def _labels_to_array(labels, fnames, json_name):
    """Class indices become int64 [N]; lists of numbers become float32 [N, D]; captions an object array [N]."""
    kinds = [_label_kind(label) for label in labels]
    for label, kind, fname in zip(labels, kinds, fnames):
        if kind is None:
            raise DatasetError(f"'{json_name}' gives image '{fname}' the label {json.dumps(label)}, which is neither "
                f"a class index, a list of numbers nor a caption string")
        if kind != kinds[0]:
            raise DatasetError(f"'{json_name}' gives image '{fname}' a {kind} label but image '{fnames[0]}' a "
                f"{kinds[0]} label")
        if kind == 'class index' and label < 0:
            raise DatasetError(f"'{json_name}' gives image '{fname}' the negative class {label}")
        if kind == 'vector' and len(label) != len(labels[0]):
            raise DatasetError(f"'{json_name}' gives image '{fname}' a label of length {len(label)} but image "
                f"'{fnames[0]}' one of length {len(labels[0])}")
    if kinds[0] == 'caption':
        return _captions_to_array(labels)
    if kinds[0] == 'class index':
        return np.array(labels, dtype=np.int64)
    return np.array(labels, dtype=np.float32).reshape(len(labels), -1)

# ----------------------------------------------------------------------------
# Streaming: captioned images from tar shards (training/shards.py), for datasets too large for one archive.


class ShardDataset:
    """The finished tar shards under a folder, as a training set: shapes and captions like Dataset, but no random
    access. stream() gives each process an endless iterable of its samples. Samples are decoded to RGB,
    centre-cropped and resized to `resolution`; corrupt ones are skipped and counted, never fatal."""

    streamed = True

    def __init__(self,
        path,                       # Folder whose subfolders hold the .tar shards.
        resolution,                 # Side of the delivered images.
        use_labels      = True,     # Deliver the captions; False = zero-length labels (unconditional).
        xflip           = False,    # Mirror each delivered image with probability 1/2.
        shuffle_buffer  = 1000,     # Samples each reader mixes before delivering one.
        random_seed     = 0,        # Seed of the shard assignment and of every shuffle.
        max_size        = None,     # Accepted for the options of zip datasets; a stream has no fixed size.
    ):
        del max_size
        if not is_power_of_two(int(resolution)):
            raise DatasetError(f'resolution={resolution} is not a power of two')
        self._path = path
        self._shards = shards.open_shard_folder(path)
        self._resolution = int(resolution)
        self._use_labels = bool(use_labels)
        self._xflip = bool(xflip)
        self._shuffle_buffer = max(int(shuffle_buffer), 1)
        self._random_seed = int(random_seed)
        self.name = os.path.basename(os.path.normpath(path))

    @property
    def shards(self):
        """Paths of the finished shards, sorted."""
        return list(self._shards)

    @property
    def nominal_size(self):
        """Samples in the shards by img2dataset's stats (a pass may deliver fewer: corrupt ones are skipped)."""
        counts = [shards.shard_successes(shard) for shard in self._shards]
        return None if any(count is None for count in counts) else sum(counts)

    def close(self):
        """Nothing stays open between streams."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def image_shape(self):
        return [3, self._resolution, self._resolution]

    @property
    def num_channels(self):
        return 3

    @property
    def resolution(self):
        return self._resolution

    @property
    def label_shape(self):
        return [0]  # Captions are str, not vectors (as for a captioned Dataset).

    @property
    def label_dim(self):
        return 0

    @property
    def has_labels(self):
        return False

    @property
    def has_captions(self):
        return self._use_labels

    def _label(self, caption):
        return caption if self._use_labels else np.zeros([0], dtype=np.float32)

    def stream(self, rank=0, num_ranks=1, seed=None):
        """An endless IterableDataset of this process's samples (see ShardStream); `seed` (an int or a tuple of
        ints) picks the shuffles, by default random_seed."""
        return ShardStream(self, rank=rank, num_ranks=num_ranks, seed=self._random_seed if seed is None else seed)

    def _decoded_samples(self, shard_list, on_corrupt):
        """(image, caption, key) of the usable samples of the shards, in order; on_corrupt(key, reason) for others."""
        for shard in shard_list:
            rel = os.path.relpath(shard, self._path).replace(os.sep, '/')
            for sample in shards.read_shard(shard, on_error=lambda err, rel=rel: on_corrupt(rel, f'damaged tar ({err})')):
                key = f'{rel}/{sample.get("__key__")}'
                try:
                    image, caption = shards.decode_sample(sample, self._resolution)
                except shards.CorruptSampleError as err:
                    on_corrupt(key, str(err))
                    continue
                yield image, caption, key

    def peek(self, count):
        """The first `count` usable samples in shard order, as (images [N, 3, R, R], labels): for image grids."""
        images, labels = [], []
        for image, caption, _key in self._decoded_samples(self._shards, on_corrupt=lambda key, reason: None):
            images.append(image)
            labels.append(self._label(caption))
            if len(images) == count:
                break
        if not images:
            raise DatasetError(f"'{self._path}': no sample of the finished shards decodes")
        found = len(images)
        for idx in range(count - found):  # Fewer samples than grid tiles: repeat them.
            images.append(images[idx % found])
            labels.append(labels[idx % found])
        return np.stack(images), (labels if self._use_labels else np.stack(labels))

    def random_captions(self, count, seed):
        """`count` captions: those of whole shards taken in an order drawn with `seed`, until there are enough,
        then shuffled with the same seed. Reads captions only (no image is decoded)."""
        rng = np.random.RandomState(seed)
        captions = []
        for idx in rng.permutation(len(self._shards)):
            for sample in shards.read_shard(self._shards[idx], on_error=lambda err: None):
                try:
                    captions.append(shards.sample_caption(sample))
                except shards.CorruptSampleError:
                    continue
            if len(captions) >= count:
                break
        if not captions:
            raise DatasetError(f"'{self._path}': the finished shards hold no captions")
        picks = rng.choice(len(captions), size=count, replace=len(captions) < count)
        return [captions[int(i)] for i in picks]


class ShardStream(torch.utils.data.IterableDataset):
    """One process's endless stream of (image, label, info) from a ShardDataset, for a DataLoader.

    Readers are the DataLoader workers of every process (rank * workers + worker). The shards are dealt to
    the readers once, round-robin after a seeded permutation, so no two readers ever open the same shard
    (unless there are fewer shards than readers; each reader then takes one shard, and a warning says so).
    Each reader goes through its shards in passes, in a fresh order each pass, mixing the samples in a
    shuffle buffer that is emptied at the end of the pass: within a pass every usable sample is delivered
    once. `info` is {'key': 'shard path/sample key', 'pass': reader's pass, 'skipped': corrupt samples
    skipped since the previous delivery}; the training loop adds the skipped counts to its statistics.
    """

    def __init__(self, dataset, rank, num_ranks, seed):
        super().__init__()
        assert 0 <= rank < num_ranks
        self.dataset = dataset
        self.rank = rank
        self.num_ranks = num_ranks
        self.seed = [int(value) for value in np.atleast_1d(seed)]

    def reader_shards(self, reader, num_readers):
        """The shards dealt to one reader."""
        all_shards = self.dataset.shards
        order = np.random.RandomState(self.seed).permutation(len(all_shards))
        if len(all_shards) < num_readers:
            return [all_shards[order[reader % len(all_shards)]]]
        return [all_shards[i] for i in order[reader::num_readers]]

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        reader, num_readers = self.rank * num_workers + worker_id, self.num_ranks * num_workers
        own = self.reader_shards(reader, num_readers)
        if reader == 0 and len(self.dataset.shards) < num_readers:
            print(f'Warning: {len(self.dataset.shards)} finished shards for {num_readers} readers (processes times '
                  f'data workers): readers share shards, so samples repeat within a pass; use more shards or --workers')
        skipped = [0]
        warned = [0]

        def on_corrupt(key, reason):
            skipped[0] += 1
            if warned[0] < 3:  # The statistics count them all; a few lines show what is wrong.
                warned[0] += 1
                print(f'Skipping corrupt sample {key}: {reason}')

        pass_idx = 0
        while True:
            rng = np.random.RandomState(self.seed + [pass_idx, reader])
            order = [own[i] for i in rng.permutation(len(own))]
            samples = self.dataset._decoded_samples(order, on_corrupt)
            delivered = 0
            for image, caption, key in _shuffled(samples, rng, self.dataset._shuffle_buffer):
                if self.dataset._xflip and rng.rand() < 0.5:
                    image = image[:, :, ::-1].copy()
                info = dict(key=key, skipped=skipped[0], **{'pass': pass_idx})
                skipped[0] = 0
                delivered += 1
                yield image, self.dataset._label(caption), info
            if delivered == 0:
                raise DatasetError(f"'{self.dataset._path}': no sample of the shards {', '.join(own)} decodes")
            pass_idx += 1


def _shuffled(items, rng, buffer_size):
    """The items in an order mixed by a buffer of `buffer_size`: each new item replaces a random one of the
    buffer, which is delivered; at the end the buffer is delivered in random order."""
    buffer = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        idx = rng.randint(buffer_size)
        buffer[idx], item = item, buffer[idx]
        yield item
    for idx in rng.permutation(len(buffer)):
        yield buffer[idx]

# ----------------------------------------------------------------------------
