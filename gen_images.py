"""Generate images with a pretrained network pickle, e.g.

    python gen_images.py --outdir=out --trunc=1 --seeds=2 \\
        --network=https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan3-r-afhqv2-512x512.pkl

    python gen_images.py --outdir=out --seeds=0-35 --class=1 --network=cond-cifar10.pkl
    python gen_images.py --outdir=out --projected-w=out/projected_w.npz --network=ffhq.pkl
    python gen_images.py --outdir=out --seeds=0-3 --scale=2 --network=creps-ffhq.pkl
    python gen_images.py --outdir=out --seeds=0-3 --prompt='a lighthouse at dusk' --network=stylegan-t.pkl

The helpers at the top (seed lists, loading a generator, device choice, labels and prompts, rendering
scale, image conversion and atomic PNG writing) are shared with gen_video.py, projector.py and avg_spectra.py.
"""

import hashlib
import itertools
import math
import os
import re
import sys
import zipfile

import click
import numpy as np
import PIL.Image
import torch

import dnnlib
import dnnlib.cli
import legacy
from training import encoders, networks_creps

# ----------------------------------------------------------------------------
# Option parsing.

MAX_SEED = 2 ** 32 - 1  # np.random.RandomState accepts seeds in [0, 2**32).


def parse_range(s):
    """'1,2,5-10' -> [1, 2, 5, 6, 7, 8, 9, 10]; a list passes through unchanged."""
    if isinstance(s, list):
        return s
    values = []
    for part in s.split(','):
        part = part.strip()
        match = re.fullmatch(r'(\d+)-(\d+)', part)
        if match:
            lo, hi = int(match.group(1)), int(match.group(2))
            if hi < lo:
                raise click.BadParameter(f'range {part!r} is empty (end below start)')
            values.extend(range(lo, hi + 1))
        elif re.fullmatch(r'\d+', part):
            values.append(int(part))
        else:
            raise click.BadParameter(f'{part!r} is not a non-negative integer or a range A-B')
    return values


def parse_seeds(s):
    """Like parse_range, but every value must be a valid NumPy seed."""
    seeds = parse_range(s)
    too_big = [seed for seed in seeds if seed > MAX_SEED]
    if too_big:
        raise click.BadParameter(f'seed {too_big[0]} is out of range (seeds go from 0 to {MAX_SEED})')
    return seeds


def parse_vec2(s):
    """'0.1,-0.2' -> (0.1, -0.2)."""
    if isinstance(s, tuple):
        return s
    parts = s.split(',')
    try:
        if len(parts) == 2 and all(math.isfinite(float(p)) for p in parts):
            return (float(parts[0]), float(parts[1]))
    except ValueError:
        pass
    raise click.BadParameter(f'{s!r} is not of the form X,Y (two finite numbers)')

# ----------------------------------------------------------------------------
# Network, device and labels.


def choose_device(verbose=True):
    """The first CUDA GPU if there is one, else the CPU (with a notice, since it is much slower)."""
    device = torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')
    if verbose:
        report_device(device)
    return device


def report_device(device):
    """The notice that work runs on the CPU, printed once the inputs have been checked."""
    if device.type == 'cpu':
        print('No CUDA GPU found: running on the CPU, which is slow for large networks.', file=sys.stderr)


def load_generator(network_pkl, device, option='--network', verbose=True):
    """G_ema of a network pickle (path or URL), in eval mode on `device`; click errors for unusable files."""
    if not dnnlib.util.is_url(network_pkl, allow_file_urls=True) and not os.path.isfile(network_pkl):
        raise click.ClickException(f'{option}: no such file: {network_pkl}')
    if verbose:
        print(f'Loading networks from "{network_pkl}"...')
    try:
        with dnnlib.util.open_url(network_pkl, verbose=verbose) as f:
            G = legacy.load_network_pkl(f)['G_ema']
    except (legacy.NetworkPickleError, dnnlib.util.DownloadError, OSError, ValueError) as e:
        raise click.ClickException(f'{option}: {e}')
    if G is None:
        raise click.ClickException(f'{option}: {network_pkl} holds no G_ema generator')
    return G.eval().requires_grad_(False).to(device)


def generator_fingerprint(G):
    """SHA-256 (hex) of a generator's parameters and buffers (names, types, shapes, values): it names the
    weights, so a pickle and its .safetensors export give the same one. Latents files and pose models record
    it for the generator they belong to."""
    digest = hashlib.sha256()
    for name, tensor in itertools.chain(G.named_parameters(), G.named_buffers()):
        values = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f'{name}:{values.dtype}:{list(tensor.shape)};'.encode())
        digest.update(values.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def make_label(G, class_idx, device, verbose=True):
    """The conditioning label [1, c_dim]: one-hot for --class, empty for unconditional networks."""
    if is_text_conditional(G):  # Its c_dim counts embedding entries, not classes: --class would mislead.
        raise click.ClickException('this network draws images from text (StyleGAN-T), and this tool takes no '
                                   'prompts: use gen_images.py or gen_video.py with --prompt')
    label = torch.zeros([1, G.c_dim], device=device)
    if G.c_dim != 0:
        if class_idx is None:
            raise click.ClickException(f'the network is conditional ({G.c_dim} classes): specify a class with '
                                       f'--class=0..{G.c_dim - 1}')
        if not 0 <= class_idx < G.c_dim:
            raise click.ClickException(f'--class={class_idx} is out of range: the network has {G.c_dim} classes '
                                       f'(0..{G.c_dim - 1})')
        label[:, class_idx] = 1
    elif class_idx is not None and verbose:
        print(f'warn: --class={class_idx} ignored when running on an unconditional network', file=sys.stderr)
    return label


def is_text_conditional(G):
    """True for text-to-image generators (StyleGAN-T with a text encoder): their c is a prompt's embedding."""
    return getattr(G, 'text_encoder', None) is not None


def read_prompts(prompt, prompts_file):
    """The prompts of --prompt or --prompts, or None for neither; checked before any network is loaded."""
    if prompt is not None and prompts_file is not None:
        raise click.ClickException('--prompt and --prompts both give the text: use one of them')
    if prompt is not None:
        if not prompt.strip():
            raise click.ClickException("--prompt is empty: describe the image, e.g. --prompt='a red bicycle'")
        return [prompt]
    return read_prompts_file(prompts_file) if prompts_file is not None else None


def read_prompts_file(path, option='--prompts'):
    """The non-blank lines of a UTF-8 text file, without surrounding white space."""
    if not os.path.isfile(path):
        raise click.ClickException(f'{option}: no such file: {path}')
    try:
        with open(path, encoding='utf-8-sig') as f:  # -sig: skips the byte-order mark some editors write.
            prompts = [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise click.ClickException(f'{option}: {path} is not UTF-8 text (invalid byte at offset {e.start}): save it as '
                                   f'UTF-8') from None
    except OSError as e:
        raise click.ClickException(f'{option}: cannot read {path}: {e.strerror or e}') from None
    if not prompts:
        raise click.ClickException(f'{option}: {path} holds no prompts: write one prompt per line')
    return prompts


def check_prompt_use(G, class_idx, prompts, option='--prompt'):
    """Refuses prompts for networks without a text encoder, and text networks without a prompt or with --class."""
    if not is_text_conditional(G):
        if prompts is not None:
            fix = f'leave out {option}' + (f' and pick a class with --class=0..{G.c_dim - 1}' if G.c_dim else '')
            raise click.ClickException(f'{option}: this network has no text encoder (only StyleGAN-T networks trained '
                                       f'on captions take prompts): {fix}')
        return
    if class_idx is not None:
        raise click.ClickException('--class: this network is conditioned on text, not on classes: describe the image '
                                   'with --prompt instead')
    if prompts is None:
        raise click.ClickException("this network draws images from text: describe the image with --prompt='TEXT'")


def embed_prompts(G, prompts, device, option='--prompt'):
    """One text embedding [1, c_dim] per prompt. Each prompt is encoded on its own, so that its images do not
    depend on which other prompts share the batch (batched matrix products may round differently)."""
    try:
        return [encoders.encode_prompts(G, [prompt], device=device) for prompt in prompts]
    except encoders.EncoderError as e:
        raise click.ClickException(f'{option}: {e}') from None


def make_labels(G, class_idx, prompts, device, option='--prompt', verbose=True):
    """The conditioning of the images: one embedding [1, c_dim] per prompt for a text-to-image network, else the
    single label of make_label(). Refuses prompts and classes that do not fit the network."""
    check_prompt_use(G, class_idx, prompts, option)
    if is_text_conditional(G):
        return embed_prompts(G, prompts, device, option)
    return [make_label(G, class_idx, device, verbose=verbose)]


def seed_to_z(seed, z_dim):
    """The latent of a seed, as in the official scripts: RandomState(seed).randn(1, z_dim) (as float32)."""
    return np.random.RandomState(seed).randn(1, z_dim).astype(np.float32)


def make_transform(translate, angle):
    """The 3x3 matrix of StyleGAN3's input transform: a rotation by `angle` degrees (counter-clockwise in the
    image), then a shift by `translate` = (x, y)."""
    radians = np.deg2rad(angle)
    cos, sin = np.cos(radians), np.sin(radians)
    return np.array([[cos, sin, translate[0]],
                     [-sin, cos, translate[1]],
                     [0.0, 0.0, 1.0]])


def has_input_transform(G):
    """True for generators with a user-settable input transform (StyleGAN3)."""
    return hasattr(G.synthesis, 'input') and isinstance(getattr(G.synthesis.input, 'transform', None), torch.Tensor)


def set_input_transform(G, translate, rotate):
    """Makes a StyleGAN3 generator render its output translated and rotated (the inverse moves the input grid)."""
    if has_input_transform(G):
        m = np.linalg.inv(make_transform(translate, rotate))
        G.synthesis.input.transform.copy_(torch.from_numpy(m))
    elif tuple(translate) != (0, 0) or rotate != 0:
        raise click.ClickException('--translate and --rotate need a network with an input transform (StyleGAN3); '
                                   'this network has none')


def rendered_size(G, scale):
    """Side length of the images that `G` renders at `scale`, or a click error naming --scale if it cannot."""
    try:
        return networks_creps.rendering_resolution(G, scale)
    except ValueError as e:
        raise click.ClickException(f'--scale: {e}')


def rendering_scale(G, scale, verbose=True):
    """`networks_creps.rendering_scale(G, scale)` (a context manager), or a click error naming --scale."""
    size = rendered_size(G, scale)
    if verbose and scale != 1:
        print(f'Rendering at {size}x{size} ({scale:g} times the training resolution {G.img_resolution})')
    return networks_creps.rendering_scale(G, scale)

# ----------------------------------------------------------------------------
# Images.


def images_to_uint8(img):
    """Generator output NCHW in about [-1, 1] -> uint8 NHWC (the official conversion)."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def save_image(image, path):
    """Writes a uint8 HWC array (C = 1 or 3) as PNG via a temporary file and a rename."""
    image = np.asarray(image)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] in (1, 3)
    pil_image = PIL.Image.fromarray(image[:, :, 0], 'L') if image.shape[2] == 1 else PIL.Image.fromarray(image, 'RGB')
    with dnnlib.util.atomic_path(path) as tmp_path:
        pil_image.save(tmp_path, format='PNG')


def save_npz_atomic(path, **arrays):
    """np.savez via a temporary file and a rename."""
    dnnlib.util.write_atomically(path, lambda f: np.savez(f, **arrays))


def load_projected_w(path, G, device):
    """The 'w' array [N, num_ws, w_dim] of a projector.py output file, checked against G."""
    if not os.path.isfile(path):
        raise click.ClickException(f'--projected-w: no such file: {path}')
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, 'files'):
                raise ValueError('an .npy array, not an .npz archive')
            if 'w' not in data.files:
                raise click.ClickException(f"--projected-w: {path} holds no 'w' array (it has: {', '.join(data.files)})")
            ws = data['w']
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = 'a pickle or some other kind of file' if 'allow_pickle' in str(e) else str(e).splitlines()[0]
        raise click.ClickException(f'--projected-w: cannot read {path}: not an .npz file of projector.py ({reason})') from None
    if not np.issubdtype(ws.dtype, np.floating) or not np.isfinite(ws).all():
        raise click.ClickException(f"--projected-w: 'w' in {path} holds {ws.dtype} values that are not all finite numbers")
    if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
        raise click.ClickException(f"--projected-w: 'w' has shape {list(ws.shape)}, but this network needs "
                                   f"[N, {G.num_ws}, {G.w_dim}]")
    return torch.from_numpy(ws.astype(np.float32)).to(device)

# ----------------------------------------------------------------------------


@click.command()
@click.option('network_pkl', '--network', help='Network pickle to sample from (path or URL)', metavar='PATH|URL', required=True)
@legacy.trust_pickle_option
@click.option('--seeds', type=parse_seeds, help='Seeds of the latents, one image each, e.g. 0-3,7', metavar='LIST')
@click.option('--trunc', 'truncation_psis', type=dnnlib.cli.FiniteFloatList(), help='Pull w towards the average by this factor (1 = none); a list, e.g. 0.5,0.7,1, renders each', default='1', show_default=True, metavar='FLOAT[,FLOAT...]')
@click.option('--class', 'class_idx', type=click.IntRange(min=0), help='Class index for conditional networks')
@click.option('--prompt', help='Text of every image, for text-to-image networks (StyleGAN-T)', metavar='TEXT')
@click.option('prompts_file', '--prompts', help='UTF-8 file of prompts, one a line (blank lines skipped): renders every seed for every prompt, and prompt-grid.png (a row per prompt, a column per seed)', metavar='FILE')
@click.option('--noise-mode', help='Per-pixel noise inputs: stored, fresh, or off', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--translate', help='Shift the output by X,Y (StyleGAN3 only)', type=parse_vec2, default='0,0', show_default=True, metavar='VEC2')
@click.option('--rotate', help='Rotate the output by this many degrees (StyleGAN3 only)', type=dnnlib.cli.FiniteFloat(), default=0, show_default=True, metavar='ANGLE')
@click.option('--projected-w', help='Render images from saved latents (projector.py output) instead of seeds', type=str, metavar='FILE')
@click.option('--scale', help='Render at this multiple of the training resolution (CREPS only)', type=dnnlib.cli.FiniteFloat(min=0, min_open=True), default=1, show_default=True, metavar='FLOAT')
@click.option('--grid', help='Write one image, trunc-grid.png: a row per seed, a column per --trunc value, after the image of w_avg', is_flag=True)
@click.option('--mix-seeds', help='Write mix-grid.png: rows --seeds, columns these seeds, each tile a row with the column\'s styles at --mix-layers', type=parse_seeds, metavar='LIST')
@click.option('--mix-layers', help='Style inputs (ws) that --mix-seeds take from the column seed', type=parse_range, default='0-6', show_default=True, metavar='LIST')
@click.option('--outdir', help='Folder for the PNG files (created if needed)', type=str, required=True, metavar='DIR')
def generate_images(network_pkl, seeds, truncation_psis, class_idx, prompt, prompts_file, noise_mode, translate, rotate,
                    projected_w, scale, grid, mix_seeds, mix_layers, outdir):
    """Render images from a network pickle: one PNG per seed, or one per saved latent.

    \b
    Examples:
    \b
    # Four images from a StyleGAN3-R AFHQv2 network, without truncation.
    python gen_images.py --outdir=out --trunc=1 --seeds=0-3 \\
        --network=https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan3-r-afhqv2-512x512.pkl
    \b
    # Class 1 of a conditional network, with truncation 0.7.
    python gen_images.py --outdir=out --trunc=0.7 --seeds=10-12 --class=1 --network=cond.pkl
    \b
    # The latents found by projector.py.
    python gen_images.py --outdir=out --projected-w=out/projected_w.npz --network=ffhq.pkl
    \b
    # A CREPS network at twice its training resolution (the images have int(resolution * scale) pixels).
    python gen_images.py --outdir=out --seeds=0-3 --scale=2 --network=creps-ffhq.pkl
    \b
    # Grids: seeds by truncation (after the image of w_avg), and style mixing of rows and columns.
    python gen_images.py --outdir=out --seeds=0-5 --trunc=0.5,0.7,1 --grid --network=ffhq.pkl
    python gen_images.py --outdir=out --seeds=0-3 --mix-seeds=10-14 --mix-layers=0-3 --network=ffhq.pkl
    \b
    # A text-to-image network (StyleGAN-T): one prompt for every seed, or a file of prompts, which also
    # writes prompt-grid.png (a row per prompt, a column per seed) beside seedSSSS-promptPP.png.
    python gen_images.py --outdir=out --seeds=0-3 --prompt='a lighthouse at dusk' --network=stylegan-t.pkl
    python gen_images.py --outdir=out --seeds=0-7 --prompts=prompts.txt --trunc=0.8 --network=stylegan-t.pkl
    """
    if seeds is None and projected_w is None:
        raise click.ClickException('specify --seeds or --projected-w')
    if projected_w is not None and (grid or mix_seeds is not None):
        raise click.ClickException('--grid and --mix-seeds render seeds; they cannot be used with --projected-w')
    if mix_seeds is not None and len(truncation_psis) > 1:
        raise click.ClickException('--mix-seeds renders one truncation: give a single --trunc value')
    prompts = read_prompts(prompt, prompts_file)
    prompt_option = '--prompts' if prompts_file is not None else '--prompt'
    if prompts_file is not None and projected_w is None and (grid or mix_seeds is not None):
        raise click.ClickException('--grid and --mix-seeds take a single --prompt; --prompts writes its own grid, '
                                   'prompt-grid.png (a row per prompt, a column per seed)')
    dnnlib.cli.check_output_dir(outdir, '--outdir')
    device = choose_device(verbose=False)
    G = load_generator(network_pkl, device)
    set_input_transform(G, translate, rotate)
    scaled = rendering_scale(G, scale)
    ws = load_projected_w(projected_w, G, device) if projected_w is not None else None
    labels = make_labels(G, class_idx, prompts, device, option=prompt_option) if projected_w is None else None
    report_device(device)
    force_fp32 = (device.type != 'cuda')  # Half precision on the CPU is slow and not supported everywhere.
    if projected_w is not None:
        if seeds is not None:
            print('warn: --seeds is ignored when using --projected-w', file=sys.stderr)
        if class_idx is not None:
            print('warn: --class is ignored when using --projected-w (the latents already hold it)', file=sys.stderr)
        if prompts is not None:
            print(f'warn: {prompt_option} is ignored when using --projected-w (the latents already hold the text)',
                  file=sys.stderr)
        print(f'Generating {ws.shape[0]} images from "{projected_w}"...')
        images = projected_images(G, ws, noise_mode=noise_mode, force_fp32=force_fp32)
    else:
        if mix_seeds is not None:
            check_layers(G, mix_layers, '--mix-layers')
        render = dict(noise_mode=noise_mode, force_fp32=force_fp32)
        if prompts_file is not None:
            print_prompts(prompts)
            images = prompt_images(G, seeds, labels, truncation_psis=truncation_psis, **render)
        elif grid or mix_seeds is not None:
            images = grid_images(G, seeds, labels[0], truncation_psis, grid, mix_seeds, mix_layers, **render)
        else:
            images = seed_images(G, seeds, labels[0], truncation_psis=truncation_psis, **render)
    os.makedirs(outdir, exist_ok=True)
    try:
        with scaled:
            for fname, img in images:
                if isinstance(img, torch.Tensor):
                    img = images_to_uint8(img)[0].cpu().numpy()
                save_image(img, os.path.join(outdir, fname))
    except OSError as e:  # The disk filled up, or the folder went away, since the check.
        raise click.ClickException(f'--outdir: cannot write in {outdir}: {e.strerror or e}') from None


def projected_images(G, ws, noise_mode, force_fp32):
    """(file name, image) of every saved latent."""
    for idx, w in enumerate(ws):
        yield f'proj{idx:02d}.png', G.synthesis(w.unsqueeze(0), noise_mode=noise_mode, force_fp32=force_fp32)


def seed_images(G, seeds, label, truncation_psis, noise_mode, force_fp32):
    """(file name, image) of every seed, and with several truncations, of every seed and truncation."""
    for seed_idx, seed in enumerate(seeds):
        print(f'Generating image for seed {seed} ({seed_idx + 1}/{len(seeds)}) ...')
        for psi in truncation_psis:
            fname = f'seed{seed:04d}.png' if len(truncation_psis) == 1 else f'seed{seed:04d}-trunc{psi:g}.png'
            yield fname, render_seed(G, seed, label, truncation_psi=psi, noise_mode=noise_mode, force_fp32=force_fp32)


def print_prompts(prompts):
    """Says which prompt each index in the file names stands for (blank lines of the file are not counted)."""
    for prompt_idx, prompt in enumerate(prompts):
        print(f'prompt{prompt_idx:02d}: {prompt}')


def prompt_images(G, seeds, labels, truncation_psis, noise_mode, force_fp32):
    """(file name, image) of every prompt embedding in `labels` and seed, and per truncation the grid of them:
    a row per prompt, a column per seed. The grid reuses the single images' tiles, so the two always agree."""
    for psi in truncation_psis:
        suffix = '' if len(truncation_psis) == 1 else f'-trunc{psi:g}'
        tiles = []
        for prompt_idx, label in enumerate(labels):
            for seed in seeds:
                print(f'Generating image for seed {seed}, prompt{prompt_idx:02d} ({len(tiles) + 1}/{len(labels) * len(seeds)}) ...')
                tiles.append(to_tile(render_seed(G, seed, label, truncation_psi=psi, noise_mode=noise_mode,
                                                 force_fp32=force_fp32)))
                yield f'seed{seed:04d}-prompt{prompt_idx:02d}{suffix}.png', tiles[-1]
        yield f'prompt-grid{suffix}.png', tile_images(tiles, num_cols=len(seeds))


def grid_images(G, seeds, label, truncation_psis, grid, mix_seeds, mix_layers, noise_mode, force_fp32):
    """(file name, image) of the --grid and --mix-seeds grids. A generator, so that they are rendered where the
    caller iterates, inside its rendering scale."""
    render = dict(noise_mode=noise_mode, force_fp32=force_fp32)
    if grid:
        yield 'trunc-grid.png', truncation_grid(G, seeds, truncation_psis, label, **render)
    if mix_seeds is not None:
        yield 'mix-grid.png', style_mixing_grid(G, seeds, mix_seeds, mix_layers, label, truncation_psi=truncation_psis[0],
                                                **render)

# ----------------------------------------------------------------------------
# Grids. Every tile is rendered on its own, exactly as the single image of the same seed would be.


def render_seed(G, seed, label, truncation_psi, noise_mode, force_fp32):
    z = torch.from_numpy(seed_to_z(seed, G.z_dim)).to(label.device)
    return G(z, label, truncation_psi=truncation_psi, noise_mode=noise_mode, force_fp32=force_fp32)


def render_average_w(G, noise_mode, force_fp32, label=None):
    """The image of w_avg, the point truncation pulls every latent toward (what --trunc=0 gives)."""
    if is_text_conditional(G):
        # w_avg covers only the latent part of w; the rest is the prompt's embedding, which mapping appends.
        # Truncation by 0 replaces the latent part by w_avg exactly, whatever z is.
        ws = G.mapping(torch.zeros([1, G.z_dim], device=label.device), label, truncation_psi=0)
    else:
        ws = G.mapping.w_avg.reshape(1, 1, G.w_dim).repeat(1, G.num_ws, 1)
    return G.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32)


def render_mixed(G, row_seed, col_seed, layers, label, truncation_psi, noise_mode, force_fp32):
    """The image of `row_seed` whose ws at `layers` come from `col_seed` (both truncated alike)."""
    ws = [G.mapping(torch.from_numpy(seed_to_z(seed, G.z_dim)).to(label.device), label, truncation_psi=truncation_psi)
          for seed in (row_seed, col_seed)]
    mixed = ws[0].clone()
    mixed[:, layers] = ws[1][:, layers]
    return G.synthesis(mixed, noise_mode=noise_mode, force_fp32=force_fp32)


def check_layers(G, layers, option):
    out_of_range = [layer for layer in layers if layer >= G.num_ws]
    if out_of_range:
        raise click.ClickException(f'{option}: style input {out_of_range[0]} does not exist: this network has '
                                   f'{G.num_ws} (0..{G.num_ws - 1})')


def tile_images(tiles, num_cols):
    """Row-major uint8 HWC tiles of one size (None: a black tile) -> one uint8 HWC image."""
    shape = next(tile.shape for tile in tiles if tile is not None)
    num_rows = -(-len(tiles) // num_cols)
    canvas = np.zeros([num_rows * shape[0], num_cols * shape[1], shape[2]], dtype=np.uint8)
    for idx, tile in enumerate(tiles):
        if tile is not None:
            assert tile.shape == shape
            row, col = divmod(idx, num_cols)
            canvas[row * shape[0]:(row + 1) * shape[0], col * shape[1]:(col + 1) * shape[1]] = tile
    return canvas


def to_tile(img):
    return images_to_uint8(img)[0].cpu().numpy()


def truncation_grid(G, seeds, truncation_psis, label, noise_mode, force_fp32):
    """uint8 HWC: a row per seed; its first tile the image of w_avg, then one tile per truncation."""
    base = to_tile(render_average_w(G, noise_mode=noise_mode, force_fp32=force_fp32, label=label))
    tiles = []
    for seed_idx, seed in enumerate(seeds):
        print(f'Generating grid row for seed {seed} ({seed_idx + 1}/{len(seeds)}) ...')
        tiles.append(base)
        tiles += [to_tile(render_seed(G, seed, label, truncation_psi=psi, noise_mode=noise_mode, force_fp32=force_fp32))
                  for psi in truncation_psis]
    return tile_images(tiles, num_cols=len(truncation_psis) + 1)


def style_mixing_grid(G, row_seeds, col_seeds, layers, label, truncation_psi, noise_mode, force_fp32, tiles_out=None):
    """uint8 HWC: the image of w_avg at the top left, the column seeds along the top, the row seeds down the
    left, and in between each row seed with the column seed's styles at `layers`. `tiles_out`: a dict that
    receives every tile by (row seed, column seed), the seeds' own images under (seed, seed)."""
    render = dict(label=label, truncation_psi=truncation_psi, noise_mode=noise_mode, force_fp32=force_fp32)
    tiles_out = tiles_out if tiles_out is not None else dict()
    for seed in dict.fromkeys(list(row_seeds) + list(col_seeds)):
        tiles_out[(seed, seed)] = to_tile(render_seed(G, seed, **render))
    tiles = [to_tile(render_average_w(G, noise_mode=noise_mode, force_fp32=force_fp32, label=label))]
    tiles += [tiles_out[(seed, seed)] for seed in col_seeds]
    for row_idx, row_seed in enumerate(row_seeds):
        print(f'Generating style-mixing row for seed {row_seed} ({row_idx + 1}/{len(row_seeds)}) ...')
        tiles.append(tiles_out[(row_seed, row_seed)])
        for col_seed in col_seeds:
            tiles_out[(row_seed, col_seed)] = to_tile(render_mixed(G, row_seed, col_seed, layers, **render))
            tiles.append(tiles_out[(row_seed, col_seed)])
    return tile_images(tiles, num_cols=len(col_seeds) + 1)


if __name__ == '__main__':
    generate_images()
