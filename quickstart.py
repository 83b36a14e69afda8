"""The Quick start main job: a demo dataset, a tiny training run, images and a video, end to end.

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

# ----------------------------------------------------------------------------


def render_demo_image(rnd, resolution):
    """One RGB image: a soft two-tone background with a few coloured discs and squares."""
    yy, xx = np.mgrid[0:resolution, 0:resolution].astype(np.float32) / resolution
    angle = rnd.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)
    c0, c1 = rnd.uniform(0, 0.5, size=3), rnd.uniform(0.3, 0.8, size=3)
    img = c0[None, None, :] + (c1 - c0)[None, None, :] * ramp[..., None]
    for _ in range(rnd.randint(1, 4)):
        cx, cy = rnd.uniform(0.2, 0.8, size=2)
        size = rnd.uniform(0.08, 0.22)
        color = rnd.uniform(0, 1, size=3)
        if rnd.rand() < 0.5:
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 < size ** 2
        else:
            inside = (np.abs(xx - cx) < size) & (np.abs(yy - cy) < size)
        img[inside] = color
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


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


@click.command()
@click.option('--outdir', help='Where to put everything', metavar='DIR', default='quickstart-out', show_default=True)
@click.option('--cfg', help='Network configuration', type=click.Choice(['stylegan2', 'stylegan3-t', 'stylegan3-r']), default='stylegan2', show_default=True)
@click.option('--kimg', help='Training length in thousands of images', type=click.FloatRange(min=0, min_open=True), default=1, show_default=True)
@click.option('--resolution', help='Image size of the demo dataset', type=click.Choice(['16', '32', '64']), default='32', show_default=True)
@click.option('--num-images', help='Images in the demo dataset', type=click.IntRange(min=16), default=256, show_default=True)
def main(outdir, cfg, kimg, resolution, num_images):
    """Build a demo dataset, train a tiny model, and render images and a video from it."""
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
    samples_dir = os.path.join(outdir, 'images')
    video = os.path.join(outdir, 'video.mp4')

    runner.say(f'=== Step 0: write {num_images} demo images to {images_dir}')
    write_demo_images(images_dir, num_images, resolution)

    runner.run('pack them into a dataset', ['dataset_tool.py', f'--source={images_dir}', f'--dest={dataset}'])
    runner.run(f'train a tiny {cfg} for {kimg:g} kimg', [
        'train.py', f'--outdir={runs_dir}', f'--cfg={cfg}', f'--data={dataset}', '--gpus=1', '--batch=16', '--gamma=0.5',
        '--cbase=2048', '--cmax=64', '--map-depth=2', '--mirror=1', f'--kimg={kimg:g}', f'--tick={kimg / 4:g}', '--snap=2',
        '--workers=0', '--metrics=none', '--desc=quickstart'])
    snapshots = sorted(glob.glob(os.path.join(runs_dir, '*', 'network-snapshot-*.pkl')))
    if not snapshots:
        raise click.ClickException(f'training wrote no snapshot under {runs_dir}')
    network = snapshots[-1]
    runner.run('render images', ['gen_images.py', f'--network={network}', '--seeds=0-7', '--trunc=1', f'--outdir={samples_dir}'])
    runner.run('render an interpolation video', ['gen_video.py', f'--network={network}', '--seeds=0-3', '--grid=2x1',
                                                 '--num-keyframes=4', '--w-frames=10', f'--output={video}'])

    runner.say(f'\nAll done in {time.time() - start:.0f} s. Results:')
    runner.say(f'  dataset      {dataset}')
    runner.say(f'  training run {os.path.dirname(network)}')
    runner.say(f'  network      {network}')
    runner.say(f'  images       {samples_dir}')
    runner.say(f'  video        {video}')
    runner.say(f'  log          {runner.log.name}')


if __name__ == '__main__':
    main()
