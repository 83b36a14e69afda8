"""The Quick start main job: a demo dataset, a small training run, plots, images, grids and a video, end to end.

    python quickstart.py [--outdir=quickstart-out] [--cfg=stylegan2] [--kimg=...]

Everything is generated offline and deterministically, and runs on the CPU in a few minutes
(faster on a GPU). Each step runs the project's own command-line scripts, which are echoed so
they can be rerun by hand; all their output is also written to <outdir>/quickstart.log.
"""

import glob
import os
import subprocess
import sys
import time

import click
import numpy as np
import PIL.Image
import scipy.ndimage

import dnnlib.cli

DEFAULT_KIMG = 6  # 1 to 3 minutes of training on 2 CPU cores; shapes need about 200 (docs/performance.md).

# ----------------------------------------------------------------------------


def render_demo_image(rnd, resolution):
    """One RGB image: a disc or a square of one colour on a two-tone gradient (uint8 HWC)."""
    yy, xx = (np.mgrid[0:resolution, 0:resolution].astype(np.float32) + 0.5) / resolution
    angle = rnd.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5) + 0.5
    c0, c1 = rnd.uniform(0.1, 0.6, size=3), rnd.uniform(0.3, 0.8, size=3)
    img = c0 + (c1 - c0) * ramp[..., None]
    cx, cy = rnd.uniform(0.3, 0.7, size=2)
    radius = rnd.uniform(0.14, 0.26)
    color = rnd.uniform(0, 1, size=3)
    while np.abs(color - (c0 + c1) / 2).max() < 0.35:  # Stand out from the background.
        color = rnd.uniform(0, 1, size=3)
    if rnd.rand() < 0.5:
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 < radius ** 2
    else:
        half_side = radius * np.sqrt(np.pi) / 2  # The disc's area.
        inside = (np.abs(xx - cx) < half_side) & (np.abs(yy - cy) < half_side)
    img[inside] = color
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def ideal_shapes(region):
    """The disc and the square with the area and centroid of a boolean mask."""
    ys, xs = np.nonzero(region)
    area = len(ys)
    yy, xx = np.mgrid[0:region.shape[0], 0:region.shape[1]]
    dy, dx = yy - ys.mean(), xx - xs.mean()
    return dy ** 2 + dx ** 2 <= area / np.pi, np.maximum(np.abs(dy), np.abs(dx)) <= np.sqrt(area) / 2


def holds_demo_shape(img, min_area=0.03, min_iou=0.75, max_residual=32, max_std=16, max_error=16):
    """Whether a uint8 HWC image shows what the demo renderer draws: a sharp-edged disc or square of one colour
    on a background that a linear ramp explains. The ramp is fitted robustly (refitted on the pixels it
    explains); what it leaves unexplained, cleaned of specks, splits into candidate regions. A candidate counts
    when it overlaps the ideal disc or square of its area and centroid, its interior is of nearly one colour,
    and the image redrawn from those pieces (ramp, ideal shape in that colour) matches the image around it."""
    h, w, _ = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    ramp_basis = np.stack([np.ones(h * w), xx.ravel() / w, yy.ravel() / h], axis=1)
    pixels = img.reshape(h * w, -1).astype(np.float64)
    background = np.ones(h * w, dtype=bool)
    for _ in range(4):
        if background.sum() < 3:
            return False
        coef = np.linalg.lstsq(ramp_basis[background], pixels[background], rcond=None)[0]
        background = np.abs(pixels - ramp_basis @ coef).max(axis=1) < max_residual
    ramp = (ramp_basis @ coef).reshape(img.shape)
    regions, num_regions = scipy.ndimage.label(scipy.ndimage.binary_opening(~background.reshape(h, w)))
    for region_idx in range(1, num_regions + 1):
        region = regions == region_idx
        if region.sum() < min_area * h * w:
            continue
        ideal = max(ideal_shapes(region), key=lambda shape: (shape & region).sum() / (shape | region).sum())
        if (ideal & region).sum() / (ideal | region).sum() < min_iou:
            continue
        interior = scipy.ndimage.binary_erosion(region, iterations=2 if region.sum() > 60 else 1)
        if not interior.any() or img[interior].astype(np.float64).std(axis=0).max() > max_std:
            continue
        redrawn = np.where(ideal[..., None], img[interior].astype(np.float64).mean(axis=0), ramp)
        around = scipy.ndimage.binary_dilation(ideal, iterations=2)
        if np.abs(redrawn - img)[around].max(axis=-1).mean() <= max_error:
            return True
    return False


def write_demo_images(folder, num_images, resolution, seed=0):
    os.makedirs(folder, exist_ok=True)
    rnd = np.random.RandomState(seed)
    for i in range(num_images):
        PIL.Image.fromarray(render_demo_image(rnd, resolution)).save(os.path.join(folder, f'demo{i:05d}.png'))


class Runner:
    """Runs the steps, echoing each command and teeing its output to the log file."""

    def __init__(self, log_path):
        self.log = open(log_path, 'a')
        self.step = 0

    def say(self, text):
        print(text, flush=True)
        self.log.write(text + '\n')
        self.log.flush()

    def run(self, title, args):
        self.step += 1
        self.say(f'\n=== Step {self.step}: {title}')
        self.say('$ ' + ' '.join([os.path.basename(sys.executable)] + args))
        start = time.time()
        proc = subprocess.Popen([sys.executable] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)))
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            self.log.write(line)
        proc.wait()
        self.log.flush()
        if proc.returncode != 0:
            raise click.ClickException(f'step {self.step} ({title}) failed with exit code {proc.returncode}; '
                                       f'see the output above or {self.log.name}')
        self.say(f'(done in {time.time() - start:.0f} s)')

# ----------------------------------------------------------------------------


def shape_check(network_pkl, resolution, num_images=256):
    """(share of generated images holding a demo shape, share of demo images doing so), seeds 0..num_images-1."""
    import torch

    import legacy
    with open(network_pkl, 'rb') as f:
        G = legacy.load_network_pkl(f)['G_ema'].eval().requires_grad_(False)
    found = 0
    with torch.no_grad():
        for seed in range(num_images):
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim).astype(np.float32))
            img = G(z, torch.zeros([1, G.c_dim]), noise_mode='const', force_fp32=True)
            found += holds_demo_shape((img[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy())
    rnd = np.random.RandomState(12345)  # Images the demo dataset does not hold, from the same renderer.
    reference = sum(holds_demo_shape(render_demo_image(rnd, resolution)) for _ in range(num_images))
    return found / num_images, reference / num_images


@click.command()
@click.option('--outdir', help='Where to put everything', metavar='DIR', default='quickstart-out', show_default=True)
@click.option('--cfg', help='Network configuration', type=click.Choice(['stylegan2', 'stylegan3-t', 'stylegan3-r']), default='stylegan2', show_default=True)
@click.option('--kimg', help='Training length in thousands of images', type=dnnlib.cli.FiniteFloat(min=0, min_open=True), default=DEFAULT_KIMG, show_default=True)
@click.option('--resolution', help='Image size of the demo dataset', type=click.Choice(['16', '32', '64']), default='32', show_default=True)
@click.option('--num-images', help='Images in the demo dataset', type=click.IntRange(min=16), default=1000, show_default=True)
def main(outdir, cfg, kimg, resolution, num_images):
    """Build a demo dataset, train a small model, and look at it: loss plots, images, grids, a video, and a
    check of how many generated images show a disc or square as the demo images do."""
    resolution = int(resolution)
    outdir = os.path.abspath(outdir)
    if os.path.isdir(outdir) and os.listdir(outdir):
        raise click.ClickException(f'{outdir} exists and is not empty; choose another --outdir or remove it')
    os.makedirs(outdir, exist_ok=True)
    runner = Runner(os.path.join(outdir, 'quickstart.log'))
    start = time.time()

    images_dir = os.path.join(outdir, 'demo-images')
    dataset = os.path.join(outdir, f'demo-{resolution}x{resolution}.zip')
    runs_dir = os.path.join(outdir, 'training-runs')
    plots_dir = os.path.join(outdir, 'plots')
    samples_dir = os.path.join(outdir, 'images')
    grids_dir = os.path.join(outdir, 'grids')
    video = os.path.join(outdir, 'video.mp4')

    runner.say(f'=== Step 0: write {num_images} demo images to {images_dir}')
    write_demo_images(images_dir, num_images, resolution)

    runner.run('pack them into a dataset', ['dataset_tool.py', f'--source={images_dir}', f'--dest={dataset}'])
    runner.run(f'train a small {cfg} for {kimg:g} kimg', [
        'train.py', f'--outdir={runs_dir}', f'--cfg={cfg}', f'--data={dataset}', '--gpus=1', '--batch=16', '--gamma=0.5',
        '--cbase=2048', '--cmax=32', '--map-depth=2', '--mirror=1', '--aug=noaug', f'--kimg={kimg:g}',
        f'--tick={kimg / 20:g}', '--snap=5', '--workers=0', '--metrics=none', '--desc=quickstart'])
    snapshots = sorted(glob.glob(os.path.join(runs_dir, '*', 'network-snapshot-*.pkl')))
    if not snapshots:
        raise click.ClickException(f'training wrote no snapshot under {runs_dir}')
    network = snapshots[-1]
    run_dir = os.path.dirname(network)
    runner.run('plot the losses', ['plot_stats.py', run_dir, f'--outdir={plots_dir}'])
    runner.run('render images', ['gen_images.py', f'--network={network}', '--seeds=0-7', '--trunc=1', f'--outdir={samples_dir}'])
    runner.run('render a grid of seeds by truncation', ['gen_images.py', f'--network={network}', '--seeds=0-5',
                                                        '--trunc=0.5,0.7,1', '--grid', f'--outdir={grids_dir}'])
    runner.run('render a style-mixing grid', ['gen_images.py', f'--network={network}', '--seeds=0-4', '--mix-seeds=10-14',
                                              '--mix-layers=0-3', f'--outdir={grids_dir}'])
    runner.run('render an interpolation video', ['gen_video.py', f'--network={network}', '--seeds=0-3', '--grid=2x1',
                                                 '--num-keyframes=4', '--w-frames=10', f'--output={video}'])

    runner.say('\n=== Shape check: do the generated images show a disc or a square, as the demo images do?')
    generated, reference = shape_check(network, resolution)
    verdict = 'recognisable' if generated >= reference / 2 else 'not yet recognisable (train longer with --kimg)'
    runner.say(f'{generated:.0%} of 256 generated images hold a disc or square (demo images: {reference:.0%}): '
               f'shapes {verdict}')

    runner.say(f'\nAll done in {time.time() - start:.0f} s. Results:')
    runner.say(f'  dataset      {dataset}')
    runner.say(f'  training run {run_dir} (fakes*.png: G_ema, fakes_raw*.png: G, over training)')
    runner.say(f'  network      {network}')
    runner.say(f'  loss plots   {plots_dir}')
    runner.say(f'  images       {samples_dir}')
    runner.say(f'  grids        {grids_dir} (trunc-grid.png, mix-grid.png)')
    runner.say(f'  video        {video}')
    runner.say(f'  log          {runner.log.name}')


if __name__ == '__main__':
    main()
