"""The training state: everything besides the networks that an exact continuation of a run needs
(counters, random streams, ADA's state, optimizer and loss states), kept in one object and saved and
restored in one place."""

import random

import numpy as np
import torch

STATE_FORMAT_VERSION = 2  # 2: NumPy's random state as a tensor (the file reads with weights_only=True); snapshot fields.

# ----------------------------------------------------------------------------


def get_rng_states(device):
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached_gaussian))
    states = dict(torch=torch.get_rng_state(), numpy=numpy_state, python=random.getstate())
    if device.type == 'cuda':
        states['cuda'] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states, device):
    torch.set_rng_state(states['torch'])
    kind, keys, position, has_gauss, cached_gaussian = states['numpy']
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
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


# ----------------------------------------------------------------------------


class TrainingState:
    """Progress of a run and the live objects whose state continues it.

    A tick ends with maintenance (status line, snapshots, logs); `to_dict` is taken there and describes
    the start of the next tick, which is where a continued run picks up.
    """

    def __init__(self,
        optimizers,             # {'G': optimizer, 'D': optimizer}.
        latent_rng,             # torch.Generator of the fakes' latents and labels, shared by all processes.
        loss,                   # The loss object (its state_dict holds e.g. the path length mean).
        augment_pipe,           # AugmentPipe whose `p` ADA adjusts, or None.
        device,                 # Device of this process.
        num_gpus,               # Number of processes.
        rank,                   # Rank of this process.
        batch_size,             # Total batch size of an iteration.
        start_nimg      = 0,    # Image count to start from (--resume-kimg).
    ):
        self.optimizers = optimizers
        self.latent_rng = latent_rng
        self.loss = loss
        self.augment_pipe = augment_pipe
        self.device = device
        self.num_gpus = num_gpus
        self.rank = rank
        self.batch_size = batch_size
        self.cur_nimg = start_nimg          # Real images shown so far, over all processes.
        self.cur_tick = 0                   # Index of the current tick.
        self.tick_start_nimg = start_nimg   # cur_nimg when the current tick began.
        self.batch_idx = 0                  # Iterations so far.
        self.ada_sign_sum = 0               # ADA: positive D outputs on reals since p last moved...
        self.ada_sign_count = 0             # ... out of this many.
        self.elapsed_before = 0.0           # Seconds of training before this process took over (total_sec).
        self.last_snapshot_nimg = None      # cur_nimg of the run's newest snapshot.

    @property
    def augment_p(self):
        return float(self.augment_pipe.p.cpu()) if self.augment_pipe is not None else 0.0

    def to_dict(self, total_sec):
        """The state at the start of the next tick, for torch.save. Every process must call this (the
        per-process random streams are gathered); only rank 0's result is complete."""
        ranks = gather_objects(dict(rng=get_rng_states(self.device), loss=self.loss.state_dict()), self.num_gpus)
        return dict(
            format_version=STATE_FORMAT_VERSION,
            cur_nimg=self.cur_nimg,
            cur_tick=self.cur_tick + 1,
            tick_start_nimg=self.cur_nimg,
            batch_idx=self.batch_idx,
            ada_sign_sum=self.ada_sign_sum,
            ada_sign_count=self.ada_sign_count,
            augment_p=self.augment_p if self.augment_pipe is not None else None,
            total_sec=total_sec,
            optimizers={name: opt.state_dict() for name, opt in self.optimizers.items()},
            latent_rng=self.latent_rng.get_state(),
            ranks=ranks,
            num_gpus=self.num_gpus,
            batch_size=self.batch_size,
        )

    def load_dict(self, state):
        """Restores a saved state; returns False when the run continues, but not bit-exactly (written by
        another number of processes: the per-process random streams restart)."""
        if state['batch_size'] != self.batch_size:
            raise ValueError(f'the training state is of a run with batch size {state["batch_size"]}, not {self.batch_size}')
        for key in ('cur_nimg', 'cur_tick', 'tick_start_nimg', 'batch_idx', 'ada_sign_sum', 'ada_sign_count'):
            setattr(self, key, state[key])
        self.elapsed_before = state['total_sec']
        self.last_snapshot_nimg = state['cur_nimg']  # A state is saved with its snapshot.
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state['optimizers'][name])
        self.latent_rng.set_state(state['latent_rng'])
        if self.augment_pipe is not None and state['augment_p'] is not None:
            self.augment_pipe.p.copy_(torch.as_tensor(state['augment_p']))
        if state['num_gpus'] != self.num_gpus:
            return False
        self.loss.load_state_dict(state['ranks'][self.rank]['loss'])
        set_rng_states(state['ranks'][self.rank]['rng'], self.device)
        return True

    def sampler_start(self):
        """Position in the global stream of training images where the next iteration reads."""
        return self.batch_idx * self.batch_size

# ----------------------------------------------------------------------------
