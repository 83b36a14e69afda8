"""Train a StyleGAN2, StyleGAN3 or CREPS generator on an image dataset.

Examples:

\b
# Train StyleGAN3-T for AFHQv2 using 8 GPUs.
python train.py --outdir=~/training-runs --cfg=stylegan3-t --data=~/datasets/afhqv2-512x512.zip \\
    --gpus=8 --batch=32 --gamma=8.2 --mirror=1

\b
# Train CREPS for FFHQ at 1024x1024 using 8 GPUs.
python train.py --outdir=~/training-runs --cfg=creps --data=~/datasets/ffhq-1024x1024.zip \\
    --gpus=8 --batch=32 --gamma=10 --mirror=1 --aug=noaug

\b
# Continue an interrupted run exactly where it stopped.
python train.py --outdir=~/training-runs --cfg=stylegan3-t --data=~/datasets/afhqv2-512x512.zip \\
    --gpus=8 --batch=32 --gamma=8.2 --mirror=1 --resume=~/training-runs/00000-stylegan3-t-afhqv2-512x512-gpus8-batch32-gamma8.2

\b
# Several nodes with the standard launcher (--gpus = total number of processes).
torchrun --nnodes=2 --nproc_per_node=8 ... train.py --gpus=16 ...
"""

import copy
import json
import os
import re
import sys
import tempfile

import click
import torch
import tqdm

import dnnlib
import dnnlib.cli
import legacy
from metrics import metric_main
from metrics import metric_utils
from torch_utils import custom_ops
from torch_utils import misc
from torch_utils import training_stats
from training import snapshots
from training import training_loop

# Options of a run directory that may change when it is continued; everything else must stay the same.
CONTINUABLE_KEYS = ('total_kimg', 'kimg_per_tick', 'image_snapshot_ticks', 'network_snapshot_ticks',
                    'data_loader_kwargs', 'keep_snapshots', 'cudnn_benchmark', 'metrics', 'num_gpus', 'batch_gpu',
                    'run_dir', 'resume_pkl', 'resume_kimg', 'resume_state', 'ema_rampup', 'ada_kimg',
                    'pretrained_encoders', 'metric_kwargs')  # Pretrained encoders are read for new runs only.
LOSS_KEYS_SET_BY_RESUME = ('blur_init_sigma',)

# ----------------------------------------------------------------------------
# Launching the processes.


def distributed_env():
    """(rank, world_size, local_rank) when started by torchrun (or another env:// launcher), else None."""
    if 'RANK' in os.environ and 'WORLD_SIZE' in os.environ:
        return int(os.environ['RANK']), int(os.environ['WORLD_SIZE']), int(os.environ.get('LOCAL_RANK', 0))
    return None


def process_device(local_rank):
    return torch.device('cuda', local_rank) if torch.cuda.is_available() else torch.device('cpu')


def init_distributed(rank, num_gpus, local_rank, init_method):
    """Joins the process group (NCCL on GPUs, gloo on the CPU) and routes statistics through it."""
    device = process_device(local_rank)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    if num_gpus > 1:
        backend = 'nccl' if device.type == 'cuda' else 'gloo'
        kwargs = dict(device_id=device) if backend == 'nccl' else dict()
        torch.distributed.init_process_group(backend=backend, init_method=init_method, rank=rank,
                                             world_size=num_gpus, **kwargs)
    sync_device = device if (num_gpus > 1 and device.type == 'cuda') else None
    training_stats.init_multiprocessing(rank=rank, sync_device=sync_device)
    if rank != 0:
        custom_ops.verbosity = 'none'
    return device


def run_training(c, rank, local_rank):
    """Body of every process once the process group is up. A dataset that turns out unreadable during
    training (a damaged image the up-front check cannot see) ends the process with one line."""
    from training.image_files import DatasetError
    if rank == 0:
        dnnlib.util.Logger(file_name=os.path.join(c.run_dir, 'log.txt'), file_mode='a', should_flush=True)
        if process_device(local_rank).type == 'cpu':
            print('No CUDA GPU found: training on the CPU in float32. This is slow; use it for small experiments.')
    try:
        training_loop.training_loop(rank=rank, device=process_device(local_rank), **c)
    except DatasetError as err:
        raise click.ClickException(f'--data: {err} (the snapshots written so far are kept; fix the dataset and '
                                   f'continue with --resume={c.run_dir})') from None


def spawned_process(rank, c, temp_dir):
    """Entry point of each process started by `--gpus=N` (N > 1) on one machine."""
    init_file = os.path.abspath(os.path.join(temp_dir, '.torch_distributed_init'))
    init_distributed(rank=rank, num_gpus=c.num_gpus, local_rank=rank, init_method=f'file://{init_file}')
    try:
        run_training(c, rank=rank, local_rank=rank)
    except click.ClickException as err:
        print(f'Error: {err.format_message()}', file=sys.stderr)
        sys.exit(1)
    finally:
        torch.distributed.destroy_process_group()


def write_options(c):
    path = os.path.join(c.run_dir, 'training_options.json')
    text = json.dumps(c, indent=2).encode('utf-8')
    snapshots.write_atomically(path, lambda f: f.write(text))


def launch_training(c, desc, outdir, dry_run, continue_dir):
    dnnlib.util.Logger(should_flush=True)
    env = distributed_env()
    is_main = env is None or env[0] == 0

    if continue_dir is not None:
        c.run_dir = continue_dir
    else:
        prev_run_dirs = [x for x in os.listdir(outdir) if os.path.isdir(os.path.join(outdir, x))] \
            if os.path.isdir(outdir) else []
        prev_run_ids = [re.match(r'^\d+', x) for x in prev_run_dirs]
        prev_run_ids = [int(x.group()) for x in prev_run_ids if x is not None]
        cur_run_id = max(prev_run_ids, default=-1) + 1
        c.run_dir = os.path.join(outdir, f'{cur_run_id:05d}-{desc}')

    if is_main:
        print()
        print('Training options:')
        print(json.dumps(c, indent=2))
        print()
        data = c.training_set_kwargs
        summary = {
            'Output directory': c.run_dir + (' (continuing)' if continue_dir is not None else ''),
            'Number of processes': c.num_gpus,
            'Batch size': f'{c.batch_size} images',
            'Training duration': f'{c.total_kimg} kimg',
            'Dataset path': data.path,
            'Dataset size': f'{data.max_size} images' if 'max_size' in data else 'streamed from tar shards',
            'Dataset resolution': data.resolution,
            'Dataset labels': data.use_labels,
            'Dataset x-flips': data.xflip,
        }
        for label, value in summary.items():
            print(f'{label + ":":<20} {value}')
        print()
    if dry_run:
        if is_main:
            print('Dry run; exiting.')
        return

    if env is not None:
        # Started by torchrun: this process is one rank; rank 0 creates the directory and tells the others.
        rank, world_size, local_rank = env
        init_distributed(rank=rank, num_gpus=world_size, local_rank=local_rank, init_method='env://')
        try:
            if rank == 0:
                prepare_run_dir(c, continue_dir)
            run_dir = [c.run_dir]
            if world_size > 1:
                torch.distributed.broadcast_object_list(run_dir, src=0)
            c.run_dir = run_dir[0]
            run_training(c, rank=rank, local_rank=local_rank)
        finally:
            if world_size > 1:
                torch.distributed.destroy_process_group()
        return

    prepare_run_dir(c, continue_dir)
    print('Launching processes...')
    torch.multiprocessing.set_start_method('spawn', force=True)
    if c.num_gpus == 1:
        init_distributed(rank=0, num_gpus=1, local_rank=0, init_method=None)
        run_training(c, rank=0, local_rank=0)
    else:
        with tempfile.TemporaryDirectory() as temp_dir:
            try:
                torch.multiprocessing.spawn(fn=spawned_process, args=(c, temp_dir), nprocs=c.num_gpus)
            except torch.multiprocessing.ProcessExitedException:
                raise click.ClickException('a training process stopped (its message is above)') from None


def prepare_run_dir(c, continue_dir):
    print('Creating output directory...')
    if continue_dir is None:
        os.makedirs(c.run_dir, exist_ok=False)
    else:
        snapshots.remove_partial_files(c.run_dir)
    write_options(c)

# ----------------------------------------------------------------------------
# Building and checking the configuration.


def init_dataset_kwargs(data, cond, resize=None):
    """Opens the dataset once to check it (every image's size and channels, from the headers) and read its
    shape; returns (kwargs, name, EasyDict(label_dim, num_channels)). `resize`: side to resize images to."""
    from training import dataset as dataset_module
    if resize is not None and resize & (resize - 1):
        raise click.ClickException(f'--img-resolution={resize} is not a power of two')
    try:
        kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=data, use_labels=cond,
                                 max_size=None, xflip=False)
        if resize is not None:
            kwargs.resize_resolution = resize
        with dnnlib.util.construct_class_by_name(**kwargs) as dataset_obj:
            kwargs.resolution = dataset_obj.resolution
            kwargs.max_size = len(dataset_obj)
            has_labels = dataset_obj.has_labels
            name = dataset_obj.name
            info = dnnlib.EasyDict(label_dim=dataset_obj.label_dim, num_channels=dataset_obj.num_channels)
            with tqdm.tqdm(total=len(dataset_obj), desc='Checking images', unit='img', leave=False,
                           disable=None if len(dataset_obj) >= 2000 else True) as bar:
                dataset_obj.check_image_sizes(progress=lambda done, _total: bar.update(1))
    except (IOError, dataset_module.DatasetError) as err:
        if cond:
            raise click.ClickException(f'--cond=True needs labels in the dataset: {err}') from None
        raise click.ClickException(f'--data: {err}') from None
    if cond and not has_labels:
        raise click.ClickException('--cond=True requires labels specified in dataset.json')
    return kwargs, name, info


def init_shard_dataset_kwargs(data, resize):
    """A folder of tar shards, streamed: checks that finished shards exist and that a sample decodes; returns
    (kwargs, name, info) as init_dataset_kwargs() does."""
    from training import dataset as dataset_module
    from training import shards
    if resize is None:
        raise click.ClickException('--data is a folder of tar shards, streamed at --img-resolution: pass it '
                                   '(e.g. --img-resolution=64)')
    if resize & (resize - 1):
        raise click.ClickException(f'--img-resolution={resize} is not a power of two')
    kwargs = dnnlib.EasyDict(class_name='training.dataset.ShardDataset', path=data, resolution=resize,
                             use_labels=True, xflip=False)
    try:
        finished, unfinished = shards.find_shards(data)
        with dnnlib.util.construct_class_by_name(**kwargs) as dataset_obj:
            dataset_obj.peek(1)  # A folder whose first samples do not decode fails here, not in a worker.
            name = dataset_obj.name
    except dataset_module.DatasetError as err:
        raise click.ClickException(f'--data: {err}') from None
    if unfinished:
        print(f'--data: leaving out {len(unfinished)} unfinished shard(s) (no _stats.json beside them yet)')
    print(f'--data: streaming {len(finished)} finished shard(s)')
    return kwargs, name, dnnlib.EasyDict(label_dim=0, num_channels=3)


def int_if_integral(value):
    return int(value) if float(value).is_integer() else value


def check_batch_split(batch, processes, per_pass, group):
    """Refuses a batch that does not split evenly into processes, passes of `per_pass` images, and minibatch
    standard deviation groups of `group` within a pass."""
    per_process, rest = divmod(batch, processes)
    if rest:
        raise click.ClickException('--batch must be a multiple of --gpus')
    if per_process % per_pass:
        raise click.ClickException(f'--batch must be a multiple of --gpus times --batch-gpu ({batch} images do not '
                                   f'split into passes of {per_pass} on each of {processes} processes)')
    if per_pass < group or per_pass % group:
        raise click.ClickException(f'--batch-gpu={per_pass} (per process and pass) must be a multiple of '
                                   f'--mbstd-group={group}')


def parse_comma_separated_list(s):
    """'a,b' -> ['a', 'b']; nothing, '' or 'none' -> [] (click passes lists through)."""
    if isinstance(s, list):
        return s
    return [] if s in (None, '') or s.lower() == 'none' else s.split(',')


def check_freeze64_source(data, resume):
    """--train-mode=freeze64 grows a 64x64 StyleGAN-T generator: refuses any other."""
    G = data.get('G_ema') or data.get('G')
    if G is None or type(G).__name__ != 'Generator' or not hasattr(G, 'encode_text') or G.img_resolution != 64:
        what = 'no generator' if G is None else (f'a {G.img_resolution}x{G.img_resolution} StyleGAN-T generator'
                                                 if hasattr(G, 'encode_text') else 'not a StyleGAN-T generator')
        raise click.ClickException(f'--train-mode=freeze64 needs a 64x64 StyleGAN-T network as --resume; {resume} '
                                   f'holds {what}')


def check_resume_pkl(resume, c, dataset_info, growing=False):
    """Refuses a network pickle that cannot initialise the networks of this configuration: another resolution
    (except when freeze64 grows a 64x64 one), tensors of other shapes under the same names, or nothing in common
    (another architecture)."""
    if not dnnlib.util.is_url(resume, allow_file_urls=True) and not os.path.isfile(resume):
        raise click.ClickException(f'--resume: no such file or run directory: {resume}')
    try:
        with dnnlib.util.open_url(resume, verbose=False) as f:
            data = legacy.load_network_pkl(f)
    except (OSError, legacy.NetworkPickleError) as err:
        raise click.ClickException(f'--resume: {err}') from None
    if growing:
        check_freeze64_source(data, resume)
    resolution = c.training_set_kwargs.resolution
    common = dict(c_dim=dataset_info.label_dim, img_resolution=resolution, img_channels=dataset_info.num_channels)
    with torch.device('meta'):  # Shapes only; nothing is allocated.
        ours = dict(G=dnnlib.util.construct_class_by_name(**{**common, **c.G_kwargs}),
                    D=dnnlib.util.construct_class_by_name(**{**common, **c.D_kwargs}))
    ours['G_ema'] = ours['G']
    for key in ('G', 'D', 'G_ema'):
        net = data[key]
        if net is None:
            continue
        if getattr(net, 'img_resolution', resolution) != resolution and not growing:
            raise click.ClickException(f'--resume: {key} in {resume} is for {net.img_resolution}x{net.img_resolution} '
                                       f'images, but the dataset is {resolution}x{resolution}')
        our_tensors = dict(misc.named_params_and_buffers(ours[key]))
        shared = [(name, tensor) for name, tensor in misc.named_params_and_buffers(net) if name in our_tensors]
        if not shared:
            raise click.ClickException(f'--resume: {key} in {resume} has no tensor in common with the {key} of '
                                       f'--cfg={c.G_kwargs.class_name.split(".")[1]} (another architecture?)')
        for name, tensor in shared:
            if tensor.shape != our_tensors[name].shape:
                raise click.ClickException(f'--resume: {key} in {resume} does not fit this configuration: {name} is '
                                           f'{list(tensor.shape)} there and {list(our_tensors[name].shape)} here (check '
                                           f'--cfg, --cbase, --cmax, --map-depth and the dataset\'s labels and channels)')


def find_continuation(run_dir):
    """(snapshot pkl, training state) to continue an interrupted run directory."""
    if not os.path.isfile(os.path.join(run_dir, 'training_options.json')):
        raise click.ClickException(f'--resume: {run_dir} is not a training run directory '
                                   f'(it has no training_options.json)')
    found = snapshots.find_complete_pair(run_dir, report=lambda line: print(f'--resume: {line}', file=sys.stderr))
    if found is None:
        raise click.ClickException(f'--resume: {run_dir} has no complete network snapshot with a training state to '
                                   f'continue from; pass a network-snapshot-*.pkl as --resume to start a new run from it')
    pkl, state_path, state = found
    print(f'Continuing {run_dir} from {os.path.basename(pkl)} and {os.path.basename(state_path)} '
          f'({state["cur_nimg"] / 1000:g} kimg)')
    return pkl, state_path


def merge_continued_options(c, run_dir):
    """The saved options of an interrupted run, updated with the options that may change between sessions."""
    path = os.path.join(run_dir, 'training_options.json')
    try:
        with open(path) as f:
            saved = json.load(f, object_hook=dnnlib.EasyDict)
        if not isinstance(saved, dict):
            raise ValueError('not a JSON object')
    except (OSError, ValueError) as e:
        raise click.ClickException(f'--resume: cannot read {path} ({e}); it is needed to continue the run') from None
    for key in sorted(set(c.keys()) | set(saved.keys())):
        if key in CONTINUABLE_KEYS:
            continue
        new = c.get(key)
        old = saved.get(key)
        if key == 'loss_kwargs' and isinstance(new, dict) and isinstance(old, dict):
            new = {k: v for k, v in new.items() if k not in LOSS_KEYS_SET_BY_RESUME}
            old = {k: v for k, v in old.items() if k not in LOSS_KEYS_SET_BY_RESUME}
        if json.loads(json.dumps(new)) != old:
            raise click.ClickException(f'--resume: {run_dir} was trained with {key}={json.dumps(old)}, not '
                                       f'{json.dumps(new)}; pass the options of that run to continue it')
    merged = copy.deepcopy(saved)
    for key in CONTINUABLE_KEYS:
        if key in c and key not in ('ema_rampup', 'ada_kimg'):
            merged[key] = c[key]
    merged.data_loader_kwargs = c.data_loader_kwargs
    return merged

# ----------------------------------------------------------------------------


@click.command()
# What to train, on what, with how much.
@click.option('--outdir', metavar='DIR', required=True, help='Folder in which the run directory is made')
@click.option('--cfg', required=True, type=click.Choice(['stylegan3-t', 'stylegan3-r', 'stylegan2', 'creps', 'stylegan-t',
                                                          'stylegan-t-lite', 'stylegan-t-full']),
              help='Network family, with its training recipe (stylegan-t: sizes from --cbase --cmax --res-blocks)')
@click.option('--data', metavar='[ZIP|DIR]', type=str, required=True, help='Dataset written by dataset_tool.py')
@click.option('--gpus', metavar='INT', type=click.IntRange(min=1), required=True,
              help='Processes to train with: one per GPU (CPU processes without a GPU)')
@click.option('--batch', metavar='INT', type=click.IntRange(min=1), required=True,
              help='Images per training step, summed over the processes')
@click.option('--gamma', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=0),
              help='Weight of the R1 gradient penalty (required, except for StyleGAN-T)')
# Data and starting point.
@click.option('--cond', metavar='BOOL', type=bool, default=False, show_default=True,
              help='Condition G and D on the dataset labels')
@click.option('--mirror', metavar='BOOL', type=bool, default=False, show_default=True,
              help='Add the x-flip of every image')
@click.option('--aug', type=click.Choice(['noaug', 'ada', 'fixed']), default='ada', show_default=True,
              help='Augmentation of what D sees: none, adaptive, or at a fixed --p')
@click.option('--resume', metavar='[PATH|URL|DIR]', type=str,
              help='Resume from a network pickle, or continue an interrupted run directory')
@legacy.trust_pickle_option
@click.option('--resume-kimg', metavar='INT', type=click.IntRange(min=0), default=0, show_default=True,
              help='kimg to continue the schedule from with a pickle --resume')
@click.option('--freezed', metavar='INT', type=click.IntRange(min=0), default=0, show_default=True,
              help='D layers, counted from the image, kept frozen (transfer learning)')
@click.option('--loss', type=click.Choice(['stylegan2', 'wgangp']), default='stylegan2', show_default=True,
              help='Loss function')
@click.option('--d-steps', metavar='INT', type=click.IntRange(min=1), default=1, show_default=True,
              help='D updates per G update, each on its own batch')
# Hyperparameters.
@click.option('--p', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=0, max=1), default=0.2, show_default=True,
              help='Augmentation probability of --aug=fixed')
@click.option('--target', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=0, max=1), default=0.6, show_default=True,
              help='Value of the overfitting heuristic that --aug=ada steers towards')
@click.option('--batch-gpu', metavar='INT', type=click.IntRange(min=1),
              help='Images per process and pass; more are accumulated over passes')
@click.option('--cbase', metavar='INT', type=click.IntRange(min=1), default=32768, show_default=True,
              help='Channel budget: layers at resolution R get about cbase/R channels')
@click.option('--cmax', metavar='INT', type=click.IntRange(min=1), default=512, show_default=True,
              help='Most channels in a layer')
@click.option('--glr', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=0),
              help='Learning rate of G  [default: varies]')
@click.option('--dlr', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=0), default=0.002, show_default=True,
              help='Learning rate of D')
@click.option('--map-depth', metavar='INT', type=click.IntRange(min=1),
              help='Layers of the mapping network  [default: varies]')
@click.option('--mbstd-group', metavar='INT', type=click.IntRange(min=1), default=4, show_default=True,
              help='Samples per group of D\'s minibatch standard deviation')
@click.option('--img-resolution', metavar='INT', type=click.IntRange(min=4),
              help='Resize the dataset\'s images to this side on the fly (Lanczos; a power of two)')
# StyleGAN-T.
@click.option('--res-blocks', metavar='INT', type=click.IntRange(min=1), default=2, show_default=True,
              help='StyleGAN-T: residual block pairs per resolution (--cfg=stylegan-t)')
@click.option('--clip-weight', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=0), default=0, show_default=True,
              help='StyleGAN-T: weight of CLIP guidance (needs captions)')
@click.option('--blur-init', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=0), default=32, show_default=True,
              help='StyleGAN-T: starting sigma of the blur of D\'s inputs, in pixels')
@click.option('--blur-fade-kimg', metavar='KIMG', type=dnnlib.cli.FiniteFloat(min=0), default=1000, show_default=True,
              help='StyleGAN-T: kimg over which that blur fades to none')
@click.option('--train-mode', type=click.Choice(['all', 'text-encoder', 'freeze64']), default='all', show_default=True,
              help='StyleGAN-T: what of G trains: mapping and synthesis; only the text encoder (lr 3e-6); or only the '
                   'layers above 64x64 and the ToRGB layers (--resume from a 64x64 network)')
@click.option('--clip-model', metavar='NAME|JSON', type=str,
              help='StyleGAN-T: open_clip architecture, or an open_clip config file  [default: ViT-L-14, or STYLEGAN_CLIP_MODEL]')
@click.option('--clip', metavar='TAG|PATH', type=str,
              help='StyleGAN-T: CLIP weights, an open_clip pretrained tag or a checkpoint  [default: openai, or STYLEGAN_CLIP]')
@click.option('--clip-scorer', metavar='PATH|MODEL:TAG', type=str,
              help='StyleGAN-T: CLIP model of the CLIP-score metrics (cs*): an open_clip local-dir folder or MODEL:TAG  '
                   '[default: STYLEGAN_CLIP_SCORER, else ViT-g-14:laion2b_s12b_b42k]')
@click.option('--dino-model', metavar='NAME|JSON', type=str,
              help='StyleGAN-T: timm ViT of D, or a {"model": ..., "kwargs": ...} file  '
                   '[default: vit_small_patch16_224.dino, or STYLEGAN_DINO_MODEL]')
@click.option('--dino', metavar='PATH', type=str,
              help='StyleGAN-T: timm checkpoint of that ViT  [default: timm\'s download, or STYLEGAN_DINO]')
# Bookkeeping.
@click.option('--desc', metavar='STR', type=str, help='Text added to the run directory\'s name')
@click.option('--metrics', metavar='[NAME|A,B,C|none]', type=parse_comma_separated_list, default='fid50k_full',
              show_default=True, help='Metrics computed at every network snapshot')
@click.option('--kimg', metavar='KIMG', type=dnnlib.cli.FiniteFloat(min=0, min_open=True), default=25000,
              show_default=True, help='Length of training in thousands of images (fractions allowed)')
@click.option('--tick', metavar='KIMG', type=dnnlib.cli.FiniteFloat(min=0, min_open=True), default=4,
              show_default=True, help='Progress line every this many kimg (fractions allowed)')
@click.option('--snap', metavar='TICKS', type=click.IntRange(min=1), default=50, show_default=True,
              help='Snapshot every this many ticks')
@click.option('--keep-snapshots', metavar='N', type=click.IntRange(min=1),
              help='Keep only the newest N network snapshots')
@click.option('--seed', metavar='INT', type=click.IntRange(min=0), default=0, show_default=True,
              help='Seed of every random stream')
@click.option('--fp32', metavar='BOOL', type=bool, default=False, show_default=True,
              help='Run in float32 only (no mixed precision)')
@click.option('--nobench', metavar='BOOL', type=bool, default=False, show_default=True,
              help='Leave cuDNN autotuning off')
@click.option('--workers', metavar='INT', type=click.IntRange(min=0), default=3, show_default=True,
              help='Data loading processes')
@click.option('-n', '--dry-run', is_flag=True, help='Print the training options and stop')
def main(**kwargs):
    """Train a StyleGAN2, StyleGAN3-T/-R, CREPS or StyleGAN-T network.

    The recipes are those of "Analyzing and Improving the Image Quality of StyleGAN" (StyleGAN2),
    "Alias-Free Generative Adversarial Networks" (StyleGAN3), "Efficient Scale-Invariant Generator
    with Column-Row Entangled Pixel Synthesis" (CREPS) and "StyleGAN-T: Unlocking the Power of GANs for
    Fast Large-Scale Text-to-Image Synthesis" (StyleGAN-T; text-conditional on a dataset with captions).
    """
    opts = dnnlib.EasyDict(kwargs)
    ctx = click.get_current_context()
    opts.explicit = sorted(name for name in kwargs if ctx.get_parameter_source(name) not in
                           (click.core.ParameterSource.DEFAULT, None))
    check_config_options(opts)
    for key in ('outdir', 'data', 'resume'):  # Shells leave the ~ of '--data=~/x' alone: expand it here.
        if opts[key] is not None and not dnnlib.util.is_url(opts[key]):
            opts[key] = os.path.expanduser(opts[key])
    if opts.resume is None or not os.path.isdir(opts.resume):
        dnnlib.cli.check_output_dir(opts.outdir, '--outdir')
    check_metrics(opts.metrics, fetch_detectors=False)
    check_processes(opts.gpus)
    c, dataset_name, dataset_info = build_config(opts)
    c, continue_dir = apply_resume(c, opts, dataset_info)
    check_metrics(c.metrics, fetch_detectors=not opts.dry_run)  # Those that remain (streamed data drops some).
    if not opts.dry_run:
        check_metric_inputs(c, opts)
    desc = f'{opts.cfg:s}-{dataset_name:s}-gpus{c.num_gpus:d}-batch{c.batch_size:d}'
    if not is_stylegan_t(opts.cfg):
        desc += f'-gamma{opts.gamma:g}'
    if opts.loss != 'stylegan2':
        desc += f'-{opts.loss}'
    if opts.d_steps != 1:
        desc += f'-dsteps{opts.d_steps}'
    if opts.desc is not None:
        desc += f'-{opts.desc}'
    launch_training(c=c, desc=desc, outdir=opts.outdir, dry_run=opts.dry_run, continue_dir=continue_dir)


# Options that only some configurations use: refused, with one line, where they would do nothing.
STYLEGAN_T_ONLY = ('res_blocks', 'train_mode', 'clip_weight', 'clip_scorer', 'blur_init', 'blur_fade_kimg', 'clip_model', 'clip', 'dino_model', 'dino')
NOT_STYLEGAN_T = ('gamma', 'cond', 'aug', 'p', 'target', 'loss', 'freezed', 'map_depth', 'mbstd_group')
PRESET_SIZES = {'stylegan-t-lite': dict(cbase=32768, cmax=512, res_blocks=2),
                'stylegan-t-full': dict(cbase=65536, cmax=2048, res_blocks=3)}


def is_stylegan_t(cfg):
    return cfg.startswith('stylegan-t')


def _option_name(key):
    return '--' + key.replace('_', '-')


def check_config_options(opts):
    """Refuses options that the chosen --cfg does not use, and a missing --gamma where it is needed."""
    if is_stylegan_t(opts.cfg):
        refused = [key for key in NOT_STYLEGAN_T if key in opts.explicit]
        if opts.cfg in PRESET_SIZES:
            refused += [key for key in PRESET_SIZES[opts.cfg] if key in opts.explicit]
    else:
        refused = [key for key in STYLEGAN_T_ONLY if key in opts.explicit]
        if opts.gamma is None:
            raise click.ClickException(f'--cfg={opts.cfg} needs --gamma (the R1 weight; e.g. --gamma=8.2)')
    if refused:
        names = ', '.join(_option_name(key) for key in refused)
        hint = ' (a preset fixes the sizes; use --cfg=stylegan-t for custom ones)' if opts.cfg in PRESET_SIZES else ''
        raise click.ClickException(f'{names} do{"es" if len(refused) == 1 else ""} not apply to --cfg={opts.cfg}{hint}')


def check_metrics(metrics, fetch_detectors):
    """Valid metric names, and their feature detectors fetched now rather than at the first snapshot."""
    for metric in metrics:
        if not metric_main.is_valid_metric(metric):
            raise click.ClickException(f'--metrics: unknown metric {metric!r}; valid metrics: '
                                       f'{", ".join(metric_main.list_valid_metrics())} (or none)')
    if fetch_detectors:
        for url in sorted({url for metric in metrics for url in metric_main.detectors_needed(metric)}):
            try:
                metric_utils.get_feature_detector(url)
            except metric_utils.MetricError as e:
                raise click.ClickException(f'--metrics: {e}')


def check_metric_inputs(c, opts):
    """What the metrics need besides their detectors (the COCO zip, the CLIP scorer, fetched now), so that the
    first snapshot does not fail on it; the scorer is recorded for the metric runs."""
    try:
        found = metric_main.check_inputs(c.metrics, c.training_set_kwargs, clip_scorer=opts.clip_scorer,
                                         load_scorer=False)
    except metric_utils.MetricError as err:
        raise click.ClickException(f'--metrics: {err}') from None
    if found.clip_scorer is not None:
        c.metric_kwargs = dnnlib.EasyDict(clip_scorer=found.clip_scorer)


def check_processes(gpus):
    env = distributed_env()
    if env is not None and env[1] != gpus:
        raise click.ClickException(f'--gpus={gpus} does not match the {env[1]} processes started by the '
                                   f'launcher (WORLD_SIZE); pass --gpus={env[1]}')
    if env is None and torch.cuda.is_available() and gpus > torch.cuda.device_count():
        raise click.ClickException(f'--gpus={gpus}, but only {torch.cuda.device_count()} GPUs are visible')


def set_run_settings(c, opts):
    """The settings every configuration shares: data loading, processes and batch, length, bookkeeping."""
    c.data_loader_kwargs = dnnlib.EasyDict(num_workers=opts.workers)
    if opts.workers > 0:
        c.data_loader_kwargs.prefetch_factor = 2
    if torch.cuda.is_available():
        c.data_loader_kwargs.pin_memory = True
    c.num_gpus = opts.gpus
    c.batch_size = opts.batch
    c.batch_gpu = opts.batch_gpu or opts.batch // opts.gpus
    c.metrics = opts.metrics
    c.total_kimg = int_if_integral(opts.kimg)
    c.kimg_per_tick = int_if_integral(opts.tick)
    c.image_snapshot_ticks = c.network_snapshot_ticks = opts.snap
    c.keep_snapshots = opts.keep_snapshots
    c.random_seed = opts.seed
    if opts.d_steps != 1:
        c.d_steps = opts.d_steps


def build_stylegan_t_config(opts):
    """The training_loop() arguments of StyleGAN-T: text-conditional when the dataset has captions."""
    from training import encoders
    from training import shards
    c = dnnlib.EasyDict()
    set_run_settings(c, opts)
    check_batch_split(batch=c.batch_size, processes=c.num_gpus, per_pass=c.batch_gpu, group=1)
    if shards.holds_shards(opts.data):
        c.training_set_kwargs, dataset_name, dataset_info = init_shard_dataset_kwargs(data=opts.data,
                                                                                      resize=opts.img_resolution)
        check_streamed_metrics(c, opts)
    else:
        c.training_set_kwargs, dataset_name, dataset_info = init_dataset_kwargs(data=opts.data, cond=False,
                                                                                resize=opts.img_resolution)
    captioned = dataset_has_captions(c.training_set_kwargs)
    c.training_set_kwargs.use_labels = captioned
    c.training_set_kwargs.xflip = opts.mirror
    c.training_set_kwargs.random_seed = opts.seed
    if not captioned and opts.clip_weight > 0:
        raise click.ClickException('--clip-weight needs a dataset with captions (dataset_tool.py writes them from '
                                   '.txt files beside the images or from COCO captions)')

    sizes = PRESET_SIZES.get(opts.cfg, dict(cbase=opts.cbase, cmax=opts.cmax, res_blocks=opts.res_blocks))
    c.pretrained_encoders = encoders.sources(clip_model=opts.clip_model, clip=opts.clip, dino_model=opts.dino_model,
                                             dino=opts.dino)
    try:
        text_kwargs, backbone_kwargs = saved_architecture(opts) or encoders.architecture(c.pretrained_encoders)
    except encoders.EncoderError as err:
        raise click.ClickException(str(err)) from None
    c_dim = text_kwargs['embed_dim'] if captioned else 0
    c.G_kwargs = dnnlib.EasyDict(class_name='training.networks_stylegan_t.Generator', z_dim=64, c_dim=c_dim,
                                 channel_base=sizes['cbase'], channel_max=sizes['cmax'], res_blocks=sizes['res_blocks'],
                                 mapping_kwargs=dnnlib.EasyDict(num_layers=2))
    if captioned:
        c.G_kwargs.text_encoder_kwargs = dnnlib.EasyDict(text_kwargs)
    c.D_kwargs = dnnlib.EasyDict(class_name='training.networks_stylegan_t.Discriminator', c_dim=c_dim,
                                 backbone_kwargs=dnnlib.EasyDict(backbone_kwargs))
    c.G_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', lr=0.002 if opts.glr is None else opts.glr,
                                     betas=[0, 0.99], eps=1e-8)
    c.D_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', lr=opts.dlr, betas=[0, 0.99], eps=1e-8)
    c.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGANTLoss', blur_init_sigma=opts.blur_init,
                                    blur_fade_kimg=int_if_integral(opts.blur_fade_kimg), clip_weight=opts.clip_weight)
    if opts.clip_weight > 0:
        c.loss_kwargs.clip_model = c.pretrained_encoders['clip_model']
        c.loss_kwargs.clip = c.pretrained_encoders['clip']
    set_train_mode(c, opts, captioned)
    c.G_reg_interval = c.D_reg_interval = None  # No regularisation phases.
    c.ema_kimg = c.batch_size * 10 / 32
    if opts.fp32:
        c.G_kwargs.num_fp16_res = 0
        c.G_kwargs.conv_clamp = None
    if opts.nobench:
        c.cudnn_benchmark = False
    return c, dataset_name, dataset_info


def set_train_mode(c, opts, captioned):
    """--train-mode: which of G's parameters train (G_train_prefixes; D always trains). The text encoder's weights
    are frozen buffers unless it is the one being tuned."""
    if opts.train_mode == 'text-encoder':
        if not captioned:
            raise click.ClickException('--train-mode=text-encoder tunes the text encoder, which needs a dataset with '
                                       'captions')
        c.G_kwargs.text_encoder_kwargs.trainable = True
        c.G_train_prefixes = ['text_encoder.']
        c.G_opt_kwargs.lr = 3e-6 if opts.glr is None else opts.glr
    elif opts.train_mode == 'freeze64':
        resolution = c.training_set_kwargs.resolution
        if resolution <= 64:
            raise click.ClickException(f'--train-mode=freeze64 trains the layers above 64x64, but the images are '
                                       f'{resolution}x{resolution}; pass a higher --img-resolution (e.g. 256)')
        if opts.resume is None:
            raise click.ClickException('--train-mode=freeze64 starts from a 64x64 StyleGAN-T network: pass it as '
                                       '--resume=PKL')
        blocks = [2 ** i for i in range(3, resolution.bit_length())]
        c.G_train_prefixes = ([f'synthesis.b{res}.' for res in blocks if res > 64] +
                              [f'synthesis.b{res}.torgb.' for res in blocks if res <= 64])


def check_streamed_metrics(c, opts):
    """Metrics on streamed shards: all but the COCO and CLIP-score ones read the training set by index, which needs
    a zip dataset. The default
    (fid50k_full) is dropped with a line; a metric asked for by name is refused."""
    needs_zip = [metric for metric in c.metrics if not (metric.startswith('cs') or '_coco' in metric)]
    if not needs_zip:
        return
    if 'metrics' in opts.explicit:
        raise click.ClickException(f'--metrics={needs_zip[0]} reads the training set by index, which a folder of '
                                   f'shards cannot do; make a zip of them with dataset_tool.py, or use metrics '
                                   f'that need none (fid30k_coco64, fid30k_coco256, cs10k, cs10k_coco) or none')
    print(f'--metrics: no {", ".join(needs_zip)} on streamed shards (it needs a zip dataset); pass e.g. '
          f'--metrics=fid30k_coco64,cs10k')
    c.metrics = [metric for metric in c.metrics if metric not in needs_zip]


def dataset_has_captions(kwargs):
    """Whether the dataset's dataset.json holds captions."""
    from training import dataset as dataset_module
    try:
        with dnnlib.util.construct_class_by_name(**dict(kwargs, use_labels=True)) as dataset_obj:
            return dataset_obj.has_captions
    except (IOError, dataset_module.DatasetError):
        return False  # No labels, or labels that are not captions: an unconditional generator.


def saved_architecture(opts):
    """(text encoder, backbone) arguments of the run that `--resume=RUN_DIR` continues (its snapshots hold the
    weights, so the pretrained models need not be loaded again); None for a new run."""
    path = os.path.join(opts.resume or '', 'training_options.json')
    if opts.resume is None or not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            saved = json.load(f)
        return saved['G_kwargs'].get('text_encoder_kwargs', {}), saved['D_kwargs']['backbone_kwargs']
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # merge_continued_options() reports an unreadable file.


def build_config(opts):
    """The training_loop() arguments for these options (a new run); returns (config, dataset name)."""
    if is_stylegan_t(opts.cfg):
        return build_stylegan_t_config(opts)
    c = dnnlib.EasyDict()
    c.G_kwargs = dnnlib.EasyDict(class_name=None, z_dim=512, w_dim=512, mapping_kwargs=dnnlib.EasyDict())
    c.D_kwargs = dnnlib.EasyDict(class_name='training.networks_stylegan2.Discriminator', block_kwargs=dnnlib.EasyDict(),
                                 mapping_kwargs=dnnlib.EasyDict(), epilogue_kwargs=dnnlib.EasyDict())
    c.G_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', betas=[0, 0.99], eps=1e-8)
    c.D_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', betas=[0, 0.99], eps=1e-8)
    c.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss')
    set_run_settings(c, opts)

    # Hyperparameters & settings.
    c.G_kwargs.channel_base = c.D_kwargs.channel_base = opts.cbase
    c.G_kwargs.channel_max = c.D_kwargs.channel_max = opts.cmax
    stylegan2_recipe = opts.cfg in ('stylegan2', 'creps')  # CREPS trains with the StyleGAN2 recipe.
    c.G_kwargs.mapping_kwargs.num_layers = (8 if stylegan2_recipe else 2) if opts.map_depth is None else opts.map_depth
    c.D_kwargs.block_kwargs.freeze_layers = opts.freezed
    c.D_kwargs.epilogue_kwargs.mbstd_group_size = opts.mbstd_group
    c.G_opt_kwargs.lr = (0.002 if stylegan2_recipe else 0.0025) if opts.glr is None else opts.glr
    c.D_opt_kwargs.lr = opts.dlr
    check_batch_split(batch=c.batch_size, processes=c.num_gpus, per_pass=c.batch_gpu,
                      group=c.D_kwargs.epilogue_kwargs.mbstd_group_size)

    # Training set and loss.
    from training import shards
    if shards.holds_shards(opts.data):
        raise click.ClickException(f'--data: a folder of tar shards is streamed for --cfg=stylegan-t*; for '
                                   f'--cfg={opts.cfg}, make a zip of it with dataset_tool.py')
    c.training_set_kwargs, dataset_name, dataset_info = init_dataset_kwargs(data=opts.data, cond=opts.cond,
                                                                            resize=opts.img_resolution)
    c.training_set_kwargs.use_labels = opts.cond
    c.training_set_kwargs.xflip = opts.mirror
    c.training_set_kwargs.random_seed = opts.seed
    if opts.loss == 'stylegan2':
        c.loss_kwargs.r1_gamma = opts.gamma
    else:
        c.loss_kwargs.class_name = 'training.loss.WGANGPLoss'
        c.loss_kwargs.gp_weight = opts.gamma

    # Base configuration.
    c.ema_kimg = c.batch_size * 10 / 32
    if stylegan2_recipe:
        c.G_kwargs.class_name = f'training.networks_{opts.cfg}.Generator'
        c.loss_kwargs.style_mixing_prob = 0.9  # Style mixing regularisation.
        if opts.loss == 'stylegan2':
            c.loss_kwargs.pl_weight = 2  # Path length regularisation.
            c.G_reg_interval = 4  # Lazy regularisation for G.
        if opts.cfg == 'stylegan2':
            if opts.loss == 'stylegan2':
                c.loss_kwargs.pl_no_weight_grad = True  # Faster: no conv weight gradients inside the PL gradient.
            c.G_kwargs.fused_modconv_default = 'inference_only'  # Faster training with regular convolutions.
        if opts.cfg == 'creps':
            c.G_kwargs.channel_base *= 2  # Twice the feature maps in G (D keeps --cbase and --cmax).
            c.G_kwargs.channel_max *= 2
    else:
        c.G_kwargs.class_name = 'training.networks_stylegan3.Generator'
        c.G_kwargs.magnitude_ema_beta = 0.5 ** (c.batch_size / (20 * 1e3))
        if opts.cfg == 'stylegan3-r':
            c.G_kwargs.conv_kernel = 1  # 1x1 convolutions: rotation equivariance.
            c.G_kwargs.channel_base *= 2  # Twice the feature maps to compensate.
            c.G_kwargs.channel_max *= 2
            c.G_kwargs.use_radial_filters = True  # Radially symmetric downsampling filters.
            c.loss_kwargs.blur_init_sigma = 10  # Blur the images seen by D.
            c.loss_kwargs.blur_fade_kimg = c.batch_size * 200 / 32  # Fade the blur out over 200k images.

    # Augmentation.
    if opts.aug != 'noaug':
        c.augment_kwargs = dnnlib.EasyDict(class_name='training.augment.AugmentPipe', xflip=1, rotate90=1, xint=1,
                                           scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1,
                                           lumaflip=1, hue=1, saturation=1)
        if opts.aug == 'ada':
            c.ada_target = opts.target
        if opts.aug == 'fixed':
            c.augment_p = opts.p

    # Performance-related toggles.
    if opts.fp32:
        c.G_kwargs.num_fp16_res = c.D_kwargs.num_fp16_res = 0
        c.D_kwargs.conv_clamp = None
        if opts.cfg == 'creps':
            c.G_kwargs.fc_clamp = None  # CREPS' last two per-pixel blocks keep FP16 and their clamp on CUDA.
        else:
            c.G_kwargs.conv_clamp = None
    if opts.nobench:
        c.cudnn_benchmark = False
    return c, dataset_name, dataset_info


def apply_resume(c, opts, dataset_info):
    """Resume handling: `--resume=RUN_DIR` continues that run exactly with its saved options; a pickle
    initialises the networks of a new run. Returns (config, run directory to continue or None)."""
    if opts.resume is not None and os.path.isdir(opts.resume):
        if opts.resume_kimg != 0 or opts.desc is not None:
            raise click.ClickException('--resume-kimg and --desc apply to a new run; a continued run directory '
                                       'keeps its name and image count')
        continue_dir = os.path.abspath(opts.resume)
        dnnlib.cli.check_output_dir(continue_dir, '--resume')
        if not os.path.isfile(os.path.join(continue_dir, 'training_options.json')):
            raise click.ClickException(f'--resume: {continue_dir} is not a training run directory '
                                       f'(it has no training_options.json)')
        c = merge_continued_options(c, continue_dir)
        resume_pkl, resume_state = find_continuation(continue_dir)
        c.resume_pkl = resume_pkl
        c.resume_state = resume_state
        return c, continue_dir
    if opts.resume is not None:
        check_resume_pkl(opts.resume, c, dataset_info, growing=(opts.train_mode == 'freeze64'))
        c.resume_pkl = opts.resume
        c.resume_kimg = opts.resume_kimg
        c.ada_kimg = 100  # Make ADA react faster at the beginning.
        c.ema_rampup = None  # Disable EMA rampup.
        c.loss_kwargs.blur_init_sigma = 0  # Disable blur rampup.
    elif opts.resume_kimg != 0:
        raise click.ClickException('--resume-kimg needs --resume')
    return c, None

# ----------------------------------------------------------------------------


if __name__ == '__main__':
    main()

# ----------------------------------------------------------------------------
