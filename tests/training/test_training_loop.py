"""Unit tests of the training loop's helpers (the loop itself runs end to end in tests/test_train.py)."""

import os
import pickle

import numpy as np
import pytest
import torch

from torch_utils import misc
from training import snapshots as snapshot_files
from training import training_loop as tl
from training import training_state


def test_write_atomically_keeps_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / 'network-snapshot-000001.pkl'
    snapshot_files.write_atomically(str(path), lambda f: pickle.dump({'a': 1}, f))

    def broken_writer(f):
        f.write(b'partial')
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError):
        snapshot_files.write_atomically(str(path), broken_writer)
    with open(path, 'rb') as f:
        assert pickle.load(f) == {'a': 1}
    assert os.listdir(tmp_path) == [path.name]


def test_list_and_prune_snapshots(tmp_path):
    for kimg in (0, 4, 8, 12):
        (tmp_path / snapshot_files.snapshot_pkl_name(kimg)).write_bytes(b'x')
        if kimg != 12:
            (tmp_path / snapshot_files.training_state_name(kimg)).write_bytes(b'x')
    (tmp_path / 'network-snapshot-000016.pkl.tmp-123').write_bytes(b'x')
    snapshots = snapshot_files.list_snapshots(str(tmp_path))
    assert [kimg for kimg, _, _ in snapshots] == [0, 4, 8, 12]
    assert snapshots[-1][2] is None and snapshots[-2][2].endswith('training-state-000008.pt')

    snapshot_files.prune_snapshots(str(tmp_path), keep=2)
    snapshot_files.remove_partial_files(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ['network-snapshot-000008.pkl', 'network-snapshot-000012.pkl',
                                            'training-state-000008.pt']


def test_sampler_started_at_an_index_continues_the_stream():
    dataset = list(range(10))
    full = iter(misc.InfiniteSampler(dataset, seed=3))
    reference = [next(full) for _ in range(25)]
    skipped = iter(misc.InfiniteSampler(dataset, seed=3, start_index=7))
    assert [next(skipped) for _ in range(18)] == reference[7:]


def test_non_finite_gradients_are_zeroed_and_counted():
    module = torch.nn.Linear(3, 2)
    module.weight.grad = torch.tensor([[1.0, float('nan'), 2.0], [float('inf'), -float('inf'), 0.5]])
    module.bias.grad = None
    count = tl.reduce_and_clean_gradients(module, num_gpus=1)
    assert int(count) == 3
    torch.testing.assert_close(module.weight.grad, torch.tensor([[1.0, 0.0, 2.0], [1e5, -1e5, 0.5]]))
    assert module.bias.grad is None


def test_ema_update_lerps_parameters_and_copies_buffers():
    G, G_ema = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        G.weight.fill_(3.0)
        G_ema.weight.fill_(1.0)
        G.running_mean.fill_(7.0)
    tl.update_ema(G_ema, G, ema_beta=0.75)
    torch.testing.assert_close(G_ema.weight, torch.full([2], 1.5))  # 3 + (1 - 3) * 0.75
    torch.testing.assert_close(G_ema.running_mean, torch.full([2], 7.0))


def test_ada_adjustment_direction_and_speed():
    step = tl.ada_adjustment(rate=0.9, target=0.6, batch_size=64, ada_interval=4, ada_kimg=500)
    assert step == pytest.approx(64 * 4 / 500_000)
    assert tl.ada_adjustment(rate=0.2, target=0.6, batch_size=64, ada_interval=4, ada_kimg=500) == -step


def test_rng_states_round_trip():
    device = torch.device('cpu')
    states = training_state.get_rng_states(device)
    first = (torch.rand(3), np.random.rand(3))
    training_state.set_rng_states(states, device)
    second = (torch.rand(3), np.random.rand(3))
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_save_image_grid_layout(tmp_path):
    import PIL.Image
    images = np.zeros([6, 3, 4, 4], dtype=np.float32)
    images[4] = 1.0  # Row 1, column 1 of a 3x2 grid.
    path = tmp_path / 'grid.png'
    tl.save_image_grid(images, str(path), drange=[0, 1], grid_size=(3, 2))
    grid = np.asarray(PIL.Image.open(path))
    assert grid.shape == (8, 12, 3)
    assert grid[4:8, 4:8].min() == 255 and grid[:4].max() == 0 and grid[4:8, :4].max() == 0


def test_accumulation_rounds_average_gradients_and_adam_steps_as_with_the_sum():
    """Rounds of --batch-gpu average their gradients (the official code adds them up): 4 rounds of 2 give the
    gradient of 1 round of 8, so the step does not depend on how a batch is split. Under Adam, which divides by
    the gradient's scale, the step from the official sum (4 times larger) differs only through eps."""
    import dnnlib

    class MeanLoss:  # A per-round loss averaged over the round's samples, as the real losses are.
        def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
            (module(real_img).mean(dim=0).sum() * gain).backward()

    def one_step(batches, start, grad_scale=1):
        with torch.no_grad():
            for param, value in zip(module.parameters(), start):
                param.copy_(value)
        opt = torch.optim.Adam(module.parameters(), lr=0.01, betas=(0.0, 0.99), eps=1e-8)
        phase = dnnlib.EasyDict(name='Dmain', module=module, params=list(module.parameters()), opt=opt, interval=1,
                                gain=grad_scale)
        tl.run_phase(phase=phase, loss=MeanLoss(), reals=(batches, [None] * len(batches)), gen_z=[None] * len(batches),
                     gen_c=[None] * len(batches), num_rounds=len(batches), num_gpus=1, cur_nimg=0)
        return [p.grad.clone() for p in module.parameters()], [p.detach().clone() for p in module.parameters()]

    torch.manual_seed(0)
    module = torch.nn.Linear(5, 4)
    start = [p.detach().clone() for p in module.parameters()]
    batch = torch.randn([8, 5])
    grads_4x2, params_4x2 = one_step(list(batch.split(2)), start)
    grads_1x8, params_1x8 = one_step([batch], start)
    grads_sum, params_sum = one_step(list(batch.split(2)), start, grad_scale=4)  # The official convention.
    for ours, whole, summed in zip(grads_4x2, grads_1x8, grads_sum):
        torch.testing.assert_close(ours, whole)
        torch.testing.assert_close(summed, 4 * whole)
    for ours, whole, summed, before in zip(params_4x2, params_1x8, params_sum, start):
        torch.testing.assert_close(ours, whole)
        torch.testing.assert_close(ours, summed, rtol=0, atol=1e-6)  # 1e-4 of the step (lr).
        assert (ours - before).abs().min() > 1e-3  # A real step was taken.
