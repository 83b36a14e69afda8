"""Render a video with a pretrained network pickle: a looping latent interpolation between seeds, e.g.

    python gen_video.py --output=lerp.mp4 --trunc=1 --seeds=0-31 --grid=4x2 \\
        --network=https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan3-r-afhqv2-512x512.pkl

    python gen_video.py --output=lerp.mp4 --seeds=0-7 --grid=2x1 --scale=2 --network=creps-ffhq.pkl
    python gen_video.py --output=lerp.mp4 --seeds=0-7 --prompt='a lighthouse at dusk' --network=stylegan-t.pkl

or a signer driven by a pose sequence (--pose, a pose-format .pose file) through a pose-to-latent network of
train_pose.py (--pose-model), one video frame per pose frame that dataset_tool.py --pose would keep, e.g.

    python gen_video.py --network=signer.pkl --pose=sentence.pose --pose-model=pose-run/pose-model.pkl \\
        --output=sentence.mp4 --side-by-side
"""

import contextlib
import math
import os
import re
import sys

import click
import imageio
import numpy as np
import numpy.ma as ma
import PIL.Image
import PIL.ImageDraw
import scipy.interpolate
import torch
import tqdm

import dnnlib
import dnnlib.cli
import gen_images
import legacy
from training import networks_creps
from training import pose as pose_lib

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
# Pose-driven video: a pose sequence through a pose-to-latent network of train_pose.py, then through G.

POSE_PIECE = 256        # Pose frames per call of the pose model; its (h, c) state carries over between pieces.
SYNTHESIS_BATCH = 8     # Frames rendered by G at a time.
FALLBACK_COLORS = ((255, 80, 80), (80, 220, 80), (80, 140, 255), (255, 200, 60), (220, 90, 255))


def read_pose_file(path, option='--pose'):
    """(pose, layout) of a .pose file; one-line click errors for files that are not usable poses."""
    try:
        pose = pose_lib.read_pose(path)
        layout = pose_lib.pose_layout(pose.header, name=path)
    except pose_lib.PoseError as err:
        raise click.ClickException(f'{option}: {err}') from None
    fps = float(pose.body.fps)
    if not math.isfinite(fps) or fps <= 0:
        raise click.ClickException(f"{option}: '{path}' gives {fps:g} frames per second; the video needs a positive rate")
    return pose, layout


def load_pose_model(path, option='--pose-model'):
    """The dict of a pose-model pickle of train_pose.py (path or URL); one-line click errors otherwise."""
    if not dnnlib.util.is_url(path, allow_file_urls=True) and not os.path.isfile(path):
        raise click.ClickException(f'{option}: no such file: {path}')
    try:
        with dnnlib.util.open_url(path, verbose=False) as f:
            return legacy.load_pose_model_pkl(f)
    except (legacy.NetworkPickleError, dnnlib.util.DownloadError, OSError, ValueError) as e:
        raise click.ClickException(f'{option}: {e}') from None


def check_pose_model_layout(model, layout, pose_path):
    """Refuses a pose model trained on poses of another layout than this pose file's."""
    if model['layout'] != layout:
        raise click.ClickException(f"--pose-model reads {model['layout']} poses but '{pose_path}' is {layout}")


def check_pose_model_generator(model, G):
    """Refuses a pose model trained for another generator: it would run, but its latents mean nothing to G."""
    P = model['P']
    if model['generator_sha256'] != gen_images.generator_fingerprint(G) or (P.num_ws, P.w_dim) != (G.num_ws, G.w_dim):
        trained_for = f" (it was trained for {model['network']})" if model.get('network') else ''
        raise click.ClickException(f'--pose-model was trained for another generator than --network{trained_for}; '
                                   f'train one for it with train_pose.py')


def pose_model_features(pose, layout, P, pose_path):
    """(kept frames, their crop boxes, features float32 [K, F]): the frames dataset_tool.py --pose keeps."""
    dims = pose.header.dimensions
    kept, boxes = pose_lib.select_frames(pose, layout, (dims.width, dims.height))
    if len(kept) == 0:
        raise click.ClickException(f"--pose: no frame of '{pose_path}' can be framed (every one lacks a pose or "
                                   f"shoulders, or has them too close to the edge of its {dims.width}x{dims.height} frame)")
    features = pose_lib.pose_features(pose)[kept]
    if features.shape[1] != P.feature_dim:
        raise click.ClickException(f"--pose-model reads {P.feature_dim} pose features per frame but '{pose_path}' "
                                   f"gives {features.shape[1]}; train the model on poses like these")
    return kept, boxes, features


@torch.no_grad()
def pose_latents(P, features, device, piece=POSE_PIECE):
    """Yields ws [n, num_ws, w_dim] for consecutive pieces of `features` [K, F], as if the whole sequence
    went through P at once (the LSTM state carries over), without holding all K latents in memory."""
    state = None
    for start in range(0, len(features), piece):
        x = torch.as_tensor(features[start:start + piece], device=device)[None]
        ws, state = P(x, state=state, return_state=True)
        yield ws[0]


def skeleton_image(components, xy, confidence, size):
    """uint8 [size, size, 3]: one person's pose drawn on black, limbs as lines and points as dots.

    components: the pose header's components (their points in order along `xy`); xy [points, 2] in pixels of
    the image (continuous: pixel i covers [i, i + 1)); confidence [points], 0 for a point not found. A limb is
    drawn only when both its ends were found. Colours are the header's, one per point as pose-format's own
    drawing reads them (a limb takes the mean of its ends); a component without colours gets one of its own.
    """
    image = PIL.Image.new('RGB', (size, size))
    draw = PIL.ImageDraw.Draw(image)
    width = max(1, round(size / 128))
    radius = max(1.0, size / 256)
    xy = np.asarray(xy, dtype=np.float64)[:, :2] - 0.5  # PIL puts pixel i's centre at i, not at i + 0.5.
    confidence = np.asarray(confidence)
    offset = 0
    for index, component in enumerate(components):
        points = range(offset, offset + len(component.points))
        offset += len(component.points)
        if 'WORLD' in component.name:
            continue  # MediaPipe's world landmarks are metres around the hips, not pixels of the frame.
        palette = [tuple(int(v) for v in color) for color in component.colors]
        palette = palette or [FALLBACK_COLORS[index % len(FALLBACK_COLORS)]]
        colors = [palette[i % len(palette)] for i in range(len(points))]
        for a, b in component.limbs:
            if max(a, b) < len(points) and confidence[points[a]] > 0 and confidence[points[b]] > 0:
                color = tuple((np.array(colors[a]) + np.array(colors[b])) // 2)
                draw.line([tuple(xy[points[a]]), tuple(xy[points[b]])], fill=color, width=width)
        for i, point in enumerate(points):
            if confidence[point] > 0:
                x, y = xy[point]
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colors[i])
    return np.asarray(image)


def pose_video_frames(G, P, features, device, force_fp32=False, skeletons=None):
    """Yields one uint8 HWC frame per row of `features`; with `skeletons` (a Pose of the same frames in pixels
    of the rendered images, crop_pose's output), each frame is [rendered image | skeleton]."""
    frame = 0
    for ws in pose_latents(P, features, device):
        for batch in ws.split(SYNTHESIS_BATCH):
            with torch.no_grad():
                img = G.synthesis(batch, noise_mode='const', force_fp32=force_fp32)
            for image in img:
                rendered = layout_grid(image[None], 1, 1)
                if skeletons is not None:
                    skeleton = skeleton_image(skeletons.header.components, ma.getdata(skeletons.body.data)[frame, 0],
                                              np.asarray(skeletons.body.confidence)[frame, 0], rendered.shape[0])
                    rendered = np.concatenate([rendered, skeleton], axis=1)
                frame += 1
                yield rendered


def render_pose_video(G, P, pose, kept, boxes, features, output, *, device, fps, side_by_side=False, scale=1,
                      force_fp32=False, **video_kwargs):
    """Writes the pose-driven video to `output` atomically: one frame per kept pose frame, at `fps`."""
    skeletons = None
    if side_by_side:
        skeletons = pose_lib.crop_pose(pose, kept, boxes, resolution=gen_images.rendered_size(G, scale))
    frames = pose_video_frames(G, P.to(device).eval(), features, device, force_fp32=force_fp32, skeletons=skeletons)
    with networks_creps.rendering_scale(G, scale), atomic_video_writer(output, fps=fps, **video_kwargs) as writer:
        for image in tqdm.tqdm(frames, total=len(features), unit='frame', disable=None):
            writer.append_data(image)

# ----------------------------------------------------------------------------


# Options of the seed mode, refused with --pose rather than ignored: the pose model gives every frame's latent.
SEED_MODE_OPTIONS = ('seeds', 'shuffle_seed', 'grid', 'num_keyframes', 'w_frames', 'truncation_psi', 'class_idx',
                     'prompt')


def explicit_options(ctx, names):
    """The command-line spellings of the options among `names` that were given rather than defaulted."""
    spellings = {param.name: param.opts[0] for param in ctx.command.params}
    return [spellings[name] for name in names
            if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)]


def check_mode(ctx, seeds, pose_path, pose_model_pkl, side_by_side):
    """Refuses (one line) option sets that mix the seed and the pose mode or leave either incomplete."""
    if pose_path is None and pose_model_pkl is None:
        if seeds is None:
            raise click.ClickException('give --seeds=LIST for an interpolation video, or --pose=FILE.pose with '
                                       '--pose-model=PKL for a pose-driven one')
        if side_by_side:
            raise click.ClickException('--side-by-side shows the skeleton of --pose: it needs --pose and --pose-model')
        return
    if pose_model_pkl is None:
        raise click.ClickException('--pose needs --pose-model=PKL: the pose-to-latent network train_pose.py trained '
                                   'for --network')
    if pose_path is None:
        raise click.ClickException('--pose-model needs --pose=FILE.pose: the poses to animate')
    given = explicit_options(ctx, SEED_MODE_OPTIONS)
    if given:
        raise click.ClickException(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply with --pose: "
                                   f"the pose model gives every frame's latent; leave {'it' if len(given) == 1 else 'them'} out")


def generate_pose_video(network_pkl, pose_path, pose_model_pkl, side_by_side, scale, output):
    """The pose mode of the command: inputs checked in order of cost, then the video written."""
    pose, layout = read_pose_file(pose_path)
    model = load_pose_model(pose_model_pkl)
    check_pose_model_layout(model, layout, pose_path)  # Before loading --network, which takes longer.
    device = gen_images.choose_device(verbose=False)
    G = gen_images.load_generator(network_pkl, device)
    check_pose_model_generator(model, G)
    kept, boxes, features = pose_model_features(pose, layout, model['P'], pose_path)
    check_frame_size(G, scale, 2 if side_by_side else 1, 1)
    fps = float(pose.body.fps)
    if not math.isclose(fps, model['fps'], rel_tol=0.01):
        print(f"Note: '{pose_path}' has {fps:g} frames per second and the pose model was trained on {model['fps']:g}; "
              f"its motion may look off", file=sys.stderr)
    gen_images.report_device(device)
    print(f'Rendering {len(kept)} of the {pose.body.data.shape[0]} pose frames at {fps:g} fps')
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    render_pose_video(G, model['P'], pose, kept, boxes, features, output, device=device, fps=fps,
                      side_by_side=side_by_side, scale=scale, force_fp32=(device.type != 'cuda'), bitrate='16M')


@click.command()
@click.pass_context
@click.option('network_pkl', '--network', help='Network pickle to sample from (path or URL)', metavar='PATH|URL', required=True)
@legacy.trust_pickle_option
@click.option('--seeds', type=gen_images.parse_seeds, help='Seeds of the keyframe latents, e.g. 0-31 (without --pose)', metavar='LIST')
@click.option('--shuffle-seed', type=click.IntRange(0, gen_images.MAX_SEED), help='Shuffle the keyframe seeds with this seed', metavar='INT')
@click.option('--grid', type=parse_grid, help='Columns x rows of videos side by side', default='1x1', show_default=True, metavar='WxH')
@click.option('--num-keyframes', type=click.IntRange(min=1), help='Keyframes per grid cell  [default: seeds / (W*H)]', metavar='INT')
@click.option('--w-frames', type=click.IntRange(min=1), help='Frames from one keyframe to the next', default=120, show_default=True, metavar='INT')
@click.option('--trunc', 'truncation_psi', type=dnnlib.cli.FiniteFloat(), help='Pull w towards the average by this factor (1 = none)', default=1, show_default=True)
@click.option('--class', 'class_idx', type=click.IntRange(min=0), help='Class label for conditional networks')
@click.option('--prompt', help='Text of the whole video, for text-to-image networks (StyleGAN-T)', metavar='TEXT')
@click.option('--pose', 'pose_path', help='Poses of a signer to animate (pose-format .pose file; with --pose-model)', metavar='FILE')
@click.option('--pose-model', 'pose_model_pkl', help='Pose-to-latent network of train_pose.py for --network (path or URL)', metavar='PATH|URL')
@click.option('--side-by-side', is_flag=True, help='With --pose: show each frame\'s skeleton beside it')
@click.option('--scale', help='Render at this multiple of the training resolution (CREPS only)', type=dnnlib.cli.FiniteFloat(min=0, min_open=True), default=1, show_default=True, metavar='FLOAT')
@click.option('--output', help='Video file to write (.mp4, .mkv, .mov, .avi or .m4v)', type=str, required=True, metavar='FILE')
def generate_video(ctx, network_pkl, seeds, shuffle_seed, grid, num_keyframes, w_frames, truncation_psi, class_idx,
                   prompt, pose_path, pose_model_pkl, side_by_side, scale, output):
    """Render a looping video that glides through the latents of the given seeds, or a signer driven by poses.

    Every cell of the --grid shows its own sequence of keyframes; w moves between them along
    a cubic spline that closes on itself, so the video loops without a jump. The video has
    num_keyframes * w_frames frames at 60 fps, where num_keyframes defaults to the number of
    seeds divided by W*H (which must then divide evenly). Keyframe seeds are taken from
    --seeds in order, cycling when more are needed, and optionally shuffled. --scale renders
    a CREPS network at that multiple of its training resolution. A text-to-image network
    (StyleGAN-T) needs --prompt: the latents move, the text stays.

    With --pose and --pose-model instead of --seeds, a pose-to-latent network of train_pose.py
    turns each frame of a pose-format .pose file into a latent of --network, the generator it was
    trained for. The video has one frame per pose frame that dataset_tool.py --pose would keep
    (frames without a signer or without a framing are left out), at the .pose file's frame rate.
    Each frame's skeleton, as the crop sees it, goes to the right of the image with --side-by-side.

    \b
    Examples:
    # A 4x2 grid, 4 keyframes per cell, 2 seconds between keyframes.
    python gen_video.py --output=lerp.mp4 --trunc=1 --seeds=0-31 --grid=4x2 \\
        --network=https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan3-r-afhqv2-512x512.pkl

    \b
    # A signer performing the poses of sentence.pose, its skeleton beside it.
    python gen_video.py --network=signer.pkl --pose=sentence.pose --pose-model=pose-run/pose-model.pkl \\
        --output=sentence.mp4 --side-by-side
    """
    check_mode(ctx, seeds, pose_path, pose_model_pkl, side_by_side)
    dnnlib.cli.check_output_file(output, '--output', extensions=VIDEO_EXTENSIONS)
    if pose_path is not None:
        generate_pose_video(network_pkl, pose_path, pose_model_pkl, side_by_side, scale, output)
        print(f'Wrote {output}')
        return

    grid_w, grid_h = grid
    if num_keyframes is None and len(seeds) % (grid_w * grid_h) != 0:
        raise click.ClickException(f'the number of seeds ({len(seeds)}) must be divisible by the grid size '
                                   f'W*H = {grid_w * grid_h}, or give --num-keyframes')
    prompts = gen_images.read_prompts(prompt, None)
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
    generate_video()  # pylint: disable=no-value-for-parameter
