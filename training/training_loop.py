"""The main training loop: alternates G and D phases, keeps G_ema, adapts ADA's p, and writes
progress, image grids, statistics, network snapshots and training states.

Every process of a distributed run executes `training_loop()`; only rank 0 writes files.
"""

import contextlib
import copy
import json
import os
import random
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
from training import snapshots
from training.training_state import TrainingState

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
    d_steps                 = 1,        # Discriminator updates per generator update (each on its own batch).
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
    pretrained_encoders     = None,     # StyleGAN-T: where the text encoder and D's ViT come from (training/encoders.py).
    G_train_prefixes        = None,     # Train only G's parameters whose names start so; None = all (--train-mode).
    metric_kwargs           = {},       # Further MetricOptions of the metrics (clip_scorer).
    device                  = None,     # Device of this process; None = cuda:<rank> if available, else CPU.
):
    start_time = time.time()
    device = torch.device(device if device is not None else ('cuda', rank) if torch.cuda.is_available() else 'cpu')
    setup_process(random_seed=random_seed, num_gpus=num_gpus, rank=rank, cudnn_benchmark=cudnn_benchmark)
    assert batch_size % (num_gpus * batch_gpu) == 0
    num_rounds = batch_size // (num_gpus * batch_gpu)
    saved_state = snapshots.read_training_state(resume_state) if resume_state is not None else None

    # Data: an exact continuation picks up the stream of images where the interrupted run left it.
    sampler_start = saved_state['batch_idx'] * batch_size if saved_state is not None else 0
    training_set, data_iter = open_training_data(training_set_kwargs=training_set_kwargs, data_loader_kwargs=data_loader_kwargs,
        random_seed=random_seed, num_gpus=num_gpus, rank=rank, batch_size=batch_size, start_index=sampler_start)

    # Networks, from scratch or from a pickle; all processes start from rank 0's weights.
    G, D, G_ema = construct_networks(training_set=training_set, G_kwargs=G_kwargs, D_kwargs=D_kwargs,
        resume_pkl=resume_pkl, exact=saved_state is not None, rank=rank, device=device,
        pretrained_encoders=pretrained_encoders)
    if rank == 0:
        print_summaries(G=G, D=D, batch_gpu=batch_gpu, device=device)
    augment_pipe = setup_augment_pipe(augment_kwargs=augment_kwargs, augment_p=augment_p, ada_target=ada_target,
        device=device)
    broadcast_from_rank0([G, D, G_ema, augment_pipe], num_gpus=num_gpus, rank=rank)

    # Loss, phases (with lazy regularisation) and the training state they advance.
    if rank == 0:
        print('Setting up training phases...')
    loss = dnnlib.util.construct_class_by_name(device=device, G=G, D=D, augment_pipe=augment_pipe, **loss_kwargs)
    phases, optimizers = setup_phases(G=G, D=D, G_opt_kwargs=G_opt_kwargs, D_opt_kwargs=D_opt_kwargs,
        G_reg_interval=G_reg_interval, D_reg_interval=D_reg_interval, d_steps=d_steps, G_train_prefixes=G_train_prefixes)
    state = TrainingState(optimizers=optimizers, latent_rng=torch.Generator().manual_seed(random_seed), loss=loss,
        augment_pipe=augment_pipe, device=device, num_gpus=num_gpus, rank=rank, batch_size=batch_size,
        start_nimg=resume_kimg * 1000)
    if saved_state is not None and not state.load_dict(saved_state) and rank == 0:
        print(f'The training state was written by {saved_state["num_gpus"]} processes, not {num_gpus}: '
              f'random streams restart, so the run continues, but not bit-exactly.')
    start_time -= state.elapsed_before
    ada_stats = training_stats.Collector(regex='Loss/signs/real', keep_previous=False) \
        if augment_pipe is not None and ada_target is not None else None

    # Sample grids (rank 0): the fakes' latents are fixed by the seed, so every snapshot shows the same.
    grid = export_sample_grids(run_dir=run_dir, training_set=training_set, G_ema=G_ema, random_seed=random_seed,
        batch_gpu=batch_gpu, device=device, write_init=saved_state is None) if rank == 0 else None

    logs = RunLogs(run_dir=run_dir, rank=rank, continue_from_nimg=state.cur_nimg if saved_state is not None else None)
    phase_times = PhaseTimes(device=device)
    try:
        if state.cur_nimg >= total_kimg * 1000:
            if rank == 0:
                print(f'The run has already trained for {state.cur_nimg / 1000:g} kimg; nothing to do for {total_kimg} kimg.')
            return
        if progress_fn is not None:
            progress_fn(state.cur_nimg // 1000, total_kimg)
        if rank == 0:
            print(f'Training for {total_kimg} kimg...')
            print()
        tick_start_time = time.time()
        maintenance_time = tick_start_time - start_time
        done = False
        while not done:
            # One iteration: every phase that is due, on one batch of reals and fakes; then G_ema and ADA.
            reals, fakes = fetch_batch(data_iter=data_iter, training_set=training_set, state=state, num_phases=len(phases),
                z_dim=G.z_dim, batch_gpu=batch_gpu, device=device)
            for phase, (gen_z, gen_c) in zip(phases, fakes):
                if state.batch_idx % phase.interval == 0:
                    with phase_times.measure(phase.name):
                        run_phase(phase=phase, loss=loss, reals=reals, gen_z=gen_z, gen_c=gen_c, num_rounds=num_rounds,
                                  num_gpus=num_gpus, cur_nimg=state.cur_nimg)
            with torch.autograd.profiler.record_function('Gema'):
                ema_nimg = ema_kimg * 1000 if ema_rampup is None else min(ema_kimg * 1000, state.cur_nimg * ema_rampup)
                update_ema(G_ema, G, ema_beta=0.5 ** (batch_size / max(ema_nimg, 1e-8)))
            state.cur_nimg += batch_size
            state.batch_idx += 1
            if ada_stats is not None:
                adapt_augment_p(state=state, ada_stats=ada_stats, target=ada_target, ada_interval=ada_interval, ada_kimg=ada_kimg)

            # Maintenance once per tick: status, snapshots, metrics, logs.
            done = state.cur_nimg >= total_kimg * 1000
            if not done and state.cur_tick != 0 and state.cur_nimg < state.tick_start_nimg + kimg_per_tick * 1000:
                continue
            tick_end_time = time.time()
            phase_times.report()
            report_tick(state=state, start_time=start_time, tick_start_time=tick_start_time, tick_end_time=tick_end_time,
                        maintenance_time=maintenance_time, device=device, rank=rank)
            if not done and abort_fn is not None and abort_fn():
                done = True
                if rank == 0:
                    print()
                    print('Aborting...')
            if rank == 0 and image_snapshot_ticks is not None and (done or state.cur_tick % image_snapshot_ticks == 0):
                save_progress_images(run_dir=run_dir, grid=grid, G=G, G_ema=G_ema, cur_nimg=state.cur_nimg, logs=logs)
            metric_results = {}
            if network_snapshot_ticks is not None and (done or state.cur_tick % network_snapshot_ticks == 0):
                snapshot_data = snapshot_networks(dict(G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe), num_gpus=num_gpus)
                training_state = state.to_dict(total_sec=time.time() - start_time)
                stem = snapshots.snapshot_stem(state.cur_nimg, previous_nimg=state.last_snapshot_nimg)
                state.last_snapshot_nimg = state.cur_nimg
                if rank == 0:
                    snapshots.save_snapshot(run_dir, stem, dict(snapshot_data, training_set_kwargs=dict(training_set_kwargs)),
                                            training_state, keep_snapshots=keep_snapshots)
                metric_results = evaluate_metrics(metrics=metrics, G=snapshot_data['G_ema'], training_set_kwargs=training_set_kwargs,
                    data_loader_kwargs=data_loader_kwargs, num_gpus=num_gpus, rank=rank, device=device, run_dir=run_dir,
                    snapshot_pkl=os.path.join(run_dir, snapshots.snapshot_pkl_name(stem)), metric_kwargs=metric_kwargs)
                del snapshot_data
            logs.write_tick(cur_nimg=state.cur_nimg, elapsed=time.time() - start_time, metric_results=metric_results)
            if progress_fn is not None:
                progress_fn(state.cur_nimg // 1000, total_kimg)
            state.cur_tick += 1
            state.tick_start_nimg = state.cur_nimg
            tick_start_time = time.time()
            maintenance_time = tick_start_time - tick_end_time
    finally:
        logs.close()
    if rank == 0:
        print()
        print('Exiting...')

# ----------------------------------------------------------------------------
# Set-up.


def setup_process(random_seed, num_gpus, rank, cudnn_benchmark):
    """Seeds this process's random streams and sets the numerical switches training relies on."""
    rank_seed = random_seed * num_gpus + rank
    np.random.seed(rank_seed)
    torch.manual_seed(rank_seed)
    random.seed(rank_seed)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 changes results noticeably; training expects float32.
    torch.backends.cudnn.allow_tf32 = False
    conv2d_gradfix.enabled = True                  # Double backward for R1 and path length regularisation.
    grid_sample_gradfix.enabled = True


def open_training_data(training_set_kwargs, data_loader_kwargs, random_seed, num_gpus, rank, batch_size, start_index):
    """The training set and an endless iterator of this process's batches, from `start_index` of the global stream."""
    if rank == 0:
        print('Loading training set...')
    training_set = dnnlib.util.construct_class_by_name(**training_set_kwargs)
    if getattr(training_set, 'streamed', False):
        # Tar shards have no random access: each process streams its own shards. A continued run reads them
        # with fresh shuffles (seeded by where it continues), not in the interrupted run's order.
        stream = training_set.stream(rank=rank, num_ranks=num_gpus, seed=(random_seed, start_index))
        loader = torch.utils.data.DataLoader(dataset=stream, batch_size=batch_size // num_gpus, **data_loader_kwargs)
        size = f'{len(training_set.shards)} shards, about {training_set.nominal_size or "?"} images (streamed)'
    else:
        sampler = misc.InfiniteSampler(dataset=training_set, rank=rank, num_replicas=num_gpus, seed=random_seed,
                                       start_index=start_index)
        loader = torch.utils.data.DataLoader(dataset=training_set, sampler=sampler, batch_size=batch_size // num_gpus,
                                             **data_loader_kwargs)
        size = len(training_set)
    if rank == 0:
        print(f'\nNum images:  {size}\nImage shape: {training_set.image_shape}\n'
              f'Label shape: {training_set.label_shape}\n')
    return training_set, iter(loader)


def construct_networks(training_set, G_kwargs, D_kwargs, resume_pkl, exact, rank, device, pretrained_encoders=None):
    """(G, D, G_ema), with the weights of `resume_pkl` if given. An exact continuation must restore every tensor.
    A config may set c_dim itself (StyleGAN-T: the width of the text embedding of a caption dataset). Pretrained
    encoders are copied in on rank 0 for a new run (the other processes receive every weight from rank 0)."""
    if rank == 0:
        print('Constructing networks...')
    common_kwargs = dict(c_dim=training_set.label_dim, img_resolution=training_set.resolution,
                         img_channels=training_set.num_channels)
    G = dnnlib.util.construct_class_by_name(**{**common_kwargs, **G_kwargs}).train().requires_grad_(False).to(device)
    D = dnnlib.util.construct_class_by_name(**{**common_kwargs, **D_kwargs}).train().requires_grad_(False).to(device)
    if pretrained_encoders is not None and resume_pkl is None and rank == 0:
        from training import encoders
        print('Copying in the pretrained encoders...')
        encoders.fill_pretrained(G, D, pretrained_encoders)
    G_ema = copy.deepcopy(G).eval()
    if resume_pkl is not None:
        if rank == 0:
            print(f'Resuming from "{resume_pkl}"')
        with dnnlib.util.open_url(resume_pkl) as f:
            resume_data = legacy.load_network_pkl(f)
        for name, module in [('G', G), ('D', D), ('G_ema', G_ema)]:
            if resume_data[name] is not None:
                misc.copy_params_and_buffers(resume_data[name], module, require_all=exact)
            elif exact:
                raise ValueError(f'{resume_pkl} has no {name}; continuing a run needs its G, D and G_ema')
    return G, D, G_ema


def print_summaries(G, D, batch_gpu, device):
    """Prints G's and D's layers with their output shapes. The forward passes leave every buffer as it was: in
    training mode they may update running state (StyleGAN-T's spectral norms), which an exact continuation must
    not see changed."""
    saved = [(buffer, buffer.clone()) for net in (G, D) for buffer in net.buffers()]
    z = torch.empty([batch_gpu, G.z_dim], device=device)
    c = torch.empty([batch_gpu, G.c_dim], device=device)
    img = misc.print_module_summary(G, [z, c])
    misc.print_module_summary(D, [img, c])
    with torch.no_grad():
        for buffer, value in saved:
            buffer.copy_(value)


def setup_augment_pipe(augment_kwargs, augment_p, ada_target, device):
    """The augmentation pipeline, or None. It starts at `augment_p` even when resuming from a pickle, as the
    official recipe does (ADA finds its level again); continuing a run exactly restores p from the state file."""
    if augment_kwargs is None or (augment_p == 0 and ada_target is None):
        return None
    augment_pipe = dnnlib.util.construct_class_by_name(**augment_kwargs).train().requires_grad_(False).to(device)
    augment_pipe.p.copy_(torch.as_tensor(augment_p))
    return augment_pipe


def broadcast_from_rank0(modules, num_gpus, rank):
    if num_gpus == 1:
        return
    if rank == 0:
        print(f'Distributing across {num_gpus} processes...')
    for module in modules:
        if module is not None:
            for tensor in misc.params_and_buffers(module):
                torch.distributed.broadcast(tensor, src=0)


def trained_parameters(module, prefixes):
    """The parameters of `module` that train: all, or those whose names start with one of `prefixes`."""
    if prefixes is None:
        return list(module.parameters())
    chosen = [param for name, param in module.named_parameters() if name.startswith(tuple(prefixes))]
    if not chosen:
        raise ValueError(f'no parameter of {type(module).__name__} starts with {", ".join(prefixes)}')
    return chosen


def setup_phases(G, D, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval, d_steps=1, G_train_prefixes=None):
    """(phases, optimizers). A phase runs on iterations that are multiples of its `interval`. Lazy
    regularisation runs every `reg_interval` updates of its network with the gain `reg_interval`; the
    optimizer is adjusted so that the main and regularisation steps together match a non-lazy schedule.
    With `d_steps` > 1, G's phases run on every d_steps-th iteration only, D's on every one. G's phases
    train only the parameters that `G_train_prefixes` names (all by default); the others stay as they are."""
    phases = []
    optimizers = dict()
    for name, module, opt_kwargs, reg_interval, every in [('G', G, G_opt_kwargs, G_reg_interval, d_steps),
                                                          ('D', D, D_opt_kwargs, D_reg_interval, 1)]:
        params = trained_parameters(module, G_train_prefixes if name == 'G' else None)
        opt_kwargs = dnnlib.EasyDict(opt_kwargs)
        if 'betas' in opt_kwargs:
            opt_kwargs.betas = [float(beta) for beta in opt_kwargs.betas]  # Adam refuses a mix of int and float.
        if reg_interval is not None:
            mb_ratio = reg_interval / (reg_interval + 1)
            opt_kwargs.lr = opt_kwargs.lr * mb_ratio
            opt_kwargs.betas = [beta ** mb_ratio for beta in opt_kwargs.betas]
        optimizers[name] = dnnlib.util.construct_class_by_name(params=params, **opt_kwargs)
        common = dict(module=module, params=params, opt=optimizers[name])
        if reg_interval is None:
            phases.append(dnnlib.EasyDict(name=name + 'both', interval=every, gain=1, **common))
        else:
            phases.append(dnnlib.EasyDict(name=name + 'main', interval=every, gain=1, **common))
            phases.append(dnnlib.EasyDict(name=name + 'reg', interval=reg_interval * every, gain=reg_interval, **common))
    return phases, optimizers

# ----------------------------------------------------------------------------
# One iteration.


def fetch_batch(data_iter, training_set, state, num_phases, z_dim, batch_gpu, device):
    """(reals, fakes): this process's reals as (images, labels) split into rounds, and per phase the fakes'
    (latents, labels) split into rounds. The fakes are drawn for the whole batch from one stream shared by
    all processes, each taking its slice, so the result does not depend on the number of processes."""
    with torch.autograd.profiler.record_function('data_fetch'):
        real_img, real_labels, *stream_info = next(data_iter)
        if stream_info:  # Streamed shards say how many corrupt samples they skipped.
            training_stats.report('Data/skipped_corrupt', stream_info[0]['skipped'].sum().to(torch.float32))
        real_img = (real_img.to(device).to(torch.float32) / 127.5 - 1).split(batch_gpu)
        real_c = split_labels(real_labels, batch_gpu, device)
        batch_per_gpu = state.batch_size // state.num_gpus
        own = slice(state.rank * batch_per_gpu, (state.rank + 1) * batch_per_gpu)
        all_z = torch.randn([num_phases, state.batch_size, z_dim], generator=state.latent_rng)
        streamed = getattr(training_set, 'streamed', False)
        if not streamed:
            all_c_idx = torch.randint(len(training_set), [num_phases, state.batch_size], generator=state.latent_rng)
        fakes = []
        for phase_idx, phase_z in enumerate(all_z):
            if streamed:  # No random access: the fakes get the labels (captions) of this process's reals.
                labels = real_labels
            else:
                labels = [training_set.get_label(int(i)) for i in all_c_idx[phase_idx][own]]
                labels = labels if training_set.has_captions else torch.from_numpy(np.stack(labels))
            fakes.append((phase_z[own].to(device).split(batch_gpu), split_labels(labels, batch_gpu, device)))
    return (real_img, real_c), fakes


def split_labels(labels, batch_gpu, device):
    """Rounds of `batch_gpu` labels: tensors on `device`, captions (a list of str) as lists."""
    if isinstance(labels, (list, tuple)):
        return [list(labels[start:start + batch_gpu]) for start in range(0, len(labels), batch_gpu)]
    return labels.to(device).split(batch_gpu)


def run_phase(phase, loss, reals, gen_z, gen_c, num_rounds, num_gpus, cur_nimg):
    """Accumulates the phase's gradients over the rounds, averages them over processes, and steps its optimizer."""
    phase.opt.zero_grad(set_to_none=True)
    for param in phase.params:
        param.requires_grad_(True)
    for real_img, real_c, z, c in zip(*reals, gen_z, gen_c):
        # Rounds average rather than add up, so the step does not depend on batch_gpu.
        loss.accumulate_gradients(phase=phase.name, real_img=real_img, real_c=real_c, gen_z=z, gen_c=c,
                                  gain=phase.gain / num_rounds, cur_nimg=cur_nimg)
    phase.module.requires_grad_(False)
    with torch.autograd.profiler.record_function(phase.name + '_opt'):
        training_stats.report0('Progress/nonfinite_grads', reduce_and_clean_gradients(phase.module, num_gpus))
        phase.opt.step()


class PhaseTimes:
    """Milliseconds each phase run takes, reported as Timing/<phase> (Timing/Gmain, ...) once per tick. On a GPU
    CUDA events time the device's work without making the loop wait for it until the tick ends."""

    def __init__(self, device):
        self.cuda = device.type == 'cuda'
        self.measured = []  # (phase name, milliseconds, or a pair of CUDA events)

    @contextlib.contextmanager
    def measure(self, name):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.measured.append((name, (start, end)))
        else:
            start = time.perf_counter()
            yield
            self.measured.append((name, (time.perf_counter() - start) * 1e3))

    def report(self):
        for name, value in self.measured:
            if isinstance(value, tuple):
                value[1].synchronize()
                value = value[0].elapsed_time(value[1])
            training_stats.report0(f'Timing/{name}', value)
        self.measured = []


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


@torch.no_grad()
def update_ema(G_ema, G, ema_beta):
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, ema_beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def ada_adjustment(rate, target, batch_size, ada_interval, ada_kimg):
    """Step of ADA's p: toward more augmentation when D is too sure about reals (rate of positive logits above
    target), less otherwise, at a speed that takes p from 0 to 1 in ada_kimg thousand images."""
    return np.sign(rate - target) * (batch_size * ada_interval) / (ada_kimg * 1000)


def adapt_augment_p(state, ada_stats, target, ada_interval, ada_kimg):
    """Counts D's positive outputs on reals; every `ada_interval` iterations moves p toward the target rate."""
    ada_stats.update()
    num = ada_stats.num('Loss/signs/real')
    if num > 0:
        state.ada_sign_sum += int(round(ada_stats.mean('Loss/signs/real') * num))
        state.ada_sign_count += num
    if state.batch_idx % ada_interval == 0 and state.ada_sign_count > 0:
        p = state.augment_pipe.p
        adjust = ada_adjustment(rate=state.ada_sign_sum / state.ada_sign_count, target=target,
                                batch_size=state.batch_size, ada_interval=ada_interval, ada_kimg=ada_kimg)
        p.copy_((p + adjust).max(misc.constant(0, device=p.device)))
        state.ada_sign_sum = 0
        state.ada_sign_count = 0

# ----------------------------------------------------------------------------
# Maintenance.


def report_tick(state, start_time, tick_start_time, tick_end_time, maintenance_time, device, rank):
    """Prints the status line of a tick, recording the same figures in training_stats."""
    report = training_stats.report0
    tick_sec = tick_end_time - tick_start_time
    fields = [
        f"tick {report('Progress/tick', state.cur_tick):<5d}",
        f"kimg {report('Progress/kimg', state.cur_nimg / 1e3):<8.1f}",
        f"time {dnnlib.util.format_time(report('Timing/total_sec', tick_end_time - start_time)):<12s}",
        f"sec/tick {report('Timing/sec_per_tick', tick_sec):<7.1f}",
        f"sec/kimg {report('Timing/sec_per_kimg', tick_sec / (state.cur_nimg - state.tick_start_nimg) * 1e3):<7.2f}",
        f"maintenance {report('Timing/maintenance_sec', maintenance_time):<6.1f}",
        f"cpumem {report('Resources/cpu_mem_gb', cpu_memory_gb()):<6.2f}",
    ]
    if device.type == 'cuda':
        fields.append(f"gpumem {report('Resources/peak_gpu_mem_gb', torch.cuda.max_memory_allocated(device) / 2**30):<6.2f}")
        fields.append(f"reserved {report('Resources/peak_gpu_mem_reserved_gb', torch.cuda.max_memory_reserved(device) / 2**30):<6.2f}")
        torch.cuda.reset_peak_memory_stats(device)
    fields.append(f"augment {report('Progress/augment', state.augment_p):.3f}")
    report('Timing/total_hours', (tick_end_time - start_time) / (60 * 60))
    report('Timing/total_days', (tick_end_time - start_time) / (24 * 60 * 60))
    if rank == 0:
        print(' '.join(fields))


def snapshot_networks(modules, num_gpus):
    """CPU copies of the networks in eval mode without gradients, identical on every process."""
    result = dict()
    for key, module in modules.items():
        if isinstance(module, torch.nn.Module):
            module = copy.deepcopy(module).eval().requires_grad_(False)
            if num_gpus > 1:
                misc.check_ddp_consistency(module, ignore_regex=r'.*\.[^.]+_(avg|ema)')
                for tensor in misc.params_and_buffers(module):
                    torch.distributed.broadcast(tensor, src=0)
            module = module.cpu()
        result[key] = module
    return result


def evaluate_metrics(metrics, G, training_set_kwargs, data_loader_kwargs, num_gpus, rank, device, run_dir, snapshot_pkl,
                     metric_kwargs={}):
    """Every metric on the snapshot (every process takes part); rank 0 records them. Returns {name: value}."""
    if len(metrics) > 0 and rank == 0:
        print('Evaluating metrics...')
    results = dict()
    for metric in metrics:
        result_dict = metric_main.calc_metric(metric=metric, G=G, dataset_kwargs=training_set_kwargs, num_gpus=num_gpus,
                                              rank=rank, device=device, data_loader_kwargs=data_loader_kwargs,
                                              **metric_kwargs)
        if rank == 0:
            metric_main.report_metric(result_dict, run_dir=run_dir, snapshot_pkl=snapshot_pkl)
        results.update(result_dict.results)
    return results


def cpu_memory_gb():
    """Resident memory of this process in GiB (0 where /proc is unavailable)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**30
    except (OSError, ValueError, IndexError):
        return 0.0


class RunLogs:
    """stats.jsonl and TensorBoard scalars of a run (rank 0), one entry per tick; metrics carried forward."""

    def __init__(self, run_dir, rank, continue_from_nimg=None):
        self.collector = training_stats.Collector(regex='.*')
        self.metrics = dict()
        self.jsonl = None
        self.tfevents = None
        if rank == 0:
            print('Initializing logs...')
            purge_step = None
            if continue_from_nimg is not None:  # Ticks logged after the snapshot the run continues from are redone.
                forget_logs_after(run_dir, continue_from_nimg)
                purge_step = int(continue_from_nimg / 1e3) + 1
            self.jsonl = open(os.path.join(run_dir, 'stats.jsonl'), 'at')
            self.tfevents = open_tensorboard(run_dir, purge_step=purge_step)

    def write_tick(self, cur_nimg, elapsed, metric_results):
        self.collector.update()  # Every process takes part.
        stats = self.collector.as_dict()
        self.metrics.update(metric_results)
        timestamp = time.time()
        if self.jsonl is not None:
            self.jsonl.write(json.dumps(dict(stats, timestamp=timestamp)) + '\n')
            self.jsonl.flush()
        if self.tfevents is not None:
            global_step = int(cur_nimg / 1e3)
            for name, value in stats.items():
                self.tfevents.add_scalar(name, value.mean, global_step=global_step, walltime=elapsed)
            for name, value in self.metrics.items():
                self.tfevents.add_scalar(f'Metrics/{name}', value, global_step=global_step, walltime=elapsed)
            self.tfevents.flush()

    def write_images(self, cur_nimg, images):
        """TensorBoard images {tag: uint8 HWC} at the current kimg."""
        if self.tfevents is not None:
            for tag, image in images.items():
                self.tfevents.add_image(tag, image, global_step=int(cur_nimg / 1e3), dataformats='HWC')
            self.tfevents.flush()

    def close(self):
        for log in (self.jsonl, self.tfevents):
            if log is not None:
                log.close()


def forget_logs_after(run_dir, nimg):
    """Drops the stats.jsonl ticks and metric-*.jsonl results of a run directory that come after `nimg` images:
    a continued run logs them again, and each kimg should appear once."""
    def stats_nimg(record):
        return record.get('Progress/kimg', {}).get('mean', 0) * 1e3
    def metric_nimg(record):  # Snapshot names give at least the snapshot's kimg (fractional stems exactly).
        match = snapshots.SNAPSHOT_PATTERN.fullmatch(os.path.basename(str(record.get('snapshot_pkl'))))
        return 0 if match is None else int(match.group(1)) * 1000 + int(match.group(2) or 0)
    logs = [('stats.jsonl', stats_nimg)] + [(name, metric_nimg) for name in sorted(os.listdir(run_dir))
                                            if name.startswith('metric-') and name.endswith('.jsonl')]
    for name, record_nimg in logs:
        path = os.path.join(run_dir, name)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            lines = f.read().splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                late = record_nimg(json.loads(line)) > nimg + 0.5
            except (ValueError, AttributeError, TypeError):
                late = False  # Not ours to judge: kept as it is.
            if not late:
                kept.append(line)
        if len(kept) != len(lines):
            print(f'Dropping {len(lines) - len(kept)} entries logged after kimg {nimg / 1e3:g} from {name}')
            snapshots.write_atomically(path, lambda f, text=''.join(kept): f.write(text.encode()))


def open_tensorboard(run_dir, purge_step=None):
    """A SummaryWriter; `purge_step` hides the steps from there on that an earlier process logged."""
    try:
        import torch.utils.tensorboard as tensorboard
    except ImportError as err:
        print(f'Skipping TensorBoard export: torch.utils.tensorboard is not available ({err})')
        return None
    return tensorboard.SummaryWriter(run_dir, purge_step=purge_step)

# ----------------------------------------------------------------------------
# Image grids.


def export_sample_grids(run_dir, training_set, G_ema, random_seed, batch_gpu, device, write_init):
    """Writes reals.png (once per run) and, for a new run, fakes_init.png; returns the grid (size, z, c)."""
    print('Exporting sample images...')
    # About 4K pixels of images on a GPU; on the CPU, generating that many fakes would dominate short runs.
    max_grid_size = (32, 32) if device.type == 'cuda' else (8, 4)
    if getattr(training_set, 'streamed', False):  # The first samples of the shards (no random access).
        grid_size = grid_shape(training_set, max_grid_size)
        images, labels = training_set.peek(grid_size[0] * grid_size[1])
    else:
        grid_size, images, labels = setup_snapshot_image_grid(training_set=training_set, random_seed=random_seed,
                                                              max_grid_size=max_grid_size)
    if not os.path.isfile(os.path.join(run_dir, 'reals.png')):
        save_image_grid(images, os.path.join(run_dir, 'reals.png'), drange=[0, 255], grid_size=grid_size)
    grid_rng = torch.Generator().manual_seed(random_seed)
    if training_set.has_captions:  # The fakes get the captions of the reals shown in reals.png.
        from training import encoders
        captions = [str(caption) for caption in labels]
        write_captions(captions, grid_size, os.path.join(run_dir, 'captions.txt'))
        grid_c = encoders.encode_prompts(G_ema, captions, device=device)
    else:
        grid_c = torch.from_numpy(labels).to(device)
    grid = dnnlib.EasyDict(size=grid_size,
                           z=torch.randn([len(labels), G_ema.z_dim], generator=grid_rng).to(device).split(batch_gpu),
                           c=grid_c.split(batch_gpu))
    if write_init:
        save_image_grid(generate_grid_images(G_ema, grid.z, grid.c), os.path.join(run_dir, 'fakes_init.png'),
                        drange=[-1, 1], grid_size=grid_size)
    return grid


def write_captions(captions, grid_size, path):
    """The captions of a grid, one line per tile, rows in order and separated by a blank line."""
    columns = grid_size[0]
    rows = [captions[start:start + columns] for start in range(0, len(captions), columns)]
    text = '\n\n'.join('\n'.join(row) for row in rows) + '\n'
    snapshots.write_atomically(path, lambda f: f.write(text.encode('utf-8')))


def grid_shape(training_set, max_grid_size):
    """(columns, rows) of the sample grids: about 4K pixels of images, within `max_grid_size`."""
    columns = min(np.clip(7680 // training_set.image_shape[2], 7, 32), max_grid_size[0])
    rows = min(np.clip(4320 // training_set.image_shape[1], 4, 32), max_grid_size[1])
    return int(columns), int(rows)


def setup_snapshot_image_grid(training_set, random_seed=0, max_grid_size=(32, 32)):
    """Picks the reals shown in reals.png: one class per row when labelled. Returns (grid_size, images, labels)."""
    rnd = np.random.RandomState(random_seed)
    gw, gh = grid_shape(training_set, max_grid_size)

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


@torch.no_grad()
def generate_grid_images(G_ema, grid_z, grid_c):
    return torch.cat([G_ema(z=z, c=c, noise_mode='const').cpu() for z, c in zip(grid_z, grid_c)]).numpy()


def save_progress_images(run_dir, grid, G, G_ema, cur_nimg, logs):
    """fakesKKKKKK.png from G_ema (as the official code) and fakes_rawKKKKKK.png from G, of the same fixed
    latents as at every snapshot, so progress shows; TensorBoard gets both side by side."""
    kimg = cur_nimg // 1000
    ema_tiles, raw_tiles = [tile_image_grid(generate_grid_images(network, grid.z, grid.c), drange=[-1, 1],
                                            grid_size=grid.size) for network in (G_ema, G)]
    write_png(ema_tiles, os.path.join(run_dir, f'fakes{kimg:06d}.png'))
    write_png(raw_tiles, os.path.join(run_dir, f'fakes_raw{kimg:06d}.png'))
    white_gap = np.full_like(ema_tiles[:, :4], 255)
    logs.write_images(cur_nimg, {'Samples/G_ema | G': np.concatenate([ema_tiles, white_gap, raw_tiles], axis=1)})


def tile_image_grid(img, drange, grid_size):
    """A batch [N, C, H, W] laid out as `grid_size` = (columns, rows) tiles in one uint8 image
    [rows * H, columns * W, C]; values in `drange` map to 0..255."""
    lo, hi = drange
    scaled = (np.asarray(img, dtype=np.float32) - lo) * (255 / (hi - lo))
    pixels = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    columns, rows = grid_size
    _count, channels, height, width = pixels.shape
    assert channels in (1, 3), 'grids hold grey or RGB images'
    by_tile = pixels.reshape(rows, columns, channels, height, width)
    return by_tile.transpose(0, 3, 1, 4, 2).reshape(rows * height, columns * width, channels)


def write_png(img, fname):
    image = PIL.Image.fromarray(img[:, :, 0], 'L') if img.shape[2] == 1 else PIL.Image.fromarray(img, 'RGB')
    snapshots.write_atomically(fname, lambda f: image.save(f, format='png'))


def save_image_grid(img, fname, drange, grid_size):
    """Tiles a batch [N, C, H, W] into a gw x gh PNG, mapping `drange` to [0, 255]."""
    write_png(tile_image_grid(img, drange, grid_size), fname)

# ----------------------------------------------------------------------------
