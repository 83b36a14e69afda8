"""Calculate quality metrics for a network pickle, e.g.

    python calc_metrics.py --metrics=fid50k_full,kid50k_full --network=training-runs/00000-.../network-snapshot-000400.pkl
    python calc_metrics.py --metrics=eqt50k_int,eqr50k --network=https://.../stylegan3-r-ffhq-1024x1024.pkl --data=~/datasets/ffhq.zip
    python calc_metrics.py --metrics=fid50k_full --scale=2 --network=creps-ffhq-256.pkl --data=~/datasets/ffhq-512x512.zip
    python calc_metrics.py --metrics=fid30k_coco64,cs10k --network=stylegan-t.pkl --data=~/datasets/coco-256x256.zip
"""

import copy
import json
import os
import sys
import tempfile

import click
import torch

import dnnlib
import dnnlib.cli
import legacy
from metrics import clip_score
from metrics import metric_main
from metrics import metric_utils
from torch_utils import training_stats
from training import networks_creps
from training import shards
from training.image_files import DatasetError

# ----------------------------------------------------------------------------


def subprocess_fn(rank, args, temp_dir):
    # Process group: NCCL across GPUs, gloo across CPU processes.
    if args.num_gpus > 1:
        init_file = os.path.abspath(os.path.join(temp_dir, '.torch_distributed_init'))
        backend = 'nccl' if args.use_cuda and os.name != 'nt' else 'gloo'
        torch.distributed.init_process_group(backend=backend, init_method=f'file://{init_file}', rank=rank, world_size=args.num_gpus)
    device = torch.device('cuda', rank) if args.use_cuda else torch.device('cpu')
    if args.use_cuda:
        torch.cuda.set_device(device)
    # Full float32 matmuls and convolutions: TF32 on Ampere and newer GPUs moves FID/KID off the published numbers.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    training_stats.init_multiprocessing(rank=rank, sync_device=device if args.num_gpus > 1 else None)
    for default_url, override in args.detector_overrides.items():
        metric_utils.set_detector_override(default_url, override)

    G = copy.deepcopy(args.G).eval().requires_grad_(False).to(device)
    if rank == 0 and args.verbose:
        print(f'Calculating {", ".join(args.metrics)} for {args.network_pkl} on {args.num_gpus} '
              f'{"GPU" if args.use_cuda else "CPU process"}{"es" if args.num_gpus > 1 and not args.use_cuda else "s" if args.num_gpus > 1 else ""}...')

    for metric in args.metrics:
        progress = metric_utils.ProgressMonitor(verbose=(args.verbose and rank == 0))
        result = metric_main.calc_metric(metric=metric, G=G, dataset_kwargs=args.dataset_kwargs, num_gpus=args.num_gpus,
                                         rank=rank, device=device, progress=progress, data_loader_kwargs=args.data_loader_kwargs,
                                         scale=args.scale, clip_scorer=args.get('clip_scorer'))
        if rank == 0:
            metric_main.report_metric(result, run_dir=args.run_dir, snapshot_pkl=args.network_pkl)

    if args.num_gpus > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _spawn_target(rank, args, temp_dir):
    try:
        subprocess_fn(rank, args, temp_dir)
    except metric_utils.MetricError as e:
        print(f'Error: {e}', file=sys.stderr)
        sys.exit(1)

# ----------------------------------------------------------------------------


def parse_comma_list(s):
    return [x for x in s.split(',') if x] if isinstance(s, str) else list(s)


def dataset_kwargs_for(network_pkl, network_dict, data):
    """Dataset options: --data if given, else the training run's options, else the pickle's."""
    if data is not None:
        streamed = shards.holds_shards(os.path.expanduser(data))  # A folder of tar shards (img2dataset's layout).
        return dnnlib.EasyDict(class_name=f'training.dataset.{"ShardDataset" if streamed else "ImageFolderDataset"}', path=data)
    if os.path.isfile(network_pkl):
        options_file = os.path.join(os.path.dirname(os.path.abspath(network_pkl)), 'training_options.json')
        if os.path.isfile(options_file):
            with open(options_file) as f:
                options = json.load(f)
            if options.get('training_set_kwargs'):
                return dnnlib.EasyDict(options['training_set_kwargs'])
    if network_dict.get('training_set_kwargs') is not None:
        return dnnlib.EasyDict(network_dict['training_set_kwargs'])
    return None


@click.command()
@click.pass_context
@click.option('network_pkl', '--network', help='Network pickle filename or URL', metavar='PATH', required=True)
@legacy.trust_pickle_option
@click.option('--metrics', help='Quality metrics', metavar='[NAME|A,B,C|none]', type=parse_comma_list, default='fid50k_full', show_default=True)
@click.option('--data', help='Dataset to evaluate against  [default: look up]', metavar='[ZIP|DIR]')
@click.option('--mirror', help='Enable dataset x-flips  [default: look up]', type=bool, metavar='BOOL')
@click.option('--gpus', help='Number of GPUs (or CPU processes without a GPU) to use', type=click.IntRange(min=1), default=1, show_default=True)
@click.option('--verbose', help='Print optional information', type=bool, default=True, metavar='BOOL', show_default=True)
@click.option('--inception', help='Inception-v3 detector to use instead of the published URL (a local copy)', metavar='PATH|URL')
@click.option('--vgg16', help='VGG16 detector to use instead of the published URL (a local copy)', metavar='PATH|URL')
@click.option('--workers', help='DataLoader worker processes', type=click.IntRange(min=0), default=3, show_default=True)
@click.option('--clip-scorer', help=f'CLIP model of the CLIP score (cs*): a folder in open_clip\'s local-dir layout (open_clip_config.json and open_clip_pytorch_model.bin or .safetensors, as in the model\'s Hugging Face repo) or MODEL:TAG  [default: ${clip_score.SCORER_ENV}, else {clip_score.DEFAULT_SCORER}]', metavar='PATH|MODEL:TAG')
@click.option('--scale', help='Render at this multiple of the training resolution, against reals at (or resized to) that size (CREPS only)', type=dnnlib.cli.FiniteFloat(min=0, min_open=True), default=1, show_default=True, metavar='FLOAT')
def calc_metrics(ctx, network_pkl, metrics, data, mirror, gpus, verbose, inception, vgg16, workers, clip_scorer, scale):
    """Measure the quality of a network pickle, from a training run or published.

    \b
    Metrics of the StyleGAN3 paper:
      fid50k_full  FID, 50k generated images against every dataset image
      kid50k_full  KID, the same images
      pr50k3_full  precision and recall (VGG16 features, k=3), the same images
      ppl2_wend    perceptual path length in W between endpoints, whole image
      eqt50k_int   translation equivariance, integer shifts (EQ-T)
      eqt50k_frac  translation equivariance, subpixel shifts (EQ-T_frac)
      eqr50k       rotation equivariance (EQ-R)

    \b
    Metrics of the earlier papers:
      fid50k       FID against the first 50k dataset images
      kid50k       KID against the first 50k dataset images
      pr50k3       precision and recall against the first 50k dataset images
      is50k        Inception score (CIFAR-10)

    \b
    Metrics of StyleGAN-T (text to image):
      fid30k_coco64   zero-shot FID at 64x64, 30k images from random COCO val captions
      fid30k_coco256  the same at 256x256
      cs10k           CLIP score, 10k images from random training captions
      cs10k_coco      CLIP score, 10k images from random COCO val captions

    Sized variants such as fid5k_full, kid1k_full, pr5k3_full, is1k, eqt1k_int, eqr200, fid1k_coco64
    or cs200 use the given number of generated images instead of the published count (quick checks;
    not comparable with papers).

    The COCO metrics compare with the COCO val 2014 images of coco_val256.zip (made by dataset_tool.py
    --source=.../captions_val2014.json --dest=coco_val256.zip --resolution=256x256 --transform=center-crop),
    found at $COCOPATH, else beside the dataset (or inside it, when it is a folder). --clip-scorer picks
    the CLIP model of cs*; offline, copy the model's Hugging Face repo folder and pass it.

    --scale renders a CREPS network at int(resolution * scale) pixels and compares it with a dataset
    prepared at that size (the CREPS protocol), or with the images of a dataset at another size resized
    to it (Lanczos, as dataset_tool.py --resolution); the results carry "scale" in their JSON line. The
    equivariance metrics need scale 1.
    """
    if metrics == ['none']:
        metrics = []
    bad = [m for m in metrics if not metric_main.is_valid_metric(m)]
    if bad:
        ctx.fail(f'--metrics: unknown metric {bad[0]!r}; valid metrics: {", ".join(metric_main.list_valid_metrics())}')
    if not metrics:
        return

    args = dnnlib.EasyDict(metrics=metrics, num_gpus=gpus, network_pkl=network_pkl, verbose=verbose, scale=scale)
    if scale != 1 and any(metric.startswith(('eqt', 'eqr')) for metric in metrics):
        ctx.fail('--scale: the equivariance metrics (eqt*, eqr*) compare renderings at the training resolution; '
                 'compute them with --scale=1')
    args.use_cuda = torch.cuda.is_available()
    if args.use_cuda and gpus > torch.cuda.device_count():
        ctx.fail(f'--gpus={gpus}, but only {torch.cuda.device_count()} GPUs are present')
    args.detector_overrides = {}
    if inception:
        args.detector_overrides[metric_utils.INCEPTION_URL] = inception
    if vgg16:
        args.detector_overrides[metric_utils.VGG16_URL] = vgg16
    args.data_loader_kwargs = dict(pin_memory=args.use_cuda, num_workers=workers)
    if workers > 0:
        args.data_loader_kwargs['prefetch_factor'] = 2

    # Load the network.
    if not dnnlib.util.is_url(network_pkl, allow_file_urls=True) and not os.path.isfile(network_pkl):
        raise click.ClickException(f'--network: no such file: {network_pkl}')
    if verbose:
        print(f'Loading network from "{network_pkl}"...')
    try:
        with dnnlib.util.open_url(network_pkl, verbose=verbose) as f:
            network_dict = legacy.load_network_pkl(f)
    except (legacy.NetworkPickleError, dnnlib.util.DownloadError, OSError) as e:
        raise click.ClickException(f'--network: {e}')
    args.G = network_dict['G_ema']
    if args.G is None:
        raise click.ClickException(f'--network: {network_pkl} holds no G_ema generator')
    try:
        size = networks_creps.rendering_resolution(args.G, scale)
    except ValueError as e:
        raise click.ClickException(f'--scale: {e}')

    # Dataset options. Only FID, KID and precision/recall read the reals, and cs* without _coco the captions: the
    # others run without a dataset (as with a published pickle whose recorded dataset path exists only on the
    # machine that trained it; the COCO metrics then find the COCO zip through COCOPATH).
    needs_reals = any(metric_main.reads_dataset(metric) for metric in metrics)
    args.dataset_kwargs = dataset_kwargs_for(network_pkl, network_dict, data)
    if args.dataset_kwargs is None:
        if needs_reals:
            raise click.ClickException('--data is required: the network is not inside a training run directory and '
                                       'its pickle records no dataset')
        args.dataset_kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=None)
    if scale == 1:
        args.dataset_kwargs.resolution = args.G.img_resolution
    else:  # Reals at the rendering resolution (the CREPS protocol) or at the training one (resized to match).
        args.dataset_kwargs.pop('resolution', None)
    args.dataset_kwargs.use_labels = (args.G.c_dim != 0)
    if mirror is not None:
        args.dataset_kwargs.xflip = mirror
    if args.dataset_kwargs.get('path') is not None:
        args.dataset_kwargs.path = os.path.expanduser(args.dataset_kwargs.path)
    if needs_reals:
        path = args.dataset_kwargs.path
        if not os.path.exists(path):
            raise click.ClickException(f'--data: no such dataset: {path}')
        try:
            reals = dnnlib.util.construct_class_by_name(**args.dataset_kwargs)
        except OSError as e:  # training.dataset.DatasetError names the offending file.
            raise click.ClickException(f'--data: {e}')
        if verbose and scale != 1:
            how = 'as they are' if reals.resolution == size else f'resized from {reals.resolution}x{reals.resolution}'
            print(f'Rendering at {size}x{size} ({scale:g} times the training resolution), against reals {how}')

    # What the metrics need besides the detectors (streamable data, the COCO zip, the CLIP scorer), checked now;
    # the scorer is loaded by the metric itself moments later.
    try:
        inputs = metric_main.check_inputs(metrics, args.dataset_kwargs, clip_scorer=clip_scorer, load_scorer=False)
    except metric_utils.MetricError as e:
        raise click.ClickException(str(e))
    args.clip_scorer = inputs.clip_scorer
    if verbose and inputs.coco_zip is not None:
        print(f'COCO val images and captions: {inputs.coco_zip}')
    if verbose and inputs.clip_scorer is not None:
        print(f'CLIP scorer: {inputs.clip_scorer}')

    # Where the results go: metric-*.jsonl in the training run that holds the pickle, none elsewhere.
    args.run_dir = None
    if os.path.isfile(network_pkl):
        pkl_dir = os.path.dirname(os.path.abspath(network_pkl))
        if os.path.isfile(os.path.join(pkl_dir, 'training_options.json')):
            args.run_dir = pkl_dir
    if verbose:
        print('Dataset options:')
        print(json.dumps(args.dataset_kwargs, indent=2))

    # Run, in one process or several.
    with tempfile.TemporaryDirectory() as temp_dir:
        if args.num_gpus == 1:
            try:
                subprocess_fn(rank=0, args=args, temp_dir=temp_dir)
            except metric_utils.MetricError as e:
                raise click.ClickException(str(e))
            except OSError as e:  # A dataset image unreadable after all (training.dataset.DatasetError), a full disk.
                raise click.ClickException(f'--data: {e}' if isinstance(e, DatasetError) else str(e))
        else:
            try:
                torch.multiprocessing.spawn(fn=_spawn_target, args=(args, temp_dir), nprocs=args.num_gpus)
            except torch.multiprocessing.ProcessExitedException:
                raise click.ClickException('a metric process failed (its message is above)')


if __name__ == '__main__':
    calc_metrics()
