"""The prepared check of a machine with a CUDA GPU: one command, one report.

    python benchmarks/gpu_check.py [--out DIR] [--official DIR] [--budget SECONDS]

Runs, in this order, each part in a subprocess whose output goes into the report:

  1. environment: GPU, driver, torch, CUDA, nvcc;
  2. `python -m torch_utils.ops.selftest`: every kernel configuration of the grid against the reference
     (values, gradients, second order) in float32, float16 and bfloat16, and kernel/ref timings;
  3. `pytest -m cuda`: the GPU-only tests;
  4. network speed on the GPU: G forward and G+D step of StyleGAN2, StyleGAN3-T and StyleGAN3-R at
     256x256, batch 8, with the default ops (kernels) against impl='ref', in one process;
  5. where the time goes: torch.profiler's table of the ops of StyleGAN3-T G+D steps at 256x256, batch 8;
  6. training speed: sec/kimg of train.py for StyleGAN3-T and StyleGAN3-R at 256x256 with the settings the
     official release's docs/configs.md gives for 1 GPU, beside the A100 figures published there; with
     --official DIR (a checkout of the official StyleGAN3 release, which this project does not ship), the
     official train.py on the same data in the same run.

Writes DIR/gpu_check.md (DIR: --out, else $OUT, else the current folder) and prints it. The whole run is
kept within --budget seconds (default 540): a part that would start with too little time left is skipped
and the report says so. Exit status 0 when every part that ran passed.
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# docs/configs.md of the official StyleGAN3 release, 256x256, 1 GPU: options and A100 sec/kimg.
TRAINING_CONFIGS = {
    'stylegan3-t': (['--cfg=stylegan3-t', '--gpus=1', '--batch=32', '--gamma=2', '--batch-gpu=16', '--snap=10'], 49.81),
    'stylegan3-r': (['--cfg=stylegan3-r', '--gpus=1', '--batch=32', '--gamma=2', '--batch-gpu=8', '--snap=10'], 56.73),
}

# ----------------------------------------------------------------------------
# Parts that run in their own process.


def part_environment():
    import torch
    print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}')
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        print(f'GPU {i}: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}')
    for command in (['nvidia-smi', '--query-gpu=driver_version,clocks.max.sm', '--format=csv,noheader'], ['nvcc', '--version']):
        try:
            print(subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[-1])
        except (OSError, IndexError, subprocess.TimeoutExpired) as err:
            print(f'{command[0]}: {err}')
    return torch.cuda.is_available()


def generator_makers(resolution, channel_base):
    """Constructors of the three generators at the official release's sizes for this resolution."""
    from training import networks_stylegan2, networks_stylegan3
    common = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3, num_fp16_res=4, conv_clamp=256)
    return {
        'StyleGAN2': lambda: networks_stylegan2.Generator(**common, mapping_kwargs=dict(num_layers=8), channel_base=channel_base),
        'StyleGAN3-T': lambda: networks_stylegan3.Generator(**common, mapping_kwargs=dict(num_layers=2), channel_base=channel_base),
        'StyleGAN3-R': lambda: networks_stylegan3.Generator(**common, mapping_kwargs=dict(num_layers=2), conv_kernel=1,
                                                            channel_base=channel_base * 2, channel_max=1024, use_radial_filters=True),
    }


def adversarial_step(G, D, batch, resolution, device):
    """A function running one G+D forward and backward pass on fixed random inputs."""
    import torch
    z = torch.randn([batch, G.z_dim], device=device)
    c = torch.zeros([batch, 0], device=device)
    reals = torch.randn([batch, 3, resolution, resolution], device=device)

    def step():
        img = G(z, c)
        loss = torch.nn.functional.softplus(D(img, c)).mean() + torch.nn.functional.softplus(-D(reals, c)).mean()
        loss.backward()
    return step


def make_discriminator(resolution, channel_base, device):
    from training import networks_stylegan2
    return networks_stylegan2.Discriminator(c_dim=0, img_resolution=resolution, img_channels=3, num_fp16_res=4,
                                            conv_clamp=256, channel_base=channel_base).to(device)


def part_networks(device='cuda', resolution=256, batch=8, channel_base=32768, repeats=5):
    """G forward and G+D step, kernels against impl='ref' (the official release's default sizes). Batch 8, the
    official per-GPU batch of StyleGAN3-R at 256x256: impl='ref' needs over 140 GiB for a StyleGAN3 step at 32."""
    import torch
    import torch_utils.ops
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    configs = generator_makers(resolution, channel_base)
    D = make_discriminator(resolution, channel_base, device)
    z = torch.randn([batch, 512], device=device)
    c = torch.zeros([batch, 0], device=device)

    def seconds(fn):
        """Median wall time of fn, or None when it runs out of GPU memory (a row says so; the rest go on)."""
        try:
            fn()
            sync()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                sync()
                times.append(time.perf_counter() - start)
        except torch.cuda.OutOfMemoryError:
            return None
        finally:
            D.zero_grad(set_to_none=True)
        return sorted(times)[len(times) // 2]

    print(f'{f"network ({resolution}x{resolution}, batch {batch})":28s} {"work":10s} {"kernels":>10s} {"ref":>10s} {"speed-up":>9s}')
    def time_network(G):
        rows = {}
        for impl in ('default', 'ref'):
            torch_utils.ops.force_impl = None if impl == 'default' else impl
            with torch.no_grad():
                rows.setdefault('forward', {})[impl] = seconds(lambda: G(z, c))
            rows.setdefault('G+D step', {})[impl] = seconds(adversarial_step(G, D, batch, resolution, device))
            G.zero_grad(set_to_none=True)
        torch_utils.ops.force_impl = None
        return rows

    for name, make in configs.items():
        for work, times in time_network(make().to(device)).items():
            shown = [f'{times[impl] * 1e3:8.1f}ms' if times[impl] is not None else '     OOM  ' for impl in ('default', 'ref')]
            ratio = f'{times["ref"] / times["default"]:8.2f}x' if None not in times.values() else '       -'
            print(f'{name:28s} {work:10s} {shown[0]} {shown[1]} {ratio}')
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return True


def part_profile(device='cuda', resolution=256, batch=8, channel_base=32768, steps=3, rows=20):
    """torch.profiler's table of the ops of StyleGAN3-T G+D steps (default ops), most device time first."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    device = torch.device(device)
    G = generator_makers(resolution, channel_base)['StyleGAN3-T']().to(device)
    step = adversarial_step(G, make_discriminator(resolution, channel_base, device), batch, resolution, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    step()  # Builds, self-checks and autotunes outside the profile.
    if device.type == 'cuda':
        torch.cuda.synchronize()
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
    events = prof.key_averages()
    if device.type == 'cuda':
        sort_by = 'self_device_time_total' if hasattr(events[0], 'self_device_time_total') else 'self_cuda_time_total'
    else:
        sort_by = 'self_cpu_time_total'
    print(f'StyleGAN3-T, {resolution}x{resolution}, batch {batch}, {steps} G+D steps, sorted by {sort_by}')
    print(events.table(sort_by=sort_by, row_limit=rows, max_name_column_width=60))
    return True


def write_dataset(path, resolution=256, num_images=256, seed=0):
    """A zip of smooth random colour fields (cheap to decode, not constant)."""
    import numpy as np
    import PIL.Image
    rnd = np.random.RandomState(seed)
    with zipfile.ZipFile(path, 'w') as zf:
        for idx in range(num_images):
            small = rnd.rand(8, 8, 3) * 255
            img = PIL.Image.fromarray(small.astype(np.uint8)).resize([resolution, resolution], PIL.Image.BICUBIC)
            buf = io.BytesIO()
            img.save(buf, format='png')
            zf.writestr(f'{idx:05d}.png', buf.getvalue())


def training_seconds_per_kimg(train_py, options, data, outdir, timeout, kimg='1', tick='0.5'):
    """sec/kimg of the last tick (the first includes start-up, kernel builds and autotuning), or an error string."""
    command = [sys.executable, train_py, f'--outdir={outdir}', f'--data={data}', *options,
               f'--kimg={kimg}', f'--tick={tick}', '--metrics=none']
    env = dict(os.environ)
    if os.path.dirname(os.path.abspath(train_py)) != REPO_ROOT:
        env.pop('PYTHONPATH', None)
    try:
        result = subprocess.run(command, cwd=os.path.dirname(os.path.abspath(train_py)), env=env, capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f'timed out after {timeout:.0f} s'
    if result.returncode != 0:
        return 'failed: ' + (result.stderr.strip().splitlines() or ['(no output)'])[-1][:300]
    runs = sorted(os.path.join(outdir, name) for name in os.listdir(outdir))
    with open(os.path.join(runs[-1], 'stats.jsonl')) as f:
        ticks = [json.loads(line) for line in f]
    return ticks[-1]['Timing/sec_per_kimg']['mean']


def part_training(official, deadline):
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, 'fields-256x256.zip')
        write_dataset(data)
        codes = [('this project', os.path.join(REPO_ROOT, 'train.py'))]
        if official:
            codes.append(('official release', os.path.join(official, 'train.py')))
        print(f'{"config (256x256, 1 GPU)":24s} {"code":18s} {"sec/kimg":>10s}   published A100 sec/kimg')
        for cfg, (options, published) in TRAINING_CONFIGS.items():
            for label, train_py in codes:
                left = deadline - time.time()
                if left < 60:
                    print(f'{cfg:24s} {label:18s} {"skipped":>10s}   (time budget spent)')
                    continue
                outdir = tempfile.mkdtemp(dir=tmp)
                value = training_seconds_per_kimg(train_py, options, data, outdir, timeout=left)
                shown = f'{value:10.2f}' if isinstance(value, float) else f'{value}'
                print(f'{cfg:24s} {label:18s} {shown}   {published}')
        if not official:
            print('The official release was not run (pass --official DIR with a checkout of it to time it here).')
    return True

# ----------------------------------------------------------------------------
# The driver.


def cuda_test_files():
    """The test files that hold GPU-only tests: collecting only these keeps a GPU machine that lacks an
    optional package of some other test file (pose-format, webdataset, ...) from failing the collection."""
    found = []
    for folder, _, names in os.walk(os.path.join(REPO_ROOT, 'tests')):
        for name in names:
            if name.startswith('test_') and name.endswith('.py'):
                path = os.path.join(folder, name)
                with open(path, encoding='utf-8') as f:
                    if 'mark.cuda' in f.read():
                        found.append(os.path.relpath(path, REPO_ROOT))
    return sorted(found)


def run_part(title, command, timeout, report):
    start = time.time()
    try:
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
        output, ok = (result.stdout + result.stderr).strip(), result.returncode == 0
    except subprocess.TimeoutExpired as err:
        output, ok = ((err.stdout or b'').decode(errors='replace') if isinstance(err.stdout, bytes) else (err.stdout or '')), False
        output += f'\n(stopped after {timeout:.0f} s)'
    status = 'ok' if ok else 'FAILED'
    report.append(f'## {title}: {status} ({time.time() - start:.0f} s)\n\n```\n{output[-12000:]}\n```\n')
    print(report[-1], flush=True)
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default=os.environ.get('OUT') or '.', help='folder of gpu_check.md')
    parser.add_argument('--official', default=None, help='a checkout of the official StyleGAN3 release, timed beside this project')
    parser.add_argument('--budget', type=float, default=540, help='seconds for the whole check')
    parser.add_argument('--part', choices=['environment', 'networks', 'profile', 'training'], help=argparse.SUPPRESS)
    parser.add_argument('--deadline', type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.part is not None:  # One part, in its own process.
        ok = {'environment': part_environment, 'networks': part_networks, 'profile': part_profile,
              'training': lambda: part_training(args.official, args.deadline)}[args.part]()
        sys.exit(0 if ok else 1)

    deadline = time.time() + args.budget
    me = [sys.executable, os.path.abspath(__file__)]
    report = [f'# GPU check ({time.strftime("%Y-%m-%d %H:%M")}, budget {args.budget:.0f} s)\n']
    parts = [
        ('Environment', me + ['--part=environment'], 60, 0),
        ('Kernels against the reference (torch_utils.ops.selftest)', [sys.executable, '-m', 'torch_utils.ops.selftest'], 240, 90),
        ('GPU-only tests (pytest -m cuda)', [sys.executable, '-m', 'pytest', '-q', '-m', 'cuda', '-p', 'no:cacheprovider',
                                             '--continue-on-collection-errors', *cuda_test_files()], 240, 60),
        ('Network speed on the GPU', me + ['--part=networks'], 150, 60),
        ('Where a StyleGAN3-T step spends its time (torch.profiler)', me + ['--part=profile'], 90, 40),
        ('Training speed', me + ['--part=training', f'--deadline={deadline}'] + (['--official', args.official] if args.official else []),
         None, 90),
    ]
    all_ok = True
    for title, command, timeout, minimum in parts:
        left = deadline - time.time()
        if left < minimum or left <= 5:
            report.append(f'## {title}: skipped ({left:.0f} s of the budget left)\n')
            print(report[-1], flush=True)
            continue
        all_ok &= run_part(title, command, min(timeout or left, left), report)
        if title == 'Environment' and 'GPU 0' not in report[-1]:
            report.append('No CUDA GPU is visible: nothing else to check.\n')
            print(report[-1], flush=True)
            all_ok = False
            break
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'gpu_check.md')
    with open(path, 'w') as f:
        f.write('\n'.join(report))
    print(f'Report: {path}')
    sys.exit(0 if all_ok else 1)


if __name__ == '__main__':
    main()
