"""Shared machinery of the metrics: feature detectors, feature statistics, and their caching.

Work is split over processes when torch.distributed is initialised (`num_gpus` > 1): each rank
handles every `num_gpus`-th item and the features are gathered back into one canonical order, so
the result does not depend on the number of processes.

`MetricOptions.scale` evaluates a CREPS generator rendered at that multiple of its training resolution
(training.networks_creps.rendering_scale) against the dataset resized to the same resolution.
"""

import copy
import hashlib
import io
import os
import pickle
import sys
import time
import warnings

import numpy as np
import PIL.Image
import torch

import dnnlib
from torch_utils import safe_pickle
from training import networks_creps

# ----------------------------------------------------------------------------
# Feature detectors.

# The published detectors (facts from the StyleGAN3 release): Inception-v3 ported from TF
# ('inception-2015-12-05') and the VGG16 used for LPIPS and precision/recall.
INCEPTION_URL = 'https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/inception-2015-12-05.pkl'
VGG16_URL = 'https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/vgg16.pkl'

# Environment variables that point a detector at a local copy (or another URL).
DETECTOR_ENV = {INCEPTION_URL: 'STYLEGAN_INCEPTION_PKL', VGG16_URL: 'STYLEGAN_VGG16_PKL'}
DETECTOR_NAMES = {INCEPTION_URL: 'Inception-v3', VGG16_URL: 'VGG16'}
# The same detectors as StyleGAN2-ADA-PyTorch published them; its caches of dataset statistics name these.
ADA_DETECTOR_URLS = {
    INCEPTION_URL: 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt',
    VGG16_URL: 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt',
}
_detector_overrides = dict()     # Default URL -> path or URL, set by calc_metrics options.
_detector_cache = dict()         # (resolved URL, device) -> loaded detector.


class MetricError(RuntimeError):
    """A metric cannot run as asked; the message is one line and says how to fix it."""


def set_detector_override(default_url, path_or_url):
    """Makes `get_feature_detector(default_url)` load `path_or_url` instead (e.g. a copied file)."""
    assert default_url in DETECTOR_ENV
    _detector_overrides[default_url] = path_or_url


def resolve_detector_url(url):
    """The location actually used for a detector: an explicit override, then the environment, then `url`."""
    if url in _detector_overrides:
        return _detector_overrides[url]
    env = DETECTOR_ENV.get(url)
    if env is not None and os.environ.get(env):
        return os.environ[env]
    return url


def load_detector(f, trusted=False):
    """Reads a detector from a binary file: a TorchScript archive, or a pickled module when `trusted` (the
    published detectors) or when the user trusts pickles (--trust-pickle): a pickle runs code when loaded.
    ValueError (one line) for anything else."""
    data = f.read()
    if data[:2] == b'PK':  # TorchScript archives are zip files; loading one runs no Python code.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', FutureWarning)  # TorchScript is deprecated but is what the detectors are.
                detector = torch.jit.load(io.BytesIO(data), map_location='cpu')
        except Exception as e:  # TorchScript raises RuntimeError and friends for damaged archives.
            raise ValueError(f'not a readable TorchScript detector ({str(e).strip().splitlines()[0][:200]})') from None
    elif trusted or safe_pickle.trusts_pickles():
        try:
            detector = pickle.loads(data)
        except Exception as e:  # Unpickling a damaged or foreign file raises almost anything.
            raise ValueError(f'not a readable detector pickle ({type(e).__name__}: {str(e).strip()[:200]})') from None
    else:
        raise ValueError(f'a pickle, which runs code when loaded: convert it to TorchScript (torch.jit.save), or pass '
                         f'--trust-pickle (or set {safe_pickle.TRUST_ENV}=1) if you trust where it comes from')
    if not isinstance(detector, torch.nn.Module):
        raise ValueError(f'a {type(detector).__name__}, not a detector network')
    return detector


def get_feature_detector(url, device=torch.device('cpu'), num_gpus=1, rank=0, verbose=False):
    """Loads (once per process and device) the detector named by `url`, honouring overrides."""
    resolved = resolve_detector_url(url)
    key = (resolved, device)
    if key in _detector_cache:
        return _detector_cache[key]

    is_leader = (rank == 0)
    if not is_leader and num_gpus > 1:
        torch.distributed.barrier()  # Let rank 0 download to the cache first.
    name = DETECTOR_NAMES.get(url, 'feature detector')
    env = DETECTOR_ENV.get(url)
    try:
        with dnnlib.util.open_url(resolved, verbose=(verbose and is_leader)) as f:
            detector = load_detector(f, trusted=(resolved in DETECTOR_ENV))  # The published detectors themselves.
    except (dnnlib.util.DownloadError, FileNotFoundError, ValueError) as e:
        how = f' (or set {env} to a local copy)' if env else ''
        raise MetricError(f'Cannot load the {name} detector: {e}{how}') from None
    finally:
        if is_leader and num_gpus > 1:
            torch.distributed.barrier()
    detector = detector.eval().to(device)
    for param in detector.parameters():  # ScriptModules lack requires_grad_().
        param.requires_grad_(False)
    _detector_cache[key] = detector
    return detector


def detector_digest(url):
    """Identifies a detector's weights for cache keys: the resolved location plus, for local files, their size and mtime."""
    resolved = resolve_detector_url(url)
    parts = [resolved]
    path = resolved[len('file://'):] if resolved.startswith('file://') else resolved
    if os.path.isfile(path):
        st = os.stat(path)
        parts += [st.st_size, st.st_mtime_ns]
    return repr(parts)

# ----------------------------------------------------------------------------
# Options shared by all metrics.


class MetricOptions:
    """What a metric needs: the generator, the dataset, the process layout and progress reporting."""

    def __init__(self, G=None, G_kwargs={}, dataset_kwargs={}, num_gpus=1, rank=0, device=None,
                 progress=None, cache=True, seed=0, batch_size=64, data_loader_kwargs=None, scale=1, clip_scorer=None):
        assert 0 <= rank < num_gpus
        if scale != 1 and G is not None:
            try:
                networks_creps.rendering_resolution(G, scale)
            except ValueError as e:
                raise MetricError(f'Cannot evaluate at scale {scale}: {e}') from None
        self.G = G
        self.G_kwargs = dnnlib.EasyDict(G_kwargs)
        self.dataset_kwargs = dnnlib.EasyDict(dataset_kwargs)
        self.num_gpus = num_gpus
        self.rank = rank
        self.device = device if device is not None else (torch.device('cuda', rank) if torch.cuda.is_available() else torch.device('cpu'))
        self.progress = progress.sub() if progress is not None else ProgressMonitor()
        self.cache = cache
        self.seed = seed
        self.batch_size = batch_size
        self.data_loader_kwargs = data_loader_kwargs if data_loader_kwargs is not None else dict(pin_memory=True, num_workers=3, prefetch_factor=2)
        self.scale = scale  # Render G at this multiple of its resolution, against reals resized to match.
        self.clip_scorer = clip_scorer  # CLIP model of the CLIP score (metrics/clip_score.py); None: the default.

# ----------------------------------------------------------------------------
# Feature statistics.


class FeatureStats:
    """Feature vectors of many images, kept whole (`capture_all`) and/or as float64 sums from which their mean
    and covariance follow (`capture_mean_cov`). The attribute names are the layout of the cache files, which
    the official code shares."""

    def __init__(self, capture_all=False, capture_mean_cov=False, max_items=None):
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov
        self.max_items = max_items          # Vectors beyond this many are ignored; None: no limit.
        self.num_items = 0
        self.num_features = None            # Set by the first batch.
        self.all_features = None            # List of float32 [n, D] batches (capture_all).
        self.raw_mean = None                # Sum of the vectors (capture_mean_cov).
        self.raw_cov = None                 # Sum of their outer products (capture_mean_cov).

    def set_num_features(self, num_features):
        if self.num_features is None:
            self.num_features = num_features
            self.all_features = []
            self.raw_mean = np.zeros(num_features, dtype=np.float64)
            self.raw_cov = np.zeros((num_features, num_features), dtype=np.float64)
        assert self.num_features == num_features, 'feature size changed between batches'

    def is_full(self):
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, x):
        """Adds a [N, D] batch (numpy); vectors beyond `max_items` are dropped."""
        batch = np.asarray(x, dtype=np.float32)
        assert batch.ndim == 2, 'features come as [N, D]'
        if self.max_items is not None:
            room = self.max_items - self.num_items
            if room <= 0:
                return
            batch = batch[:room]
        self.set_num_features(batch.shape[1])
        self.num_items += len(batch)
        self.all_features += [batch] if self.capture_all else []
        if self.capture_mean_cov:  # Sums in float64: 50k vectors of 2048 features lose no precision.
            as_float64 = batch.astype(np.float64)
            np.add(self.raw_mean, as_float64.sum(axis=0), out=self.raw_mean)
            np.add(self.raw_cov, as_float64.T @ as_float64, out=self.raw_cov)

    def append_torch(self, x, num_gpus=1, rank=0):
        """Adds a [N, D] tensor computed on each process; every process gets all of them, interleaved by rank
        (item i of rank r lands at position i * num_gpus + r)."""
        assert isinstance(x, torch.Tensor) and x.ndim == 2
        assert 0 <= rank < num_gpus
        if num_gpus > 1:
            per_rank = [torch.empty_like(x) for _ in range(num_gpus)]
            torch.distributed.all_gather(per_rank, x.contiguous())
            x = torch.stack(per_rank, dim=1).flatten(0, 1)
        self.append(x.cpu().numpy())

    def get_all(self):
        assert self.capture_all
        if self.all_features:
            return np.concatenate(self.all_features, axis=0)
        return np.zeros([0, self.num_features or 0], dtype=np.float32)

    def get_all_torch(self):
        return torch.from_numpy(self.get_all())

    def get_mean_cov(self):
        """(mean [D], covariance [D, D]) of the vectors added, normalised by their count."""
        assert self.capture_mean_cov and self.num_items > 0
        mean = self.raw_mean / self.num_items
        return mean, self.raw_cov / self.num_items - np.outer(mean, mean)

    def save(self, path):
        """Writes atomically (temp file + rename), so a concurrent reader never sees a partial file."""
        dnnlib.util.write_atomically(path, lambda f: pickle.dump(self.__dict__, f))

    @staticmethod
    def load(path):
        """Reads a cache file of this project or of the official code (the same layout), without running code."""
        with open(path, 'rb') as f:
            state = safe_pickle.load(f)
        keys = ('capture_all', 'capture_mean_cov', 'max_items', 'num_items', 'num_features', 'all_features',
                'raw_mean', 'raw_cov')
        if not isinstance(state, dict) or any(key not in state for key in keys):
            raise safe_pickle.MalformedPickleError(f'{path} is not a file of feature statistics')
        obj = FeatureStats(capture_all=state['capture_all'], max_items=state['max_items'])
        obj.__dict__.update({key: state[key] for key in keys})
        return obj

# ----------------------------------------------------------------------------
# Progress reporting.


class ProgressMonitor:
    """Progress of a step of a metric, and of the steps inside it (sub()): a bar on a terminal, a summary line
    when the step ends (verbose), and `progress_fn(done, total)` over the span [pfn_lo, pfn_hi] of `pfn_total`
    that this step owns. (`flush_interval` is accepted for compatibility.)"""

    def __init__(self, tag=None, num_items=None, flush_interval=1000, verbose=False, progress_fn=None,
                 pfn_lo=0, pfn_hi=1000, pfn_total=1000):
        self.tag = tag
        self.num_items = num_items
        self.flush_interval = flush_interval
        self.verbose = verbose
        self.progress_fn = progress_fn
        self.pfn_lo, self.pfn_hi, self.pfn_total = pfn_lo, pfn_hi, pfn_total
        self.start_time = time.time()
        shows_bar = verbose and tag is not None and bool(num_items) and sys.stderr.isatty()
        self.bar = None
        if shows_bar:
            import tqdm  # Only for terminals.
            self.bar = tqdm.tqdm(total=num_items, desc=tag, unit='img', leave=False, dynamic_ncols=True)
        self._tell(0)

    def _span_point(self, fraction):
        return self.pfn_lo + (self.pfn_hi - self.pfn_lo) * fraction

    def _tell(self, fraction):
        if self.progress_fn is not None:
            self.progress_fn(self._span_point(fraction), self.pfn_total)

    def update(self, cur_items):
        """`cur_items` of the step's items are done."""
        assert self.num_items is None or cur_items <= self.num_items
        if self.bar is not None:
            self.bar.update(cur_items - self.bar.n)
        finished = self.num_items is not None and cur_items == self.num_items
        if finished and self.verbose and self.tag is not None:
            if self.bar is not None:
                self.bar.close()
            seconds = time.time() - self.start_time
            per_item_ms = seconds / max(cur_items, 1) * 1e3
            print(f'{self.tag:<19s} items {cur_items:<7d} time {dnnlib.util.format_time(seconds):<12s} '
                  f'ms/item {per_item_ms:.2f}', flush=True)
        if self.num_items:
            self._tell(cur_items / self.num_items)

    def sub(self, tag=None, num_items=None, flush_interval=1000, rel_lo=0, rel_hi=1):
        """The monitor of a step inside this one, owning [rel_lo, rel_hi] of this one's span."""
        return ProgressMonitor(tag=tag, num_items=num_items, flush_interval=flush_interval, verbose=self.verbose,
                               progress_fn=self.progress_fn, pfn_lo=self._span_point(rel_lo),
                               pfn_hi=self._span_point(rel_hi), pfn_total=self.pfn_total)

# ----------------------------------------------------------------------------
# Deterministic sampling of latents and labels: item i always gets the same z and c,
# however the items are split over processes and batches.


def sample_latents(indices, z_dim, seed):
    """[len(indices), z_dim] float32 normal latents; one RandomState per global item index."""
    return np.stack([np.random.RandomState((seed * 1000003 + int(i)) % (2 ** 32)).randn(z_dim)
                     for i in indices]).astype(np.float32)


def _label_picks(indices, dataset, seed):
    return [np.random.RandomState((seed * 1000033 + int(i) + 7) % (2 ** 32)).randint(len(dataset)) for i in indices]


def sample_labels(indices, dataset, c_dim, seed):
    """[len(indices), c_dim] labels of random dataset items (zeros for unconditional generators)."""
    if c_dim == 0:
        return np.zeros([len(indices), 0], dtype=np.float32)
    return np.stack([dataset.get_label(p) for p in _label_picks(indices, dataset, seed)]).astype(np.float32)


def is_text_conditional(G):
    """Whether G takes text embeddings as c (StyleGAN-T trained on captions)."""
    return G.c_dim > 0 and getattr(G, 'text_encoder', None) is not None


def streamed_refusal(what):
    """The one-line error for a metric that needs random access to a streaming training set."""
    return MetricError(f'{what}, but the training set streams from tar shards (no random access): such metrics run on '
                       f'zip datasets; with shards use fid30k_coco64, fid30k_coco256, cs10k or cs10k_coco')


def generator_labels(indices, dataset, G, seed, device):
    """The c that G gets for items `indices`: labels of random dataset items, or for a text-conditional generator
    (StyleGAN-T) its embeddings of their captions."""
    if G.c_dim > 0 and getattr(dataset, 'streamed', False):
        raise streamed_refusal('this metric conditions the generator on random training items')
    if is_text_conditional(G):
        if not dataset.has_captions:
            raise MetricError('a text-conditional generator is measured against a dataset with captions; this one '
                              'has none (pass the captioned dataset with --data)')
        from training import encoders
        captions = [dataset.get_label(p) for p in _label_picks(indices, dataset, seed)]
        return encoders.encode_prompts(G, captions, device=device)
    return torch.from_numpy(sample_labels(indices, dataset, G.c_dim, seed)).to(device)


def caption_labels(indices, captions, G, device):
    """The c that G gets for items `indices` when item i is drawn from the prompt captions[i] (the list wraps
    around for the indices past its end that rank_items hands out)."""
    if G.c_dim == 0:
        return torch.zeros([len(indices), 0], device=device)  # Unconditional: the prompts do not apply.
    if not is_text_conditional(G):
        raise MetricError('prompts condition a text-to-image generator (StyleGAN-T trained on captions); this one takes '
                          'class labels')
    from training import encoders
    return encoders.encode_prompts(G, [captions[int(i) % len(captions)] for i in indices], device=device)


def rank_items(num_items, num_gpus, rank, batch_size):
    """Batches of global item indices handled by `rank`; every rank gets the same number of batches.

    Rank r handles items r, r + num_gpus, ...; indices past the end wrap around and are later
    dropped by FeatureStats.max_items, which keeps the canonical order after gathering.
    """
    per_rank = (num_items - 1) // num_gpus + 1
    items = [(i * num_gpus + rank) for i in range(per_rank)]
    return [items[i:i + batch_size] for i in range(0, per_rank, batch_size)]

# ----------------------------------------------------------------------------
# Dataset and generator statistics.


def _dataset_identity(dataset_kwargs):
    """Cache-key part describing the dataset's contents: its arguments plus the size and mtime of its path."""
    parts = [sorted((k, repr(v)) for k, v in dataset_kwargs.items())]
    path = dataset_kwargs.get('path')
    if path is not None and os.path.exists(path):
        st = os.stat(path)
        parts += [os.path.abspath(path), st.st_size, st.st_mtime_ns]
    return repr(parts)


def official_cache_files(dataset_kwargs, dataset_name, detector_url, detector_kwargs, stats_kwargs):
    """Where the official StyleGAN3 and StyleGAN2-ADA-PyTorch code caches these dataset statistics.

    Their file name is the dataset name, the detector's file stem and the MD5 of the repr of the sorted
    (name, value) pairs of dataset_kwargs, detector_kwargs, detector_url and stats_kwargs; the number of
    images read is not part of it."""
    files = []
    for url in (detector_url, ADA_DETECTOR_URLS.get(detector_url)):
        if url is None:
            continue
        described = dict(dataset_kwargs=dict(dataset_kwargs), detector_url=url, detector_kwargs=dict(detector_kwargs),
                         stats_kwargs=dict(stats_kwargs))
        digest = hashlib.md5(repr(sorted(described.items())).encode('utf-8')).hexdigest()
        detector_stem = os.path.splitext(url.split('/')[-1])[0]
        files.append(dnnlib.make_cache_dir_path('gan-metrics', f'{dataset_name}-{detector_stem}-{digest}.pkl'))
    return files


def _official_cached_stats(opts, dataset, detector_url, detector_kwargs, stats_kwargs, num_items):
    """Statistics the official code cached for this dataset and detector, when they fit: the published detector
    (not a replacement), as many images as asked for, written after the dataset last changed."""
    if resolve_detector_url(detector_url) != detector_url:
        return None
    path = opts.dataset_kwargs.get('path')
    dataset_mtime = os.path.getmtime(path) if path is not None and os.path.exists(path) else None
    for cache_file in official_cache_files(opts.dataset_kwargs, dataset.name, detector_url, detector_kwargs,
                                           stats_kwargs):
        if not os.path.isfile(cache_file):
            continue
        if dataset_mtime is not None and os.path.getmtime(cache_file) < dataset_mtime:
            continue  # The dataset changed after the statistics were computed.
        try:
            stats = FeatureStats.load(cache_file)
        except (OSError, safe_pickle.UnsafePickleError, safe_pickle.MalformedPickleError):
            continue
        fits = (stats.num_items == num_items and bool(stats.capture_all) == bool(stats_kwargs.get('capture_all'))
                and bool(stats.capture_mean_cov) == bool(stats_kwargs.get('capture_mean_cov')))
        if fits:
            if opts.progress.verbose:
                print(f'Using the dataset statistics cached by the official code: {cache_file}')
            return stats
    return None


def make_images_uint8(img):
    """Generator output in about [-1, 1] -> uint8 [N, 3, H, W] as the detectors expect."""
    img = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    if img.shape[1] == 1:
        img = img.repeat([1, 3, 1, 1])
    return img


class ResizedDataset(torch.utils.data.Dataset):
    """The items of `dataset` with their images resized to resolution x resolution by PIL's Lanczos filter
    (as `dataset_tool.py --resolution` does); labels unchanged."""

    def __init__(self, dataset, resolution):
        self.dataset = dataset
        self.resolution = resolution

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        image, label = self.dataset[idx]
        assert image.dtype == np.uint8 and image.ndim == 3  # [C, H, W]
        if image.shape[1:] != (self.resolution, self.resolution):
            size = (self.resolution, self.resolution)
            if image.shape[0] == 1:
                image = np.asarray(PIL.Image.fromarray(image[0], 'L').resize(size, PIL.Image.Resampling.LANCZOS))[np.newaxis]
            else:
                image = np.asarray(PIL.Image.fromarray(image.transpose(1, 2, 0)).resize(size, PIL.Image.Resampling.LANCZOS))
                image = image.transpose(2, 0, 1)
        return np.ascontiguousarray(image), label


def compute_feature_stats_for_dataset(opts, detector_url, detector_kwargs, rel_lo=0, rel_hi=1,
                                      batch_size=None, data_loader_kwargs=None, max_items=None, **stats_kwargs):
    """Feature statistics of the real images (at a scale other than 1, resized to the rendering resolution
    unless already there), cached on disk by everything that affects them."""
    dataset = dnnlib.util.construct_class_by_name(**opts.dataset_kwargs)
    resized_resolution = _comparison_resolution(opts, dataset)
    num_items = len(dataset) if max_items is None else min(len(dataset), max_items)

    cache_file = None
    if opts.cache:
        key = [_dataset_identity(opts.dataset_kwargs), detector_digest(detector_url),
               sorted(detector_kwargs.items()), sorted(stats_kwargs.items()), max_items]
        key += [] if resized_resolution is None else [('resized', resized_resolution)]
        digest = hashlib.md5(repr(key).encode('utf-8')).hexdigest()
        detector_name = DETECTOR_NAMES.get(detector_url, 'detector').lower()
        cache_file = dnnlib.make_cache_dir_path('gan-metrics', f'{dataset.name}-{detector_name}-{digest}.pkl')
        if opts.rank == 0 and not os.path.isfile(cache_file) and resized_resolution is None and opts.scale == 1:
            official = _official_cached_stats(opts, dataset, detector_url, detector_kwargs, stats_kwargs, num_items)
            if official is not None:
                os.makedirs(os.path.dirname(cache_file), exist_ok=True)
                official.save(cache_file)
        cached = _read_cache_on_every_rank(opts, cache_file)
        if cached is not None:
            return cached

    stats = FeatureStats(max_items=num_items, **stats_kwargs)
    progress = opts.progress.sub(tag='dataset features', num_items=num_items, rel_lo=rel_lo, rel_hi=rel_hi)
    detector = get_feature_detector(detector_url, device=opts.device, num_gpus=opts.num_gpus, rank=opts.rank,
                                    verbose=progress.verbose)
    loader_kwargs = dict(opts.data_loader_kwargs if data_loader_kwargs is None else data_loader_kwargs)
    if loader_kwargs.get('num_workers', 0) == 0:
        loader_kwargs.pop('prefetch_factor', None)  # Refused by DataLoader without worker processes.
    # Process r reads items r, r + P, r + 2P, ... (wrapping around, so every process reads as many).
    per_process = -(-num_items // opts.num_gpus)
    my_items = [(step * opts.num_gpus + opts.rank) % num_items for step in range(per_process)]
    source = dataset if resized_resolution is None else ResizedDataset(dataset, resized_resolution)
    for images, _labels in torch.utils.data.DataLoader(dataset=source, sampler=my_items,
                                                       batch_size=batch_size or opts.batch_size, **loader_kwargs):
        rgb = torch.cat([images] * 3, dim=1) if images.shape[1] == 1 else images
        stats.append_torch(detector(rgb.to(opts.device), **detector_kwargs), num_gpus=opts.num_gpus, rank=opts.rank)
        progress.update(stats.num_items)

    if cache_file is not None and opts.rank == 0:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        stats.save(cache_file)
    return stats


def _comparison_resolution(opts, dataset):
    """The size the reals are resized to before feature extraction, or None to take them as they are. At a
    scale other than 1, the CREPS protocol compares with reals at the rendering resolution; reals at another
    resolution (the training one) are resized to it."""
    if opts.scale == 1:
        return None
    try:
        target = networks_creps.rendering_resolution(opts.G, opts.scale) if opts.G is not None else \
            networks_creps.scaled_resolution(dataset.resolution, opts.scale)
    except ValueError as e:
        raise MetricError(f'Cannot evaluate at scale {opts.scale}: {e}') from None
    return None if dataset.resolution == target else target


def _read_cache_on_every_rank(opts, cache_file):
    """The statistics in `cache_file`, or None; rank 0 decides whether the file is there and the others follow,
    so that all of them either compute or not."""
    present = os.path.isfile(cache_file) if opts.rank == 0 else False
    if opts.num_gpus > 1:
        shared = torch.as_tensor(float(present), dtype=torch.float32, device=opts.device)
        torch.distributed.broadcast(tensor=shared, src=0)
        present = bool(shared.item())
    if not present:
        return None
    try:
        return FeatureStats.load(cache_file)
    except (OSError, safe_pickle.UnsafePickleError, safe_pickle.MalformedPickleError) as e:
        print(f'Recomputing dataset statistics: the cache file is unusable ({e})', file=sys.stderr)
        return None


def resize_images(images, resolution):
    """uint8 [N, C, H, W] images resized to resolution x resolution by PIL's Lanczos filter, as the reals
    (ImageFolderDataset's resize_resolution); unchanged when already that size."""
    if images.shape[2:] == (resolution, resolution):
        return images
    from training.dataset import resize_lanczos
    resized = [resize_lanczos(image, resolution) for image in images.cpu().numpy()]
    return torch.from_numpy(np.stack(resized)).to(images.device)


def generate_images(opts, G, indices, dataset=None, captions=None, batch_gen=4):
    """uint8 [len(indices), C, H, W] images of items `indices` (G in eval mode on opts.device): item i's latent
    comes from its index, its c from `captions[i]` when given, else from a random item of `dataset`."""
    images = []
    for start in range(0, len(indices), batch_gen):
        part = indices[start:start + batch_gen]
        z = torch.from_numpy(sample_latents(part, G.z_dim, opts.seed)).to(opts.device)
        c = generator_labels(part, dataset, G, opts.seed, opts.device) if captions is None else \
            caption_labels(part, captions, G, opts.device)
        images.append(make_images_uint8(G(z=z, c=c, **opts.G_kwargs)))
    return torch.cat(images)


def compute_feature_stats_for_generator(opts, detector_url, detector_kwargs, rel_lo=0, rel_hi=1,
                                        batch_size=None, batch_gen=None, captions=None, resolution=None,
                                        **stats_kwargs):
    """Feature statistics of generated images; sample i uses the same latent whatever the process layout.
    `captions`: prompts of the items (item i: captions[i]) instead of labels of random dataset items;
    `resolution`: images resized to this size (Lanczos) when G renders another."""
    batch_size = batch_size or opts.batch_size
    if batch_gen is None:
        batch_gen = min(batch_size, 4)
    assert batch_size % batch_gen == 0

    G = copy.deepcopy(opts.G).eval().requires_grad_(False).to(opts.device)
    needs_dataset = G.c_dim > 0 and captions is None
    dataset = dnnlib.util.construct_class_by_name(**opts.dataset_kwargs) if needs_dataset else None

    stats = FeatureStats(**stats_kwargs)
    assert stats.max_items is not None
    progress = opts.progress.sub(tag='generator features', num_items=stats.max_items, rel_lo=rel_lo, rel_hi=rel_hi)
    detector = get_feature_detector(detector_url, device=opts.device, num_gpus=opts.num_gpus, rank=opts.rank,
                                    verbose=progress.verbose)

    with networks_creps.rendering_scale(G, opts.scale):
        for batch in rank_items(stats.max_items, opts.num_gpus, opts.rank, batch_size):
            images = generate_images(opts, G, batch, dataset=dataset, captions=captions, batch_gen=batch_gen)
            if resolution is not None:
                images = resize_images(images, resolution)
            features = detector(images, **detector_kwargs)
            stats.append_torch(features, num_gpus=opts.num_gpus, rank=opts.rank)
            progress.update(min(stats.num_items, stats.max_items))
    return stats
