"""CLIP score: the mean cosine similarity between a CLIP model's embeddings of generated images and of the
prompts they were generated from (StyleGAN-T reports it with open_clip's ViT-g-14, laion2b_s12b_b42k weights).

Which CLIP model scores (the "scorer"): the `clip_scorer` metric option (calc_metrics.py --clip-scorer), else the
environment variable STYLEGAN_CLIP_SCORER, else the release's. A value is either

- a folder in open_clip's `local-dir:` layout: open_clip_config.json (with "model_cfg" and optionally
  "preprocess_cfg") and open_clip_pytorch_model.bin or .safetensors, which is the layout of the model's Hugging
  Face repo (download it where there is a network and copy the folder), or
- `MODEL:TAG`, open_clip's own pretrained weights, fetched into its cache on first use.
"""

import copy
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

from training import encoders
from . import metric_utils

DEFAULT_SCORER = 'ViT-g-14:laion2b_s12b_b42k'
SCORER_ENV = 'STYLEGAN_CLIP_SCORER'
FOLDER_PREFIX = 'local-dir:'  # open_clip's name for a model folder; accepted in front of a path, not needed.
CONFIG_FILE = 'open_clip_config.json'
WEIGHTS_FILES = ('open_clip_pytorch_model.bin', 'open_clip_pytorch_model.safetensors', 'open_clip_model.safetensors')
_HOW = f'--clip-scorer=FOLDER|MODEL:TAG (or {SCORER_ENV})'
_FOLDER_HOW = f'a scorer folder is a copy of the model\'s Hugging Face repo, given with {_HOW}'
_scorer_cache = dict()  # (source, device) -> Scorer.

# ----------------------------------------------------------------------------
# Which scorer.


def choose_scorer(spec=None):
    """The scorer asked for: `spec`, else the environment variable, else the release's."""
    if spec not in (None, ''):
        return str(spec)
    return os.environ.get(SCORER_ENV) or DEFAULT_SCORER


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise metric_utils.MetricError('the CLIP score needs the open_clip package: pip install open-clip-torch') from None
    return open_clip


def _looks_like_path(text):
    return '/' in text or os.sep in text or text.startswith(('.', '~'))


def parse_scorer(spec):
    """('folder', absolute path) or ('pretrained', MODEL, TAG) for a scorer value, after checking that the folder
    holds a config and weights, or that open_clip knows the model and tag. MetricError (one line) otherwise."""
    path = os.path.expanduser(spec[len(FOLDER_PREFIX):] if spec.startswith(FOLDER_PREFIX) else spec)
    if os.path.isdir(path):
        return _checked_folder(os.path.abspath(path))
    model, colon, tag = spec.partition(':')
    if not colon or not model or not tag or _looks_like_path(model):
        what = 'no such folder' if _looks_like_path(spec) else 'neither a folder nor MODEL:TAG'
        raise metric_utils.MetricError(f'CLIP scorer {spec!r}: {what}; pass {_HOW}, e.g. {DEFAULT_SCORER} or a folder '
                                       f'holding {CONFIG_FILE} and {WEIGHTS_FILES[0]}')
    return _checked_pretrained(model, tag)


def _checked_folder(folder):
    config = os.path.join(folder, CONFIG_FILE)
    try:
        with open(config, encoding='utf-8') as f:
            if not isinstance(json.load(f).get('model_cfg'), dict):
                raise ValueError('no "model_cfg" object')
    except (OSError, ValueError, AttributeError) as err:
        raise metric_utils.MetricError(f'CLIP scorer folder {folder}: cannot read {CONFIG_FILE} '
                                       f'({encoders._first_line(err)}); {_FOLDER_HOW}') from None
    if not any(os.path.isfile(os.path.join(folder, name)) for name in WEIGHTS_FILES):
        raise metric_utils.MetricError(f'CLIP scorer folder {folder} holds no weights ({" or ".join(WEIGHTS_FILES)}); '
                                       f'{_FOLDER_HOW}')
    return ('folder', folder)


def _checked_pretrained(model, tag):
    open_clip = _open_clip()
    if open_clip.get_model_config(model) is None:
        raise metric_utils.MetricError(f'CLIP scorer {model}:{tag}: open_clip has no model {model!r} (see '
                                       f'open_clip.list_models()); pass {_HOW}')
    tags = open_clip.list_pretrained_tags_by_model(model)
    if tag not in tags:
        raise metric_utils.MetricError(f'CLIP scorer {model}:{tag}: open_clip has no weights {tag!r} for {model} '
                                       f'(tags: {", ".join(tags) or "none"}); pass {_HOW}')
    return ('pretrained', model, tag)


def _offline_hint(source):
    """How to get the weights of `source` onto a machine without a network."""
    if source[0] == 'folder':
        return f'check that the folder holds an open_clip model (its Hugging Face repo); pass {_HOW}'
    repo = (_open_clip().get_pretrained_cfg(source[1], source[2]).get('hf_hub') or '').rstrip('/')
    where = f'the Hugging Face repo {repo}' if repo else 'the model\'s weights'
    return f'offline, download {where} where there is a network, copy the folder here and pass {_HOW}'

# ----------------------------------------------------------------------------
# Loading.


class Scorer:
    """A frozen CLIP model with its tokenizer and image preprocessing, scoring images against captions."""

    def __init__(self,
        model,              # open_clip CLIP model, in evaluation mode.
        tokenizer,          # open_clip tokenizer of the model: list of str -> int64 tokens.
        device,             # Where the model is.
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.size, mean, std = encoders.image_preprocessing(model)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).reshape(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).reshape(1, -1, 1, 1)

    @torch.no_grad()
    def embed_images(self, images):
        """uint8 [N, C, H, W] -> unit embeddings [N, D]: resized to the model's input side (bicubic, antialiased,
        as open_clip's own preprocessing of square images) and normalised with its mean and std."""
        x = images.to(self.device, torch.float32) / 255
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if x.shape[2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode='bicubic', antialias=True, align_corners=False)
            x = x.clamp(0, 1)  # Bicubic overshoots at edges; pixels stay pixels.
        return F.normalize(self.model.encode_image((x - self.mean) / self.std).to(torch.float32), dim=-1)

    @torch.no_grad()
    def embed_texts(self, captions):
        """Captions -> unit embeddings [N, D], tokenized by the model's own tokenizer (long texts cut to fit)."""
        tokens = self.tokenizer([str(caption) for caption in captions]).to(self.device)
        return F.normalize(self.model.encode_text(tokens).to(torch.float32), dim=-1)


def _build(source, spec, device):
    """A Scorer of a parsed source; MetricError (one line) when open_clip cannot load it."""
    open_clip = _open_clip()
    try:
        with encoders._libraries_quiet():
            if source[0] == 'folder':
                name = FOLDER_PREFIX + source[1]
                model = open_clip.create_model(name, device=device)
                tokenizer = open_clip.get_tokenizer(name)
            else:
                model = open_clip.create_model(source[1], pretrained=source[2], device=device)
                tokenizer = open_clip.get_tokenizer(source[1])
    except Exception as err:  # Offline fetches, damaged files and foreign configs fail in library-specific ways.
        raise metric_utils.MetricError(f'cannot load the CLIP scorer {spec!r} ({encoders._first_line(err)[:300]}); '
                                       f'{_offline_hint(source)}') from None
    return Scorer(model.eval().requires_grad_(False), tokenizer, device)


def _fetch(source, spec):
    """Downloads open_clip's pretrained weights into its cache (nothing to do for a folder)."""
    if source[0] != 'pretrained':
        return
    open_clip = _open_clip()
    try:
        with encoders._libraries_quiet():
            open_clip.download_pretrained(open_clip.get_pretrained_cfg(source[1], source[2]))
    except Exception as err:  # huggingface_hub raises its own errors offline.
        raise metric_utils.MetricError(f'cannot fetch the CLIP scorer {spec!r} ({encoders._first_line(err)[:300]}); '
                                       f'{_offline_hint(source)}') from None


def check_scorer(spec=None, load=True):
    """Checks before long work that the scorer can be had: the value's form, the folder's files or open_clip's
    model and tag, the weights fetched into open_clip's cache, and with `load` the model built once on the CPU
    (then dropped, so that a damaged file is found now). Returns the value used; MetricError (one line) if not."""
    spec = choose_scorer(spec)
    source = parse_scorer(spec)
    _fetch(source, spec)
    if load:
        _build(source, spec, 'cpu')
    return spec


def load_scorer(spec=None, device='cpu', num_gpus=1, rank=0):
    """The Scorer of `spec` (see choose_scorer) on `device`, loaded once per process and device."""
    spec = choose_scorer(spec)
    source = parse_scorer(spec)
    key = (source, str(torch.device(device)))
    if key in _scorer_cache:
        return _scorer_cache[key]
    if rank != 0 and num_gpus > 1:
        torch.distributed.barrier()  # Rank 0 fetches into the cache first.
    try:
        scorer = _build(source, spec, device)
    finally:
        if rank == 0 and num_gpus > 1:
            torch.distributed.barrier()
    _scorer_cache[key] = scorer
    return scorer

# ----------------------------------------------------------------------------
# Scoring.


def similarities(scorer, images, captions):
    """[N] float32 cosine similarities between the scorer's embeddings of uint8 images [N, C, H, W] and of their
    captions (one each)."""
    assert len(images) == len(captions), 'one caption per image'
    return (scorer.embed_images(images) * scorer.embed_texts(captions)).sum(dim=1)


def clip_score(scorer, image_batches, captions):
    """The mean similarity over every image of `image_batches` (uint8 [n, C, H, W] each, in order) with its caption;
    `captions` holds one per image, in the same order."""
    scores, start = [], 0
    for images in image_batches:
        scores.append(similarities(scorer, images, captions[start:start + len(images)]).cpu().to(torch.float64))
        start += len(images)
    assert start == len(captions) and start > 0, 'one caption per image'
    return float(torch.cat(scores).mean())


def compute_clip_score(opts, num_gen, captions):
    """CLIP score of `num_gen` generated images: item i from its seeded latent and the prompt captions[i]."""
    G = copy.deepcopy(opts.G).eval().requires_grad_(False).to(opts.device)
    if not metric_utils.is_text_conditional(G):
        raise metric_utils.MetricError('the CLIP score measures a text-to-image generator (StyleGAN-T trained on '
                                       'captions); this one takes no prompts')
    scorer = load_scorer(opts.clip_scorer, device=opts.device, num_gpus=opts.num_gpus, rank=opts.rank)
    stats = metric_utils.FeatureStats(capture_all=True, max_items=num_gen)
    progress = opts.progress.sub(tag='clip score', num_items=num_gen)
    for batch in metric_utils.rank_items(num_gen, opts.num_gpus, opts.rank, opts.batch_size):
        images = metric_utils.generate_images(opts, G, batch, captions=captions)
        scores = similarities(scorer, images, [captions[i % len(captions)] for i in batch])
        stats.append_torch(scores[:, None], num_gpus=opts.num_gpus, rank=opts.rank)  # Gathered in item order.
        progress.update(min(stats.num_items, num_gen))
    if opts.rank != 0:
        return float('nan')
    return float(stats.get_all().astype(np.float64).mean())
