"""Training speed (sec/kimg) of tiny configurations: default ops against the reference ops.

    python benchmarks/train_speed.py [--cfgs stylegan2,stylegan3-t,stylegan3-r] [--res 16] [--batch 8]
                                     [--ticks 4] [--tick-kimg 0.016]

Each configuration is trained twice by train.py, in subprocesses started by this one run: once with
the default op dispatch and once with TORCH_UTILS_OPS_IMPL=ref (every custom op in plain PyTorch).
The number reported is the median of the `Timing/sec_per_kimg` values that train.py records per tick
(tick 0 is left out: it includes one-time warm-up). It runs on the GPU when one is visible, else on
the CPU. Timings on a shared machine are noisy.
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import PIL.Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_dataset(path, res, num_images=64, seed=0):
    rnd = np.random.RandomState(seed)
    with zipfile.ZipFile(path, 'w') as zf:
        for idx in range(num_images):
            img = (rnd.rand(res, res, 3) * 255).astype(np.uint8)
            buf = io.BytesIO()
            PIL.Image.fromarray(img).save(buf, format='png')
            zf.writestr(f'{idx:05d}.png', buf.getvalue())


def sec_per_kimg(cfg, data, outdir, impl, args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    env.pop('TORCH_UTILS_OPS_IMPL', None)
    if impl is not None:
        env['TORCH_UTILS_OPS_IMPL'] = impl
    command = [sys.executable, os.path.join(REPO_ROOT, 'train.py'), f'--outdir={outdir}', f'--cfg={cfg}',
               f'--data={data}', '--gpus=1', f'--batch={args.batch}', '--gamma=1', f'--cbase={args.cbase}',
               f'--cmax={args.cmax}', '--aug=noaug', '--workers=0', f'--tick={args.tick_kimg}',
               f'--kimg={args.tick_kimg * args.ticks}', f'--snap={10**6}', '--metrics=none', f'--desc={impl or "default"}']
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f'train.py failed for {cfg} ({impl or "default"}):\n{result.stderr[-3000:]}')
    run_dir = sorted(os.path.join(outdir, name) for name in os.listdir(outdir) if name.endswith(impl or 'default'))[-1]
    with open(os.path.join(run_dir, 'stats.jsonl')) as f:
        ticks = [json.loads(line) for line in f]
    values = [tick['Timing/sec_per_kimg']['mean'] for tick in ticks[1:]]
    return float(np.median(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cfgs', default='stylegan2,stylegan3-t,stylegan3-r')
    parser.add_argument('--res', type=int, default=16)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--cbase', type=int, default=1024)
    parser.add_argument('--cmax', type=int, default=64)
    parser.add_argument('--ticks', type=int, default=4)
    parser.add_argument('--tick-kimg', type=float, default=0.016)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temp_dir:
        data = os.path.join(temp_dir, f'random-{args.res}x{args.res}.zip')
        write_dataset(data, args.res)
        print(f'{args.res}x{args.res}, batch {args.batch}, cbase {args.cbase}, cmax {args.cmax}; '
              f'median sec/kimg over {args.ticks - 1} ticks of {args.tick_kimg} kimg')
        print(f'{"config":<14}{"default ops":>14}{"ref ops":>14}{"speed-up":>10}')
        for cfg in args.cfgs.split(','):
            default = sec_per_kimg(cfg, data, os.path.join(temp_dir, 'runs'), None, args)
            ref = sec_per_kimg(cfg, data, os.path.join(temp_dir, 'runs'), 'ref', args)
            print(f'{cfg:<14}{default:>14.1f}{ref:>14.1f}{ref / default:>9.2f}x', flush=True)


if __name__ == '__main__':
    main()
