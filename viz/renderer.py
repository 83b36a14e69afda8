"""Builds the visualizer's images from render requests, with no GUI involved.

A `RenderRequest` says everything about one image (pickle, seed, class or prompt, truncation, mixing,
layer view, transform, ...); `Renderer.render` turns it into a `RenderResult` holding a uint8 image or a
one-line error for the window. Integer seeds with the output view give exactly gen_images.py's
image for the same options.
"""

import contextlib
import dataclasses
import importlib
import sys
import time
import traceback
import weakref

import click
import numpy as np
import torch

import gen_images
from training import encoders

# ----------------------------------------------------------------------------
# Requests and results.


@dataclasses.dataclass(frozen=True)
class RenderRequest:
    """One image's settings; equal requests give equal images, so the newest one can replace the others."""
    pkl: str = ''                   # Network pickle: path or URL.
    seed: float = 0.0               # Latent seed; a fractional seed blends the W of its two integer neighbours.
    class_idx: int = 0              # Class of a conditional network (ignored for unconditional ones).
    prompt: str = ''                # Text of a text-to-image network (ignored by the others).
    psi: float = 1.0                # Truncation psi.
    cutoff: int | None = None       # Truncate only the first `cutoff` ws (None: all of them).
    noise_mode: str = 'const'       # 'const', 'random' or 'none'.
    noise_seed: int = 0             # Seeds the noise of noise_mode='random', so it is repeatable.
    mix_seed: int | None = None     # Style mixing: the seed whose ws replace ...
    mix_range: tuple = (0, 0)       # ... the ws [start, end).
    layer: str = ''                 # Layer to show ('' = the output image).
    base_channel: int = 0           # First channel of the layer to show ...
    num_channels: int = 3           # ... and how many (1 = grey, 3 = RGB).
    normalize: bool = True          # Divide each shown layer channel by its largest magnitude.
    brightness_db: float = 0.0      # Gain of the shown layer channels, in dB.
    fft: bool = False               # Show the log magnitude of the 2-D FFT instead of the values.
    fft_range_db: float = 50.0      # Dynamic range of the FFT view (the peak is white, this far below black).
    fft_window: bool = True         # Kaiser window before the FFT (less leakage from the image borders).
    stop_at_layer: bool = False     # Skip the layers after the shown one.
    translate: tuple = (0.0, 0.0)   # Output translation (StyleGAN3 input transform).
    rotate: float = 0.0             # Output rotation in degrees (StyleGAN3 input transform).
    untransform: bool = False       # Undo translate/rotate on the output image, to inspect equivariance.
    force_fp32: bool = True         # Off: layers built for FP16 run in FP16 (CUDA only).
    scale: float = 1.0              # Rendering scale of CREPS networks.


@dataclasses.dataclass(frozen=True)
class NetworkInfo:
    """What the GUI needs to know about the loaded generator."""
    pkl: str
    kind: str                       # 'StyleGAN2', 'StyleGAN3', 'CREPS' or the class name.
    img_resolution: int
    img_channels: int
    z_dim: int
    c_dim: int
    num_ws: int
    has_input_transform: bool
    has_noise: bool
    has_fp16_layers: bool
    is_creps: bool
    device: str
    has_text_encoder: bool = False  # A text-to-image network (StyleGAN-T): it renders the request's prompt.


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    name: str
    shape: tuple                    # (channels, height, width)
    dtype: str


@dataclasses.dataclass
class RenderResult:
    request: RenderRequest
    image: np.ndarray | None = None     # uint8 [H, W, C], C = 1 or 3.
    error: str | None = None            # One line for the window; then `image` is None.
    network: NetworkInfo | None = None
    layers: list = dataclasses.field(default_factory=list)   # LayerInfo of every layer, in forward order.
    channels: tuple = (0, 0, 0)         # (first shown channel, shown channels, channels of the layer).
    notes: list = dataclasses.field(default_factory=list)    # Non-fatal remarks, e.g. a missing layer.
    render_seconds: float = 0.0


class RenderError(Exception):
    """A problem with the request or the network that the window shows as one line."""

# ----------------------------------------------------------------------------
# Pure helpers.


def seed_weights(seed):
    """[(integer seed, weight)] that blend to the fractional `seed` (weights sum to 1, none zero)."""
    if not 0 <= seed <= gen_images.MAX_SEED:
        raise RenderError(f'Seed {seed:g} is out of range: seeds go from 0 to {gen_images.MAX_SEED}')
    low = int(np.floor(seed))
    frac = float(seed - low)
    if frac == 0 or low == gen_images.MAX_SEED:
        return [(low, 1.0)]
    return [(low, 1.0 - frac), (low + 1, frac)]


def input_transform_matrix(translate, rotate):
    """The StyleGAN3 input transform that moves the output by `translate` and rotates it by `rotate` degrees."""
    return np.linalg.inv(gen_images.make_transform(translate, rotate))


def untransform_image(img, translate, rotate):
    """Samples [N, C, H, W] `img` so that content moved by (translate, rotate) moves back (zeros outside)."""
    m = gen_images.make_transform(translate, rotate)
    # grid_sample coordinates run from -1 to 1 across the image, StyleGAN3's from -0.5 to 0.5.
    theta = torch.tensor([[m[0][0], m[0][1], 2 * m[0][2]], [m[1][0], m[1][1], 2 * m[1][2]]],
                         dtype=torch.float32, device=img.device).unsqueeze(0).repeat([img.shape[0], 1, 1])
    grid = torch.nn.functional.affine_grid(theta, list(img.shape), align_corners=False)
    return torch.nn.functional.grid_sample(img.to(torch.float32), grid, mode='bilinear', padding_mode='zeros',
                                           align_corners=False)


def select_channels(x, base_channel, num_channels):
    """Channels [base, base + k) of [C, H, W] `x`, with k = num_channels or 1 if there are fewer; base clamped."""
    total = x.shape[0]
    count = num_channels if total >= num_channels else 1
    base = int(np.clip(base_channel, 0, total - count))
    return x[base:base + count], (base, count, total)


def feature_values(x, normalize, brightness_db):
    """[C, H, W] layer channels -> values for display, about [-1, 1] when normalised."""
    x = x.to(torch.float32)
    if normalize:
        x = x / x.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-8)
    return x * (10 ** (brightness_db / 20))


def fft_magnitude(x, range_db, window):
    """[C, H, W] values -> [C, H, W] in [0, 1]: centred |FFT| in dB, peak at 1, `range_db` below the peak at 0."""
    x = x.to(torch.float32)
    x = x - x.mean(dim=(1, 2), keepdim=True)  # The mean would be a lone bright dot that sets the scale.
    if window:
        height, width = x.shape[1:]
        kaiser = lambda size: torch.kaiser_window(size, periodic=False, beta=8, device=x.device)  # noqa: E731
        x = x * torch.outer(kaiser(height), kaiser(width))
    spectrum = torch.fft.fftshift(torch.fft.fft2(x), dim=(1, 2)).abs()
    db = 20 * torch.log10(spectrum.clamp_min(1e-12))
    db = db - db.amax(dim=(1, 2), keepdim=True)
    return (db / range_db + 1).clamp(0, 1)


def values_to_uint8(x):
    """[C, H, W] values about [-1, 1] -> uint8 [H, W, C], as gen_images.py converts images."""
    return gen_images.images_to_uint8(x.unsqueeze(0))[0].cpu().numpy()


def unit_to_uint8(x):
    """[C, H, W] in [0, 1] -> uint8 [H, W, C]."""
    return (x * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def creps_api():
    """(is_creps, rendering_scale) from training.networks_creps, or None while that module is not there."""
    try:
        module = importlib.import_module('training.networks_creps')
    except ModuleNotFoundError as e:
        if e.name in ('training.networks_creps', 'training'):
            return None
        raise
    is_creps = getattr(module, 'is_creps', None)
    rendering_scale = getattr(module, 'rendering_scale', None)
    if not callable(is_creps) or not callable(rendering_scale):
        return None
    return is_creps, rendering_scale

# ----------------------------------------------------------------------------
# Layer capture with forward hooks.


class _StopRendering(Exception):
    """Raised by a hook to skip the layers after the shown one."""


class LayerCapture:
    """Records the name and shape of every 4-D output of the synthesis network's modules, keeps the tensor of one.

    With `row_bands`, a module that runs again on a band of rows of a map it already produced (CREPS renders its
    per-pixel stage in bands of rows without autograd) extends that map instead of adding a layer.
    """

    def __init__(self, synthesis, selected='', stop=False, row_bands=False):
        self.synthesis = synthesis
        self.selected = selected
        self.stop = stop and not row_bands  # Stopping after the first band would show part of the map.
        self.row_bands = row_bands
        self.layers = []
        self.tensor = None
        self._index = {}  # layer name -> position in self.layers
        self._seen = {}  # id -> weak reference: a freed tensor's id is reused by later tensors.
        self._handles = []

    def __enter__(self):
        for name, module in self.synthesis.named_modules():
            if name:
                self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc_info):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _was_seen(self, tensor):
        ref = self._seen.get(id(tensor))
        return ref is not None and ref() is tensor

    def _extend_band(self, layer_name, tensor):
        """Appends `tensor` as the next rows of the layer's map; False when it is not such a band."""
        if not self.row_bands or layer_name not in self._index:
            return False
        info = self.layers[self._index[layer_name]]
        channels, height, width = info.shape
        if (tensor.shape[1], tensor.shape[3]) != (channels, width):
            return False
        self.layers[self._index[layer_name]] = dataclasses.replace(info, shape=(channels, height + tensor.shape[2], width))
        if layer_name == self.selected:
            self.tensor = torch.cat([self.tensor, tensor.detach()], dim=2)
        return True

    def _hook(self, name):
        def hook(_module, _inputs, output):
            outputs = list(output) if isinstance(output, (tuple, list)) else [output]
            for idx, tensor in enumerate(outputs):
                if not isinstance(tensor, torch.Tensor) or tensor.ndim != 4 or self._was_seen(tensor):
                    continue  # Styles and other vectors, and tensors a parent passes on unchanged.
                self._seen[id(tensor)] = weakref.ref(tensor)
                layer_name = name if len(outputs) == 1 else f'{name}[{idx}]'
                if self._extend_band(layer_name, tensor):
                    continue
                self._index[layer_name] = len(self.layers)
                self.layers.append(LayerInfo(layer_name, tuple(tensor.shape[1:]), str(tensor.dtype).replace('torch.', '')))
                if layer_name == self.selected:
                    self.tensor = tensor.detach()
                    if self.stop:
                        raise _StopRendering()
        return hook

# ----------------------------------------------------------------------------


class Renderer:
    """Loads generators (keeping the last few) and renders requests; never raises for a bad request."""

    def __init__(self, device=None, max_cached_networks=2):
        self.device = device if device is not None else gen_images.choose_device(verbose=False)
        self.max_cached_networks = max_cached_networks
        self._networks = {}  # pkl -> (G, NetworkInfo), most recently used last.
        self._last_prompt = None  # (weak reference to G, prompt, embedding) of the last prompt encoded.

    def render(self, request):
        result = RenderResult(request=request)
        start = time.perf_counter()
        try:
            G, result.network = self._network(request.pkl)
            with torch.no_grad():
                self._render(G, result)
        except RenderError as e:
            result.error = str(e)
        except Exception as e:  # A bug or an unusual network: show it in the window, keep the details on stderr.
            traceback.print_exc(file=sys.stderr)
            result.error = f'Rendering failed ({type(e).__name__}: {e})'
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        result.render_seconds = time.perf_counter() - start
        return result

    # Networks.

    def _network(self, pkl):
        if not pkl:
            raise RenderError('No network loaded: enter a pickle path or URL in the Pickle panel')
        if pkl in self._networks:
            self._networks[pkl] = self._networks.pop(pkl)  # Most recently used last.
            return self._networks[pkl]
        try:
            G = gen_images.load_generator(pkl, self.device, option='Pickle', verbose=False)
        except click.ClickException as e:
            raise RenderError(e.format_message()) from None
        if not (hasattr(G, 'mapping') and hasattr(G, 'synthesis') and hasattr(G, 'z_dim')):
            raise RenderError(f'{pkl}: G_ema is a {type(G).__name__}, not a generator with mapping and synthesis networks')
        entry = (G, self._describe(pkl, G))
        self._networks[pkl] = entry
        while len(self._networks) > self.max_cached_networks:
            del self._networks[next(iter(self._networks))]
        return entry

    def _describe(self, pkl, G):
        api = creps_api()
        is_creps = bool(api is not None and api[0](G))
        has_transform = gen_images.has_input_transform(G)
        if is_creps:
            kind = 'CREPS'
        elif hasattr(G, 'text_encoder'):  # None in unconditional StyleGAN-T networks, but there.
            kind = 'StyleGAN-T'
        elif has_transform:
            kind = 'StyleGAN3'
        elif hasattr(G.synthesis, 'block_resolutions'):
            kind = 'StyleGAN2'
        else:
            kind = type(G).__name__
        modules = list(G.synthesis.modules())
        return NetworkInfo(
            pkl=pkl, kind=kind, img_resolution=int(G.img_resolution), img_channels=int(G.img_channels),
            z_dim=int(G.z_dim), c_dim=int(G.c_dim), num_ws=int(G.num_ws), has_input_transform=has_transform,
            has_noise=any(getattr(m, 'use_noise', False) and hasattr(m, 'noise_const') for m in modules),
            has_fp16_layers=any(getattr(m, 'use_fp16', False) for m in modules),
            is_creps=is_creps, device=str(self.device), has_text_encoder=gen_images.is_text_conditional(G))

    # Latents.

    def _prompt_embedding(self, G, prompt):
        """[1, c_dim] text embedding of `prompt`. The last one is kept: every change of seed, truncation or layer
        renders the same prompt again."""
        cached = self._last_prompt
        if cached is not None and cached[0]() is G and cached[1] == prompt:
            return cached[2]
        try:
            embedding = encoders.encode_prompts(G, [prompt], device=self.device)
        except encoders.EncoderError as e:
            raise RenderError(str(e)) from None
        self._last_prompt = (weakref.ref(G), prompt, embedding)
        return embedding

    def _label(self, G, class_idx):
        label = torch.zeros([1, G.c_dim], device=self.device)
        if G.c_dim > 0:
            if not 0 <= class_idx < G.c_dim:
                raise RenderError(f'Class {class_idx} is out of range: this network has {G.c_dim} classes '
                                  f'(0..{G.c_dim - 1}); pick one in the Latent panel')
            label[:, class_idx] = 1
        return label

    def _seed_ws(self, G, seed, label, psi, cutoff):
        z = torch.from_numpy(gen_images.seed_to_z(seed, G.z_dim)).to(self.device)
        return G.mapping(z, label, truncation_psi=psi, truncation_cutoff=cutoff)

    def _ws(self, G, req):
        text = gen_images.is_text_conditional(G)
        label = self._prompt_embedding(G, req.prompt) if text else self._label(G, req.class_idx)
        ws = None
        for seed, weight in seed_weights(req.seed):
            part = self._seed_ws(G, seed, label, req.psi, req.cutoff)
            if weight != 1:
                part = part * weight
            ws = part if ws is None else ws + part
        if req.mix_seed is not None:
            start, end = (int(np.clip(v, 0, G.num_ws)) for v in req.mix_range)
            if end > start:
                mix_seed, _ = seed_weights(req.mix_seed)[0]
                mix_ws = self._seed_ws(G, mix_seed, label, req.psi, req.cutoff)
                ws = ws.clone()
                ws[:, start:end] = mix_ws[:, start:end]
        return ws

    # Rendering.

    def _render(self, G, result):
        req, info = result.request, result.network
        if req.noise_mode not in ('const', 'random', 'none'):
            raise RenderError(f'Unknown noise mode {req.noise_mode!r}: use const, random or none')
        moved = tuple(req.translate) != (0, 0) or req.rotate != 0
        if info.has_input_transform:
            G.synthesis.input.transform.copy_(torch.from_numpy(input_transform_matrix(req.translate, req.rotate)))
        elif moved:
            raise RenderError(f'Translate and rotate need a StyleGAN3 network (one with an input transform); '
                              f'this {info.kind} network has none: set them to 0 in the Equivariance panel')
        api = creps_api() if info.is_creps else None
        if req.scale != 1 and api is None:
            raise RenderError(f'A rendering scale other than 1 needs a CREPS network; this one is {info.kind}')

        ws = self._ws(G, req)
        if info.has_text_encoder and not req.prompt.strip():
            result.notes.append('No prompt: showing the image of empty text; type a prompt in the Latent panel')
        force_fp32 = req.force_fp32 or self.device.type != 'cuda'
        capture = LayerCapture(G.synthesis, selected=req.layer, stop=req.stop_at_layer, row_bands=info.is_creps)
        with contextlib.ExitStack() as stack:
            if req.noise_mode == 'random':
                stack.enter_context(torch.random.fork_rng(devices=[self.device] if self.device.type == 'cuda' else []))
                torch.manual_seed(req.noise_seed)
            if api is not None and req.scale != 1:
                try:
                    stack.enter_context(api[1](G, req.scale))
                except ValueError as e:
                    raise RenderError(f'Scale: {e}') from None
            stack.enter_context(capture)
            try:
                img = G.synthesis(ws, noise_mode=req.noise_mode, force_fp32=force_fp32)
            except _StopRendering:
                img = None
        result.layers = capture.layers

        if req.layer and capture.tensor is None:
            result.notes.append(f'This network has no layer {req.layer!r}: showing the output image')
        if req.layer and capture.tensor is not None:
            values, result.channels = select_channels(capture.tensor[0], req.base_channel, req.num_channels)
            values = feature_values(values, req.normalize, req.brightness_db)
            if req.untransform and moved:
                result.notes.append('Untransform applies to the output image only')
        else:
            values = img[0].to(torch.float32)
            result.channels = (0, values.shape[0], values.shape[0])
            if req.untransform and moved:
                values = untransform_image(values.unsqueeze(0), req.translate, req.rotate)[0]
        result.image = unit_to_uint8(fft_magnitude(values, req.fft_range_db, req.fft_window)) if req.fft \
            else values_to_uint8(values)
