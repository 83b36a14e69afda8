"""The pretrained encoders of StyleGAN-T: a CLIP model (open_clip) for the text embedding and for CLIP
guidance, and a DINO ViT (timm) as the discriminator's feature network.

open_clip and timm fetch and cache the weights (their own caches, under ~/.cache/huggingface by default);
this module reads the architecture from the loaded model, never from constants, and copies the weights into
the modules of training/networks_stylegan_t.py, so that snapshots need neither library. Which model and
weights: an option of the tools, else an environment variable, else the paper's choice:

| what | option | environment | default |
| --- | --- | --- | --- |
| CLIP architecture | `--clip-model=NAME|CONFIG.json` | STYLEGAN_CLIP_MODEL | `ViT-L-14` |
| CLIP weights | `--clip=TAG|PATH` | STYLEGAN_CLIP | `openai` |
| DINO architecture | `--dino-model=NAME|CONFIG.json` | STYLEGAN_DINO_MODEL | `vit_small_patch16_224.dino` |
| DINO weights | `--dino=PATH` | STYLEGAN_DINO | the weights timm names for the model |

A CLIP JSON file is an open_clip model config, registered under its file stem; a DINO JSON file is
`{"model": TIMM_NAME, "kwargs": {...}}`, passed to `timm.create_model`.
"""

import contextlib
import functools
import json
import logging
import os

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_CLIP_MODEL = 'ViT-L-14'
DEFAULT_CLIP = 'openai'
DEFAULT_DINO_MODEL = 'vit_small_patch16_224.dino'
ENV = dict(clip_model='STYLEGAN_CLIP_MODEL', clip='STYLEGAN_CLIP', dino_model='STYLEGAN_DINO_MODEL', dino='STYLEGAN_DINO')
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's input normalisation (open_clip's default).
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class EncoderError(Exception):
    """A pretrained encoder that cannot be had or used; the message is one line saying what to do."""


def choose(value, key, default=None):
    """The option's value, else its environment variable, else the default."""
    if value not in (None, ''):
        return value
    return os.environ.get(ENV[key]) or default


def sources(clip_model=None, clip=None, dino_model=None, dino=None):
    """The four choices above, resolved (a dict that configs store)."""
    return dict(clip_model=choose(clip_model, 'clip_model', DEFAULT_CLIP_MODEL), clip=choose(clip, 'clip', DEFAULT_CLIP),
                dino_model=choose(dino_model, 'dino_model', DEFAULT_DINO_MODEL), dino=choose(dino, 'dino'))


def _first_line(err):
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0]}' if text else type(err).__name__


@contextlib.contextmanager
def _libraries_quiet():
    """Silences the log lines open_clip, timm and huggingface_hub write while fetching (a failure becomes our one
    line instead)."""
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(previous)


def _import(name, package):
    try:
        return __import__(name)
    except ImportError:
        raise EncoderError(f'StyleGAN-T needs the {name} package: pip install {package}') from None

# ----------------------------------------------------------------------------
# CLIP.


def _looks_like_path(value):
    return os.sep in value or '/' in value or os.path.splitext(value)[1] in ('.pt', '.pth', '.bin', '.safetensors', '.ckpt')


def load_clip(clip_model=None, clip=None, device='cpu'):
    """The open_clip model (text and image towers), in evaluation mode, with its weights."""
    open_clip = _import('open_clip', 'open-clip-torch')
    model = choose(clip_model, 'clip_model', DEFAULT_CLIP_MODEL)
    weights = choose(clip, 'clip', DEFAULT_CLIP)
    name = model
    if model.endswith('.json'):
        if not os.path.isfile(model):
            raise EncoderError(f'--clip-model: no such open_clip config file: {model}')
        open_clip.add_model_config(model)
        name = os.path.splitext(os.path.basename(model))[0]
    if open_clip.get_model_config(name) is None:
        raise EncoderError(f'--clip-model: open_clip has no model {name!r} (see open_clip.list_models(), or pass an '
                           f'open_clip config as a .json file)')
    if _looks_like_path(weights):
        if not os.path.isfile(weights):
            raise EncoderError(f'--clip: no such checkpoint file: {weights}')
    elif weights not in open_clip.list_pretrained_tags_by_model(name):
        tags = ', '.join(open_clip.list_pretrained_tags_by_model(name)) or 'none'
        raise EncoderError(f'--clip: {weights!r} is neither a file nor a pretrained tag of {name} (tags: {tags})')
    try:
        with _libraries_quiet():
            net = open_clip.create_model(name, pretrained=weights, device=device)
    except Exception as err:  # Offline fetches and unreadable files fail in many library-specific ways.
        hint = ('download the checkpoint where there is a network and pass --clip=PATH (or set STYLEGAN_CLIP)'
                if not _looks_like_path(weights) else 'check that the file is an open_clip checkpoint of this model')
        raise EncoderError(f'cannot load CLIP weights {weights!r} for {name} ({_first_line(err)}); {hint}') from None
    return net.eval().requires_grad_(False)


def text_encoder_kwargs(clip_net):
    """TextTransformer arguments describing the text tower of an open_clip CLIP model."""
    transformer = getattr(clip_net, 'transformer', None)
    if transformer is None or not hasattr(clip_net, 'token_embedding'):
        raise EncoderError('--clip-model: only CLIP models with the original text transformer are supported '
                           f'(this one has a {type(getattr(clip_net, "text", clip_net)).__name__} text tower)')
    if getattr(clip_net, 'text_pool_type', 'argmax') != 'argmax' or getattr(clip_net, 'cls_emb', None) is not None:
        raise EncoderError('--clip-model: the text tower must pool at the end-of-text token, as CLIP does')
    block = transformer.resblocks[0]
    activations = {'QuickGELU': 'quick_gelu', 'GELU': 'gelu'}
    activation = activations.get(type(block.mlp.gelu).__name__)
    if activation is None or not isinstance(block.ls_1, torch.nn.Identity) or \
            not isinstance(getattr(block, 'ln_attn', torch.nn.Identity()), torch.nn.Identity):
        raise EncoderError('--clip-model: the text transformer blocks differ from CLIP\'s (activation, layer scale '
                           'or extra norms)')
    return dict(vocab_size=int(clip_net.vocab_size), context_length=int(clip_net.context_length),
                width=int(transformer.width), layers=int(transformer.layers), heads=int(block.attn.num_heads),
                mlp_width=int(block.mlp.c_fc.out_features), embed_dim=int(clip_net.text_projection.shape[1]),
                activation=activation, norm_eps=float(clip_net.ln_final.eps))


def text_encoder_state(clip_net):
    """{TextTransformer tensor name: tensor} from an open_clip CLIP model."""
    state = dict(token_embedding=clip_net.token_embedding.weight, positional_embedding=clip_net.positional_embedding,
                 final_norm_weight=clip_net.ln_final.weight, final_norm_bias=clip_net.ln_final.bias,
                 projection=clip_net.text_projection)
    for idx, block in enumerate(clip_net.transformer.resblocks):
        state.update(_block_state(f'blocks.{idx}.', norm1=block.ln_1, norm2=block.ln_2, fc1=block.mlp.c_fc,
                                  fc2=block.mlp.c_proj, proj=block.attn.out_proj,
                                  qkv=(block.attn.in_proj_weight, block.attn.in_proj_bias)))
    return state


def _block_state(prefix, qkv, **layers):
    state = {f'{prefix}qkv_weight': qkv[0], f'{prefix}qkv_bias': qkv[1]}
    for ours, layer in layers.items():
        state[f'{prefix}{ours}_weight'] = layer.weight
        state[f'{prefix}{ours}_bias'] = layer.bias
    return state


def copy_state(module, state, what):
    """Copies `state` into the weights of `module` (buffers, or parameters of a trainable text tower), which must
    match it name for name and shape for shape."""
    buffers = dict(list(module.named_parameters()) + list(module.named_buffers()))
    for name, tensor in state.items():
        if name not in buffers or buffers[name].shape != tensor.shape:
            raise EncoderError(f'{what}: the weights do not fit the network ({name})')
        with torch.no_grad():
            buffers[name].copy_(tensor.detach().to(buffers[name].dtype))


@functools.lru_cache(maxsize=4)
def _tokenizer(context_length):
    open_clip = _import('open_clip', 'open-clip-torch')
    return open_clip.tokenizer.SimpleTokenizer(context_length=context_length)  # Reads its vocabulary: keep it.


def tokenize(prompts, context_length, vocab_size):
    """[len(prompts), context_length] int64 token ids of CLIP's byte-pair tokenizer (texts cut to fit)."""
    tokenizer = _tokenizer(context_length)
    if len(tokenizer.encoder) != vocab_size:
        raise EncoderError(f'the text encoder has {vocab_size} tokens, but CLIP\'s tokenizer has {len(tokenizer.encoder)}')
    return tokenizer([str(prompt) for prompt in prompts])


def encode_prompts(G, prompts, device=None, batch_size=256, differentiable=False):
    """[len(prompts), G.c_dim] float32 text embeddings of a text-conditional generator, on `device`;
    `differentiable` keeps the graph (for tuning a trainable text tower)."""
    if getattr(G, 'text_encoder', None) is None:
        raise EncoderError('this network has no text encoder: --prompt works with StyleGAN-T networks trained on captions')
    encoder = G.text_encoder
    device = device if device is not None else encoder.token_embedding.device
    tokens = tokenize(prompts, encoder.context_length, encoder.vocab_size).to(device)
    with torch.set_grad_enabled(differentiable):
        return torch.cat([G.encode_text(part).to(torch.float32) for part in tokens.split(batch_size)]) \
            if len(prompts) else torch.zeros([0, G.c_dim], device=device)


def image_preprocessing(clip_net):
    """(image side, mean, std) of a CLIP image tower."""
    size = clip_net.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    cfg = getattr(clip_net.visual, 'preprocess_cfg', None) or {}
    return size, tuple(cfg.get('mean', CLIP_MEAN)), tuple(cfg.get('std', CLIP_STD))


def spherical_distance_squared(x, y):
    """arccos(cosine similarity)^2 per row: the squared angle between the embeddings."""
    cosine = (F.normalize(x, dim=-1) * F.normalize(y, dim=-1)).sum(dim=-1)
    return torch.arccos(cosine.clamp(-1 + 1e-7, 1 - 1e-7)).square()


class CLIPGuide:
    """CLIP guidance: the squared spherical distance between CLIP's embedding of a random crop of the image and
    of its caption, with a frozen CLIP model of its own."""

    def __init__(self, clip_model=None, clip=None, device='cpu', crop=64):
        self.net = load_clip(clip_model=clip_model, clip=clip, device=device)
        self.size, mean, std = image_preprocessing(self.net)
        self.mean = torch.tensor(mean, device=device).reshape(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).reshape(1, -1, 1, 1)
        self.crop = crop
        self.device = device

    def embed_images(self, img):
        """Images in [-1, 1] -> unit CLIP embeddings (a random crop of `crop` pixels, area-resized)."""
        side = img.shape[2]
        if side > self.crop:
            top, left = (int(v) for v in np.random.randint(0, side - self.crop + 1, size=2))
            img = img[:, :, top:top + self.crop, left:left + self.crop]
        if img.shape[1] == 1:
            img = img.repeat(1, 3, 1, 1)
        x = F.interpolate((img.to(torch.float32) + 1) / 2, size=(self.size, self.size), mode='area')
        return F.normalize(self.net.encode_image((x - self.mean) / self.std), dim=-1)

    @torch.no_grad()
    def embed_texts(self, prompts):
        context_length = int(self.net.context_length)
        tokens = tokenize(prompts, context_length, int(self.net.vocab_size)).to(self.device)
        return F.normalize(self.net.encode_text(tokens), dim=-1)

    def distance(self, img, prompts):
        """[N] squared spherical distances."""
        return spherical_distance_squared(self.embed_images(img), self.embed_texts(prompts))

# ----------------------------------------------------------------------------
# DINO.


def _read_checkpoint(path):
    """A state dict from a timm checkpoint file (.safetensors, or a torch file of tensors only)."""
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    state = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('state_dict', 'model', 'teacher'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def load_dino(dino_model=None, dino=None):
    """The timm ViT, in evaluation mode, with its weights."""
    timm = _import('timm', 'timm')
    model = choose(dino_model, 'dino_model', DEFAULT_DINO_MODEL)
    checkpoint = choose(dino, 'dino')
    name, kwargs = model, {}
    if model.endswith('.json'):
        try:
            with open(model) as f:
                spec = json.load(f)
            name, kwargs = spec['model'], dict(spec.get('kwargs', {}))
            assert isinstance(name, str)
        except (OSError, ValueError, KeyError, TypeError, AssertionError) as err:
            raise EncoderError(f'--dino-model: cannot read {model} as {{"model": TIMM_NAME, "kwargs": {{...}}}} '
                               f'({_first_line(err)})') from None
        if checkpoint is None:
            raise EncoderError(f'--dino-model={model} describes a custom ViT: pass its weights with --dino=PATH')
    if checkpoint is not None and not os.path.isfile(checkpoint):
        raise EncoderError(f'--dino: no such checkpoint file: {checkpoint}')
    try:
        with _libraries_quiet():
            net = timm.create_model(name, pretrained=checkpoint is None, **kwargs)
    except Exception as err:  # Unknown names, offline fetches and bad kwargs all end here.
        raise EncoderError(f'cannot create DINO model {name!r} ({_first_line(err)}); offline, download its weights '
                           f'where there is a network and pass --dino=PATH (or set STYLEGAN_DINO)') from None
    if checkpoint is not None:
        try:
            net.load_state_dict(_read_checkpoint(checkpoint))
        except Exception as err:
            raise EncoderError(f'--dino: {checkpoint} does not hold the weights of {name} ({_first_line(err)})') from None
    return net.eval().requires_grad_(False)


def default_hooks(depth):
    """Blocks whose outputs feed the discriminator: the ends of the four quarters (2, 5, 8, 11 of 12)."""
    return sorted({max(depth * (quarter + 1) // 4 - 1, 0) for quarter in range(4)})


def backbone_kwargs(vit):
    """VisionTransformer arguments describing a timm ViT."""
    block = vit.blocks[0]
    plain = (getattr(vit, 'num_prefix_tokens', 1) == 1 and getattr(vit, 'cls_token', None) is not None and
             not getattr(vit, 'no_embed_class', False) and getattr(vit, 'pos_embed', None) is not None and
             isinstance(block.ls1, torch.nn.Identity) and isinstance(block.attn.q_norm, torch.nn.Identity) and
             isinstance(vit.norm_pre, torch.nn.Identity) and isinstance(vit.patch_embed.norm, torch.nn.Identity) and
             type(block.mlp.act).__name__ == 'GELU')
    if not plain:
        raise EncoderError('--dino-model: only plain ViTs with one class token (as DINO\'s) are supported')
    cfg = getattr(vit, 'pretrained_cfg', None) or {}
    patch = vit.patch_embed.patch_size
    return dict(img_size=int(vit.patch_embed.img_size[0]), patch_size=int(patch[0] if isinstance(patch, tuple) else patch),
                width=int(vit.embed_dim), depth=len(vit.blocks), heads=int(block.attn.num_heads),
                mlp_width=int(block.mlp.fc1.out_features), hooks=default_hooks(len(vit.blocks)),
                in_channels=int(vit.patch_embed.proj.in_channels), norm_eps=float(block.norm1.eps),
                mean=tuple(float(v) for v in cfg.get('mean', (0.485, 0.456, 0.406))),
                std=tuple(float(v) for v in cfg.get('std', (0.229, 0.224, 0.225))))


def backbone_state(vit, num_blocks):
    """{VisionTransformer tensor name: tensor} of the first `num_blocks` blocks of a timm ViT."""
    state = dict(patch_weight=vit.patch_embed.proj.weight, patch_bias=vit.patch_embed.proj.bias,
                 cls_token=vit.cls_token, pos_embed=vit.pos_embed)
    for idx in range(num_blocks):
        block = vit.blocks[idx]
        state.update(_block_state(f'blocks.{idx}.', norm1=block.norm1, norm2=block.norm2, fc1=block.mlp.fc1,
                                  fc2=block.mlp.fc2, proj=block.attn.proj, qkv=(block.attn.qkv.weight, block.attn.qkv.bias)))
    return state

# ----------------------------------------------------------------------------
# Building networks from the encoders.


def architecture(sources_dict):
    """(text_encoder_kwargs, backbone_kwargs) read from the loaded models (loading them also fetches the weights
    now, before a run starts)."""
    clip_net = load_clip(sources_dict['clip_model'], sources_dict['clip'])
    dino_net = load_dino(sources_dict['dino_model'], sources_dict['dino'])
    return text_encoder_kwargs(clip_net), backbone_kwargs(dino_net)


def fill_pretrained(G, D, sources_dict):
    """Copies the pretrained text encoder into G (when text-conditional) and the ViT into D."""
    if getattr(G, 'text_encoder', None) is not None:
        clip_net = load_clip(sources_dict['clip_model'], sources_dict['clip'])
        copy_state(G.text_encoder, text_encoder_state(clip_net), what='--clip')
        del clip_net
    vit = load_dino(sources_dict['dino_model'], sources_dict['dino'])
    copy_state(D.backbone, backbone_state(vit, len(D.backbone.blocks)), what='--dino')
