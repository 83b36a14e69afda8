"""The main training loop: alternates G and D phases, keeps G_ema, adapts ADA's p, and writes
progress, image grids, statistics, network snapshots and training-state checkpoints.

Every process of a distributed run executes `training_loop()`; only rank 0 writes files.
"""

import copy
import glob
import json
import os
import pickle
import random
import re
import time

import numpy as np
import PIL.Image
import torch

import dnnlib
import legacy
from metrics import metric_main
from torch_utils import misc
from torch_utils import training_stats
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import grid_sample_gradfix

STATE_FORMAT_VERSION = 1
SNAPSHOT_PATTERN = re.compile(r'network-snapshot-(\d+)\.pkl$')

# ----------------------------------------------------------------------------
# File names and atomic writes.


def snapshot_pkl_name(kimg):
    return f'network-snapshot-{kimg:06d}.pkl'


def training_state_name(kimg):
    return f'training-state-{kimg:06d}.pt'


def write_atomically(path, write_fn):
    """Calls write_fn(file) on a temporary file beside `path`, then renames it over `path`.

    A crash at any moment leaves either the old file or the complete new one, never a partial one.
    """
    tmp_path = f'{path}.tmp-{os.getpid()}'
    try:
        with open(tmp_path, 'wb') as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def remove_partial_files(run_dir):
    """Deletes the temporary files that a killed process left behind in write_atomically()."""
    for path in glob.glob(os.path.join(run_dir, '*.tmp-*')):
        if re.search(r'\.tmp-\d+$', path):
            os.remove(path)


def list_snapshots(run_dir):
    """[(kimg, pkl path, state path or None)] of a run directory, oldest first."""
    result = []
    for path in glob.glob(os.path.join(run_dir, 'network-snapshot-*.pkl')):
        match = SNAPSHOT_PATTERN.search(os.path.basename(path))
        if match is None:
            continue
        kimg = int(match.group(1))
        state = os.path.join(run_dir, training_state_name(kimg))
        result.append((kimg, path, state if os.path.isfile(state) else None))
    return sorted(result)


def prune_snapshots(run_dir, keep):
    """Deletes all but the newest `keep` snapshots (and their training states)."""
    snapshots = list_snapshots(run_dir)
    for _kimg, pkl_path, state_path in snapshots[:max(len(snapshots) - keep, 0)]:
        if state_path is not None:
            os.remove(state_path)
        os.remove(pkl_path)

# ----------------------------------------------------------------------------
# Image grids.


def setup_snapshot_image_grid(training_set, random_seed=0, max_grid_size=(32, 32)):
    """Picks the reals shown in reals.png: one class per row when labelled. Returns (grid_size, images, labels)."""
    rnd = np.random.RandomState(random_seed)
    gw = min(np.clip(7680 // training_set.image_shape[2], 7, 32), max_grid_size[0])
    gh = min(np.clip(4320 // training_set.image_shape[1], 4, 32), max_grid_size[1])

    if not training_set.has_labels:
        all_indices = list(range(len(training_set)))
        rnd.shuffle(all_indices)
        grid_indices = [all_indices[i % len(all_indices)] for i in range(gw * gh)]
    else:
        label_groups = dict()
        for idx in range(len(training_set)):
            label = tuple(training_set.get_details(idx).raw_label.flat[::-1])
            label_groups.setdefault(label, []).append(idx)
        label_order = sorted(label_groups.keys())
        for label in label_order:
            rnd.shuffle(label_groups[label])
        grid_indices = []
        for y in range(gh):
            indices = label_groups[label_order[y % len(label_order)]]
            grid_indices += [indices[x % len(indices)] for x in range(gw)]
            label_groups[label_order[y % len(label_order)]] = indices[gw:] + indices[:gw]

    images, labels = zip(*[training_set[i] for i in grid_indices])
    return (int(gw), int(gh)), np.stack(images), np.stack(labels)


def save_image_grid(img, fname, drange, grid_size):
    """Tiles a batch [N, C, H, W] into a gw x gh PNG, mapping `drange` to [0, 255]."""
    lo, hi = drange
    img = np.asarray(img, dtype=np.float32)
    img = (img - lo) * (255 / (hi - lo))
    img = np.rint(img).clip(0, 255).astype(np.uint8)

    gw, gh = grid_size
    _N, C, H, W = img.shape
    img = img.reshape([gh, gw, C, H, W]).transpose(0, 3, 1, 4, 2).reshape([gh * H, gw * W, C])
    assert C in (1, 3)
    image = PIL.Image.fromarray(img[:, :, 0], 'L') if C == 1 else PIL.Image.fromarray(img, 'RGB')
    write_atomically(fname, lambda f: image.save(f, format='png'))

# ----------------------------------------------------------------------------
# Helpers of the loop.


class SkippingSampler(torch.utils.data.Sampler):
    """Yields the items of `sampler` after dropping the first `skip` (to continue a stream exactly)."""

    def __init__(self, sampler, skip):
        super().__init__()
        self.sampler = sampler
        self.skip = skip

    def __iter__(self):
        iterator = iter(self.sampler)
        for _ in range(self.skip):
            next(iterator)
        yield from iterator


def get_rng_states(device):
    states = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if device.type == 'cuda':
        states['cuda'] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states, device):
    torch.set_rng_state(states['torch'])
    np.random.set_state(states['numpy'])
    random.setstate(states['python'])
    if device.type == 'cuda' and 'cuda' in states:
        torch.cuda.set_rng_state(states['cuda'], device)


def gather_objects(obj, num_gpus):
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if num_gpus == 1:
        return [obj]
    result = [None] * num_gpus
    torch.distributed.all_gather_object(result, obj)
    return result


def reduce_and_clean_gradients(module, num_gpus):
    """Averages gradients over processes and zeroes non-finite entries; returns the count of those."""
    params = [param for param in module.parameters() if param.grad is not None]
    if len(params) == 0:
        return torch.zeros([], dtype=torch.int64)
    flat = torch.cat([param.grad.flatten() for param in params])
    if num_gpus > 1:
        torch.distributed.all_reduce(flat)
        flat /= num_gpus
    num_nonfinite = (~torch.isfinite(flat)).sum()
    torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
    for param, grad in zip(params, flat.split([param.numel() for param in params])):
        param.grad = grad.reshape(param.shape)
    return num_nonfinite


def ada_adjustment(rate, target, batch_size, ada_interval, ada_kimg):
    """Step of ADA's p: toward more augmentation when D is too sure about reals (rate of positive logits above
    target), less otherwise, at a speed that takes p from 0 to 1 in ada_kimg thousand images."""
    return np.sign(rate - target) * (batch_size * ada_interval) / (ada_kimg * 1000)


@torch.no_grad()
def update_ema(G_ema, G, ema_beta):
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, ema_beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def cpu_memory_gb():
    """Resident memory of this process in GiB (0 where /proc is unavailable)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**30
    except (OSError, ValueError, IndexError):
        return 0.0


def open_tensorboard(run_dir):
    try:
        import torch.utils.tensorboard as tensorboard
    except ImportError as err:
        print(f'Skipping TensorBoard export: torch.utils.tensorboard is not available ({err})')
        return None
    return tensorboard.SummaryWriter(run_dir)

# ----------------------------------------------------------------------------


def training_loop(
    run_dir                 = '.',      # Output directory.
    training_set_kwargs     = {},       # Options for the training set.
    data_loader_kwargs      = {},       # Options for torch.utils.data.DataLoader.
    G_kwargs                = {},       # Options for the generator network.
    D_kwargs                = {},       # Options for the discriminator network.
    G_opt_kwargs            = {},       # Options for the generator optimizer.
    D_opt_kwargs            = {},       # Options for the discriminator optimizer.
    augment_kwargs          = None,     # Options for the augmentation pipeline; None = disable.
    loss_kwargs             = {},       # Options for the loss function.
    metrics                 = [],       # Metrics to evaluate at each network snapshot.
    random_seed             = 0,        # Global random seed.
    num_gpus                = 1,        # Number of processes taking part in training.
    rank                    = 0,        # Rank of this process in [0, num_gpus).
    batch_size              = 4,        # Total batch size over all processes for one training iteration.
    batch_gpu               = 4,        # Number of samples per process and round (gradient accumulation).
    ema_kimg                = 10,       # Half-life of the exponential moving average of G's weights.
    ema_rampup              = 0.05,     # EMA ramp-up coefficient; None = no ramp-up.
    G_reg_interval          = None,     # How often to run G's regularisation; None = with every main step.
    D_reg_interval          = 16,       # How often to run D's regularisation; None = with every main step.
    augment_p               = 0,        # Initial augmentation probability.
    ada_target              = None,     # ADA target value; None = keep p fixed.
    ada_interval            = 4,        # How often (in iterations) to adjust p.
    ada_kimg                = 500,      # ADA speed: how many kimg p needs to go from 0 to 1.
    total_kimg              = 25000,    # Length of training, in thousands of real images.
    kimg_per_tick           = 4,        # Progress reporting interval.
    image_snapshot_ticks    = 50,       # How often to save image grids; None = never.
    network_snapshot_ticks  = 50,       # How often to save network snapshots; None = never.
    resume_pkl              = None,     # Network pickle to start from (path or URL); None = train from scratch.
    resume_kimg             = 0,        # First kimg to report when resuming from a pickle.
    cudnn_benchmark         = True,     # Enable torch.backends.cudnn.benchmark?
    abort_fn                = None,     # Callback: training stops when it returns True.
    progress_fn             = None,     # Callback: progress_fn(cur_kimg, total_kimg) once per tick.
    resume_state            = None,     # Training-state file of an interrupted run: continue it exactly.
    keep_snapshots          = None,     # Keep only the newest N snapshots; None = keep all.
    device                  = None,     # Device of this process; None = cuda:<rank> if available, else CPU.
):
    # Initialize.
    start_time = time.time()
    if device is None:
        device = torch.device('cuda', rank) if torch.cuda.is_available() else torch.device('cpu')
    device = torch.device(device)
    rank_seed = random_seed * num_gpus + rank
    np.random.seed(rank_seed)
    torch.manual_seed(rank_seed)
    random.seed(rank_seed)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 changes results noticeably; training expects float32.
    torch.backends.cudnn.allow_tf32 = False
    conv2d_gradfix.enabled = True                  # Double backward for R1 and path length regularisation.
    grid_sample_gradfix.enabled = True
    assert batch_size % (num_gpus * batch_gpu) == 0
    num_rounds = batch_size // (num_gpus * batch_gpu)
    batch_per_gpu = batch_size // num_gpus

    state = None
    if resume_state is not None:
        state = torch.load(resume_state, map_location='cpu', weights_only=False)
        assert state['format_version'] == STATE_FORMAT_VERSION, f'{resume_state}: unknown format version'

    # Load the training set; an exact resume continues the same stream of images.
    if rank == 0:
        print('Loading training set...')
    training_set = dnnlib.util.construct_class_by_name(**training_set_kwargs)
    sampler = misc.InfiniteSampler(dataset=training_set, rank=rank, num_replicas=num_gpus, seed=random_seed)
    if state is not None:
        sampler = SkippingSampler(sampler, skip=state['batch_idx'] * batch_per_gpu)
    training_set_iterator = iter(torch.utils.data.DataLoader(dataset=training_set, sampler=sampler,
                                                             batch_size=batch_per_gpu, **data_loader_kwargs))
    if rank == 0:
        print()
        print('Num images: ', len(training_set))
        print('Image shape:', training_set.image_shape)
        print('Label shape:', training_set.label_shape)
        print()

    # Construct networks.
    if rank == 0:
        print('Constructing networks...')
    common_kwargs = dict(c_dim=training_set.label_dim, img_resolution=training_set.resolution,
                         img_channels=training_set.num_channels)
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common_kwargs).train().requires_grad_(False).to(device)
    D = dnnlib.util.construct_class_by_name(**D_kwargs, **common_kwargs).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()

    # Resume from an existing pickle.
    resume_data = None
    if resume_pkl is not None:
        if rank == 0:
            print(f'Resuming from "{resume_pkl}"')
        with dnnlib.util.open_url(resume_pkl) as f:
            resume_data = legacy.load_network_pkl(f)
        for name, module in [('G', G), ('D', D), ('G_ema', G_ema)]:
            if resume_data[name] is not None:
                misc.copy_params_and_buffers(resume_data[name], module, require_all=False)

    # Print network summary tables.
    if rank == 0:
        z = torch.empty([batch_gpu, G.z_dim], device=device)
        c = torch.empty([batch_gpu, G.c_dim], device=device)
        img = misc.print_module_summary(G, [z, c])
        misc.print_module_summary(D, [img, c])

    # Set up the augmentation pipeline; with ADA, a resumed run keeps the p it had reached.
    augment_pipe = None
    ada_stats = None
    if augment_kwargs is not None and (augment_p > 0 or ada_target is not None):
        augment_pipe = dnnlib.util.construct_class_by_name(**augment_kwargs).train().requires_grad_(False).to(device)
        augment_pipe.p.copy_(torch.as_tensor(augment_p))
        resumed_pipe = resume_data['augment_pipe'] if resume_data is not None else None
        if ada_target is not None and isinstance(resumed_pipe, torch.nn.Module) and hasattr(resumed_pipe, 'p'):
            augment_pipe.p.copy_(resumed_pipe.p.detach().to(device))
        if ada_target is not None:
            ada_stats = training_stats.Collector(regex='Loss/signs/real', keep_previous=False)

    # Every process starts from rank 0's weights.
    if rank == 0 and num_gpus > 1:
        print(f'Distributing across {num_gpus} processes...')
    for module in [G, D, G_ema, augment_pipe]:
        if module is not None and num_gpus > 1:
            for tensor in misc.params_and_buffers(module):
                torch.distributed.broadcast(tensor, src=0)

    # Set up training phases: lazy regularisation runs every `interval` steps with a larger gain, and the
    # optimizer is adjusted so that the main and regularisation steps together match a non-lazy schedule.
    if rank == 0:
        print('Setting up training phases...')
    loss = dnnlib.util.construct_class_by_name(device=device, G=G, D=D, augment_pipe=augment_pipe, **loss_kwargs)
    phases = []
    optimizers = dict()
    for name, module, opt_kwargs, reg_interval in [('G', G, G_opt_kwargs, G_reg_interval),
                                                   ('D', D, D_opt_kwargs, D_reg_interval)]:
        opt_kwargs = dnnlib.EasyDict(opt_kwargs)
        if 'betas' in opt_kwargs:
            opt_kwargs.betas = [float(beta) for beta in opt_kwargs.betas]  # Adam refuses a mix of int and float.
        if reg_interval is None:
            optimizers[name] = dnnlib.util.construct_class_by_name(params=module.parameters(), **opt_kwargs)
            phases += [dnnlib.EasyDict(name=name + 'both', module=module, opt=optimizers[name], interval=1)]
        else:
            mb_ratio = reg_interval / (reg_interval + 1)
            opt_kwargs.lr = opt_kwargs.lr * mb_ratio
            opt_kwargs.betas = [beta ** mb_ratio for beta in opt_kwargs.betas]
            optimizers[name] = dnnlib.util.construct_class_by_name(params=module.parameters(), **opt_kwargs)
            phases += [dnnlib.EasyDict(name=name + 'main', module=module, opt=optimizers[name], interval=1)]
            phases += [dnnlib.EasyDict(name=name + 'reg', module=module, opt=optimizers[name], interval=reg_interval)]

    # Export the image grids; the latents of the fakes are fixed by the seed, so every snapshot shows the same.
    grid_size = grid_z = grid_c = None
    if rank == 0:
        print('Exporting sample images...')
        # About 4K pixels of images on a GPU; on the CPU, generating that many fakes would dominate short runs.
        max_grid_size = (32, 32) if device.type == 'cuda' else (8, 4)
        grid_size, images, labels = setup_snapshot_image_grid(training_set=training_set, random_seed=random_seed,
                                                              max_grid_size=max_grid_size)
        if not os.path.isfile(os.path.join(run_dir, 'reals.png')):
            save_image_grid(images, os.path.join(run_dir, 'reals.png'), drange=[0, 255], grid_size=grid_size)
        grid_rng = torch.Generator().manual_seed(random_seed)
        grid_z = torch.randn([labels.shape[0], G.z_dim], generator=grid_rng).to(device).split(batch_gpu)
        grid_c = torch.from_numpy(labels).to(device).split(batch_gpu)
        if state is None:
            images = generate_grid_images(G_ema, grid_z, grid_c)
            save_image_grid(images, os.path.join(run_dir, 'fakes_init.png'), drange=[-1, 1], grid_size=grid_size)

    # Initialize logs.
    if rank == 0:
        print('Initializing logs...')
    stats_collector = training_stats.Collector(regex='.*')
    stats_metrics = dict()
    stats_jsonl = None
    stats_tfevents = None
    if rank == 0:
        stats_jsonl = open(os.path.join(run_dir, 'stats.jsonl'), 'at')
        stats_tfevents = open_tensorboard(run_dir)

    # Latents and labels of fakes are drawn for the whole batch from one stream shared by all processes, each
    # taking its slice: the result is then independent of the number of processes.
    latent_rng = torch.Generator().manual_seed(random_seed)

    # Training state.
    cur_nimg = resume_kimg * 1000
    cur_tick = 0
    tick_start_nimg = cur_nimg
    batch_idx = 0
    ada_sign_sum = 0
    ada_sign_count = 0
    if state is not None:
        cur_nimg = state['cur_nimg']
        cur_tick = state['cur_tick']
        tick_start_nimg = state['tick_start_nimg']
        batch_idx = state['batch_idx']
        ada_sign_sum = state['ada_sign_sum']
        ada_sign_count = state['ada_sign_count']
        start_time -= state['total_sec']
        for name, opt in optimizers.items():
            opt.load_state_dict(state['optimizers'][name])
        latent_rng.set_state(state['latent_rng'])
        if augment_pipe is not None and state['augment_p'] is not None:
            augment_pipe.p.copy_(torch.as_tensor(state['augment_p']))
        if len(state['ranks']) == num_gpus:
            loss.load_state_dict(state['ranks'][rank]['loss'])
            set_rng_states(state['ranks'][rank]['rng'], device)
        elif rank == 0:
            print(f'The training state was written by {len(state["ranks"])} processes, not {num_gpus}: '
                  f'random streams restart, so the run continues, but not bit-exactly.')
    if state is not None and cur_nimg >= total_kimg * 1000:
        if rank == 0:
            print(f'The run has already trained for {cur_nimg / 1000:g} kimg; nothing to do for {total_kimg} kimg.')
        for log_file in (stats_jsonl, stats_tfevents):
            if log_file is not None:
                log_file.close()
        return
    tick_start_time = time.time()
    maintenance_time = tick_start_time - start_time
    if progress_fn is not None:
        progress_fn(cur_nimg // 1000, total_kimg)

    if rank == 0:
        print(f'Training for {total_kimg} kimg...')
        print()
    while True:

        # Fetch training data.
        with torch.autograd.profiler.record_function('data_fetch'):
            phase_real_img, phase_real_c = next(training_set_iterator)
            phase_real_img = (phase_real_img.to(device).to(torch.float32) / 127.5 - 1).split(batch_gpu)
            phase_real_c = phase_real_c.to(device).split(batch_gpu)
            own = slice(rank * batch_per_gpu, (rank + 1) * batch_per_gpu)
            all_gen_z = torch.randn([len(phases), batch_size, G.z_dim], generator=latent_rng)
            all_gen_c_idx = torch.randint(len(training_set), [len(phases), batch_size], generator=latent_rng)
            all_gen_z = [phase_z[own].to(device).split(batch_gpu) for phase_z in all_gen_z]
            all_gen_c = [torch.from_numpy(np.stack([training_set.get_label(int(i)) for i in phase_idx[own]]))
                         .to(device).split(batch_gpu) for phase_idx in all_gen_c_idx]

        # Execute training phases.
        for phase, phase_gen_z, phase_gen_c in zip(phases, all_gen_z, all_gen_c):
            if batch_idx % phase.interval != 0:
                continue
            phase.opt.zero_grad(set_to_none=True)
            phase.module.requires_grad_(True)
            for real_img, real_c, gen_z, gen_c in zip(phase_real_img, phase_real_c, phase_gen_z, phase_gen_c):
                # Rounds average rather than add up, so the step does not depend on batch_gpu.
                loss.accumulate_gradients(phase=phase.name, real_img=real_img, real_c=real_c, gen_z=gen_z,
                                          gen_c=gen_c, gain=phase.interval / num_rounds, cur_nimg=cur_nimg)
            phase.module.requires_grad_(False)
            with torch.autograd.profiler.record_function(phase.name + '_opt'):
                num_nonfinite = reduce_and_clean_gradients(phase.module, num_gpus)
                training_stats.report0('Progress/nonfinite_grads', num_nonfinite)
                phase.opt.step()

        # Update G_ema.
        with torch.autograd.profiler.record_function('Gema'):
            ema_nimg = ema_kimg * 1000
            if ema_rampup is not None:
                ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
            ema_beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8))
            update_ema(G_ema, G, ema_beta)

        # Update state.
        cur_nimg += batch_size
        batch_idx += 1

        # Move ADA's p toward the target rate of positive D outputs on reals.
        if ada_stats is not None:
            ada_stats.update()
            num = ada_stats.num('Loss/signs/real')
            if num > 0:
                ada_sign_sum += int(round(ada_stats.mean('Loss/signs/real') * num))
                ada_sign_count += num
            if batch_idx % ada_interval == 0 and ada_sign_count > 0:
                adjust = ada_adjustment(rate=ada_sign_sum / ada_sign_count, target=ada_target,
                                        batch_size=batch_size, ada_interval=ada_interval, ada_kimg=ada_kimg)
                augment_pipe.p.copy_((augment_pipe.p + adjust).max(misc.constant(0, device=device)))
                ada_sign_sum = 0
                ada_sign_count = 0

        # Perform maintenance tasks once per tick.
        done = (cur_nimg >= total_kimg * 1000)
        if (not done) and (cur_tick != 0) and (cur_nimg < tick_start_nimg + kimg_per_tick * 1000):
            continue

        # Print status line, accumulating the same information in training_stats.
        tick_end_time = time.time()
        fields = []
        fields += [f"tick {training_stats.report0('Progress/tick', cur_tick):<5d}"]
        fields += [f"kimg {training_stats.report0('Progress/kimg', cur_nimg / 1e3):<8.1f}"]
        fields += [f"time {dnnlib.util.format_time(training_stats.report0('Timing/total_sec', tick_end_time - start_time)):<12s}"]
        fields += [f"sec/tick {training_stats.report0('Timing/sec_per_tick', tick_end_time - tick_start_time):<7.1f}"]
        fields += [f"sec/kimg {training_stats.report0('Timing/sec_per_kimg', (tick_end_time - tick_start_time) / (cur_nimg - tick_start_nimg) * 1e3):<7.2f}"]
        fields += [f"maintenance {training_stats.report0('Timing/maintenance_sec', maintenance_time):<6.1f}"]
        fields += [f"cpumem {training_stats.report0('Resources/cpu_mem_gb', cpu_memory_gb()):<6.2f}"]
        if device.type == 'cuda':
            fields += [f"gpumem {training_stats.report0('Resources/peak_gpu_mem_gb', torch.cuda.max_memory_allocated(device) / 2**30):<6.2f}"]
            fields += [f"reserved {training_stats.report0('Resources/peak_gpu_mem_reserved_gb', torch.cuda.max_memory_reserved(device) / 2**30):<6.2f}"]
            torch.cuda.reset_peak_memory_stats(device)
        fields += [f"augment {training_stats.report0('Progress/augment', float(augment_pipe.p.cpu()) if augment_pipe is not None else 0):.3f}"]
        training_stats.report0('Timing/total_hours', (tick_end_time - start_time) / (60 * 60))
        training_stats.report0('Timing/total_days', (tick_end_time - start_time) / (24 * 60 * 60))
        if rank == 0:
            print(' '.join(fields))

        # Check for abort.
        if (not done) and (abort_fn is not None) and abort_fn():
            done = True
            if rank == 0:
                print()
                print('Aborting...')

        # Save image snapshot.
        if (rank == 0) and (image_snapshot_ticks is not None) and (done or cur_tick % image_snapshot_ticks == 0):
            images = generate_grid_images(G_ema, grid_z, grid_c)
            save_image_grid(images, os.path.join(run_dir, f'fakes{cur_nimg // 1000:06d}.png'), drange=[-1, 1],
                            grid_size=grid_size)

        # Save network snapshot and the training state beside it.
        if (network_snapshot_ticks is not None) and (done or cur_tick % network_snapshot_ticks == 0):
            snapshot_data = dict(G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe,
                                 training_set_kwargs=dict(training_set_kwargs))
            for key, value in snapshot_data.items():
                if isinstance(value, torch.nn.Module):
                    value = copy.deepcopy(value).eval().requires_grad_(False)
                    if num_gpus > 1:
                        misc.check_ddp_consistency(value, ignore_regex=r'.*\.[^.]+_(avg|ema)')
                        for tensor in misc.params_and_buffers(value):
                            torch.distributed.broadcast(tensor, src=0)
                    snapshot_data[key] = value.cpu()
            rank_states = gather_objects(dict(rng=get_rng_states(device), loss=loss.state_dict()), num_gpus)
            if rank == 0:
                training_state = dict(
                    format_version=STATE_FORMAT_VERSION,
                    cur_nimg=cur_nimg,
                    cur_tick=cur_tick + 1,
                    tick_start_nimg=cur_nimg,
                    batch_idx=batch_idx,
                    ada_sign_sum=ada_sign_sum,
                    ada_sign_count=ada_sign_count,
                    augment_p=float(augment_pipe.p.cpu()) if augment_pipe is not None else None,
                    total_sec=time.time() - start_time,
                    optimizers={name: opt.state_dict() for name, opt in optimizers.items()},
                    latent_rng=latent_rng.get_state(),
                    ranks=rank_states,
                    num_gpus=num_gpus,
                    batch_size=batch_size,
                )
                kimg = cur_nimg // 1000
                # The pickle first: a state file is only ever beside a complete snapshot.
                write_atomically(os.path.join(run_dir, snapshot_pkl_name(kimg)),
                                 lambda f: pickle.dump(snapshot_data, f))
                write_atomically(os.path.join(run_dir, training_state_name(kimg)),
                                 lambda f: torch.save(training_state, f))
                if keep_snapshots is not None:
                    prune_snapshots(run_dir, keep_snapshots)

            # Evaluate metrics on the snapshot (every process takes part).
            if len(metrics) > 0 and rank == 0:
                print('Evaluating metrics...')
            for metric in metrics:
                result_dict = metric_main.calc_metric(metric=metric, G=snapshot_data['G_ema'],
                                                      dataset_kwargs=training_set_kwargs, num_gpus=num_gpus, rank=rank,
                                                      device=device, data_loader_kwargs=data_loader_kwargs)
                if rank == 0:
                    metric_main.report_metric(result_dict, run_dir=run_dir,
                                              snapshot_pkl=os.path.join(run_dir, snapshot_pkl_name(cur_nimg // 1000)))
                stats_metrics.update(result_dict.results)
            del snapshot_data

        # Collect statistics.
        stats_collector.update()
        stats_dict = stats_collector.as_dict()

        # Update logs.
        timestamp = time.time()
        if stats_jsonl is not None:
            stats_jsonl.write(json.dumps(dict(stats_dict, timestamp=timestamp)) + '\n')
            stats_jsonl.flush()
        if stats_tfevents is not None:
            global_step = int(cur_nimg / 1e3)
            walltime = timestamp - start_time
            for name, value in stats_dict.items():
                stats_tfevents.add_scalar(name, value.mean, global_step=global_step, walltime=walltime)
            for name, value in stats_metrics.items():
                stats_tfevents.add_scalar(f'Metrics/{name}', value, global_step=global_step, walltime=walltime)
            stats_tfevents.flush()
        if progress_fn is not None:
            progress_fn(cur_nimg // 1000, total_kimg)

        # Update state.
        cur_tick += 1
        tick_start_nimg = cur_nimg
        tick_start_time = time.time()
        maintenance_time = tick_start_time - tick_end_time
        if done:
            break

    # Done.
    if stats_jsonl is not None:
        stats_jsonl.close()
    if stats_tfevents is not None:
        stats_tfevents.close()
    if rank == 0:
        print()
        print('Exiting...')


@torch.no_grad()
def generate_grid_images(G_ema, grid_z, grid_c):
    return torch.cat([G_ema(z=z, c=c, noise_mode='const').cpu() for z, c in zip(grid_z, grid_c)]).numpy()

# ----------------------------------------------------------------------------
