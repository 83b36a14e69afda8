"""Render a looping latent-interpolation video with a pretrained network pickle, e.g.

    python gen_video.py --output=lerp.mp4 --trunc=1 --seeds=0-31 --grid=4x2 \\
        --network=https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan3-r-afhqv2-512x512.pkl

    python gen_video.py --output=lerp.mp4 --seeds=0-7 --grid=2x1 --scale=2 --network=creps-ffhq.pkl
    python gen_video.py --output=lerp.mp4 --seeds=0-7 --prompt='a lighthouse at dusk' --network=stylegan-t.pkl
"""

import contextlib
import os
import re

import click
import imageio
import numpy as np
import scipy.interpolate
import torch
import tqdm

import dnnlib
import dnnlib.cli
import gen_images
import legacy
from training import networks_creps

# ----------------------------------------------------------------------------


def parse_grid(s):
    """'4x2' or '4,2' -> (4, 2): columns and rows."""
    if isinstance(s, tuple):
        return s
    match = re.fullmatch(r'(\d+)[x,](\d+)', s)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise click.BadParameter(f'{s!r} is not of the form WxH or W,H with W, H >= 1')
    return (int(match.group(1)), int(match.group(2)))


def layout_grid(img, grid_w, grid_h):
    """NCHW images in about [-1, 1] (N = grid_w * grid_h, row-major) -> one uint8 HWC frame with 3 channels."""
    batch_size, channels, img_h, img_w = img.shape
    assert batch_size == grid_w * grid_h
    img = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    img = img.reshape(grid_h, grid_w, channels, img_h, img_w).permute(0, 3, 1, 4, 2)
    img = img.reshape(grid_h * img_h, grid_w * img_w, channels)
    if channels == 1:
        img = img.repeat(1, 1, 3)  # Video codecs want colour frames.
    return img.cpu().numpy()


def keyframe_seeds(seeds, num_keyframes, grid_w, grid_h, shuffle_seed=None):
    """The seed of every keyframe of every grid cell: [grid_h, grid_w, num_keyframes], cycling through `seeds`."""
    num_cells = grid_w * grid_h
    if num_keyframes is None:
        if len(seeds) % num_cells != 0:
            raise click.ClickException(f'the number of seeds ({len(seeds)}) must be divisible by the grid size '
                                       f'W*H = {num_cells}, or give --num-keyframes')
        num_keyframes = len(seeds) // num_cells
    all_seeds = np.array([seeds[idx % len(seeds)] for idx in range(num_keyframes * num_cells)], dtype=np.int64)
    if shuffle_seed is not None:
        np.random.RandomState(shuffle_seed).shuffle(all_seeds)
    return all_seeds.reshape(grid_h, grid_w, num_keyframes)


def looping_interpolator(keyframes, kind='cubic', wraps=2):
    """A function t -> w that passes through keyframe k at t = k and loops with period len(keyframes).

    The spline is fitted to `2 * wraps + 1` copies of the keyframes laid end to end, so that around
    the middle copy it is smooth across the wrap-around from the last keyframe back to the first.
    """
    num_keyframes = keyframes.shape[0]
    x = np.arange(-num_keyframes * wraps, num_keyframes * (wraps + 1))
    y = np.tile(keyframes, [wraps * 2 + 1] + [1] * (keyframes.ndim - 1))
    return scipy.interpolate.interp1d(x, y, kind=kind, axis=0)


VIDEO_EXTENSIONS = ('.mp4', '.mkv', '.mov', '.avi', '.m4v')  # Containers that take the H.264 stream written here.


@contextlib.contextmanager
def atomic_video_writer(output, fps, codec='libx264', **video_kwargs):
    """An imageio writer for `output` that writes to a temporary file, renamed into place on success."""
    # Keep the extension on the temporary file: it selects the format.
    with dnnlib.util.atomic_path(output, suffix=os.path.splitext(output)[1]) as tmp_path:
        # macro_block_size=1: keep the exact frame size (any even size works with H.264) instead of resizing.
        writer = imageio.get_writer(tmp_path, mode='I', fps=fps, codec=codec, macro_block_size=1, **video_kwargs)
        try:
            yield writer
        finally:
            writer.close()


def check_frame_size(G, scale, grid_w, grid_h):
    """Refuses frames of odd width or height, which H.264 (4:2:0 chroma) cannot encode."""
    size = gen_images.rendered_size(G, scale)
    width, height = grid_w * size, grid_h * size
    if width % 2 or height % 2:
        raise click.ClickException(f'--scale={scale:g} gives {size}x{size} images and {width}x{height} frames; H.264 '
                                   f'needs an even frame width and height: choose a scale giving an even image size')


def render_video(G, output, seeds, label, *, shuffle_seed=None, grid_w=1, grid_h=1, num_keyframes=None, w_frames=120,
                 truncation_psi=1, kind='cubic', fps=60, force_fp32=False, scale=1, **video_kwargs):
    """Writes the interpolation video to `output` (atomically: a temporary file, then a rename).

    `scale` renders a CREPS network at that multiple of its training resolution (networks_creps.rendering_scale).
    """
    device = label.device
    cell_seeds = keyframe_seeds(seeds, num_keyframes, grid_w, grid_h, shuffle_seed)
    num_keyframes = cell_seeds.shape[2]
    zs = torch.from_numpy(np.concatenate([gen_images.seed_to_z(seed, G.z_dim) for seed in cell_seeds.flatten()])).to(device)
    ws = G.mapping(zs, label.expand(zs.shape[0], -1), truncation_psi=truncation_psi)
    ws = ws.reshape(grid_h, grid_w, num_keyframes, G.num_ws, G.w_dim).cpu().numpy()
    interpolators = [[looping_interpolator(ws[yi, xi], kind=kind) for xi in range(grid_w)] for yi in range(grid_h)]

    with networks_creps.rendering_scale(G, scale), atomic_video_writer(output, fps=fps, **video_kwargs) as writer:
        for frame_idx in tqdm.tqdm(range(num_keyframes * w_frames), unit='frame', disable=None):
            t = frame_idx / w_frames
            w = np.stack([interpolators[yi][xi](t) for yi in range(grid_h) for xi in range(grid_w)])
            w = torch.from_numpy(w.astype(np.float32)).to(device)
            img = G.synthesis(w, noise_mode='const', force_fp32=force_fp32)
            writer.append_data(layout_grid(img, grid_w, grid_h))

# ----------------------------------------------------------------------------


@click.command()
@click.option('network_pkl', '--network', help='Network pickle to sample from (path or URL)', metavar='PATH|URL', required=True)
@legacy.trust_pickle_option
@click.option('--seeds', type=gen_images.parse_seeds, help='Seeds of the keyframe latents, e.g. 0-31', metavar='LIST', required=True)
@click.option('--shuffle-seed', type=click.IntRange(0, gen_images.MAX_SEED), help='Shuffle the keyframe seeds with this seed', metavar='INT')
@click.option('--grid', type=parse_grid, help='Columns x rows of videos side by side', default='1x1', show_default=True, metavar='WxH')
@click.option('--num-keyframes', type=click.IntRange(min=1), help='Keyframes per grid cell  [default: seeds / (W*H)]', metavar='INT')
@click.option('--w-frames', type=click.IntRange(min=1), help='Frames from one keyframe to the next', default=120, show_default=True, metavar='INT')
@click.option('--trunc', 'truncation_psi', type=dnnlib.cli.FiniteFloat(), help='Pull w towards the average by this factor (1 = none)', default=1, show_default=True)
@click.option('--class', 'class_idx', type=click.IntRange(min=0), help='Class label for conditional networks')
@click.option('--prompt', help='Text of the whole video, for text-to-image networks (StyleGAN-T)', metavar='TEXT')
@click.option('--scale', help='Render at this multiple of the training resolution (CREPS only)', type=dnnlib.cli.FiniteFloat(min=0, min_open=True), default=1, show_default=True, metavar='FLOAT')
@click.option('--output', help='Video file to write (.mp4, .mkv, .mov, .avi or .m4v)', type=str, required=True, metavar='FILE')
def generate_video(network_pkl, seeds, shuffle_seed, grid, num_keyframes, w_frames, truncation_psi, class_idx, prompt,
                   scale, output):
    """Render a looping video that glides through the latents of the given seeds.

    Every cell of the --grid shows its own sequence of keyframes; w moves between them along
    a cubic spline that closes on itself, so the video loops without a jump. The video has
    num_keyframes * w_frames frames at 60 fps, where num_keyframes defaults to the number of
    seeds divided by W*H (which must then divide evenly). Keyframe seeds are taken from
    --seeds in order, cycling when more are needed, and optionally shuffled. --scale renders
    a CREPS network at that multiple of its training resolution. A text-to-image network
    (StyleGAN-T) needs --prompt: the latents move, the text stays.

    \b
    Example:
    # A 4x2 grid, 4 keyframes per cell, 2 seconds between keyframes.
    python gen_video.py --output=lerp.mp4 --trunc=1 --seeds=0-31 --grid=4x2 \\
        --network=https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan3-r-afhqv2-512x512.pkl
    """
    grid_w, grid_h = grid
    if num_keyframes is None and len(seeds) % (grid_w * grid_h) != 0:
        raise click.ClickException(f'the number of seeds ({len(seeds)}) must be divisible by the grid size '
                                   f'W*H = {grid_w * grid_h}, or give --num-keyframes')
    prompts = gen_images.read_prompts(prompt, None)
    dnnlib.cli.check_output_file(output, '--output', extensions=VIDEO_EXTENSIONS)
    device = gen_images.choose_device(verbose=False)
    G = gen_images.load_generator(network_pkl, device)
    label = gen_images.make_labels(G, class_idx, prompts, device)[0]
    check_frame_size(G, scale, grid_w, grid_h)
    gen_images.report_device(device)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    render_video(G, output, seeds, label, shuffle_seed=shuffle_seed, grid_w=grid_w, grid_h=grid_h,
                 num_keyframes=num_keyframes, w_frames=w_frames, truncation_psi=truncation_psi,
                 force_fp32=(device.type != 'cuda'), scale=scale, bitrate='16M')
    print(f'Wrote {output}')


if __name__ == '__main__':
    generate_video()
