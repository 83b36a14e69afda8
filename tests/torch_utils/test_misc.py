import itertools

import pytest
import torch

from torch_utils import misc


def test_constant_is_cached_and_shaped():
    a = misc.constant(1.5, shape=[2, 3])
    b = misc.constant(1.5, shape=[2, 3])
    assert a is b
    assert a.shape == (2, 3) and torch.all(a == 1.5) and a.dtype == torch.get_default_dtype()
    c = misc.constant([1, 2], dtype=torch.int64)
    assert c.tolist() == [1, 2] and c.dtype == torch.int64
    assert misc.constant(1.5, shape=[2, 3], dtype=torch.float64) is not a
    cl = misc.constant(0.0, shape=[1, 2, 3, 4], memory_format=torch.channels_last)
    assert cl.is_contiguous(memory_format=torch.channels_last)


def test_assert_shape():
    x = torch.zeros([2, 3, 4])
    misc.assert_shape(x, [2, None, 4])
    misc.assert_shape(x, [None, None, None])
    with pytest.raises(AssertionError, match='dimension 1'):
        misc.assert_shape(x, [2, 5, 4])
    with pytest.raises(AssertionError, match='number of dimensions'):
        misc.assert_shape(x, [2, 3])


def test_assert_shape_while_tracing():
    def f(x):
        misc.assert_shape(x, [None, 3])
        return x * 2
    traced = torch.jit.trace(f, torch.zeros([2, 3]), check_trace=False)
    assert traced(torch.ones([2, 3])).sum().item() == 12


def test_profiled_function_keeps_name_and_result():
    @misc.profiled_function
    def my_op(x):
        return x + 1
    assert my_op.__name__ == 'my_op'
    with torch.autograd.profiler.profile() as prof:
        assert my_op(torch.ones(1)).item() == 2
    assert any(e.name == 'my_op' for e in prof.function_events)


class _Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_infinite_sampler_covers_and_splits():
    dataset = _Sized(10)
    first_epoch = list(itertools.islice(misc.InfiniteSampler(dataset, shuffle=True, seed=1, window_size=0), 10))
    assert sorted(first_epoch) == list(range(10))
    again = list(itertools.islice(misc.InfiniteSampler(dataset, shuffle=True, seed=1, window_size=0), 10))
    assert again == first_epoch
    # Two replicas see disjoint interleaved parts of the same stream.
    full = list(itertools.islice(misc.InfiniteSampler(dataset, seed=3), 40))
    r0 = list(itertools.islice(misc.InfiniteSampler(dataset, rank=0, num_replicas=2, seed=3), 20))
    r1 = list(itertools.islice(misc.InfiniteSampler(dataset, rank=1, num_replicas=2, seed=3), 20))
    assert r0 == full[0::2] and r1 == full[1::2]
    ordered = list(itertools.islice(misc.InfiniteSampler(dataset, shuffle=False), 15))
    assert ordered == list(range(10)) + list(range(5))


def test_copy_params_and_buffers():
    src = torch.nn.BatchNorm1d(3)
    dst = torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        src.weight.fill_(2.0)
        src.running_mean.fill_(5.0)
    misc.copy_params_and_buffers(src, dst, require_all=True)
    assert torch.all(dst.weight == 2) and torch.all(dst.running_mean == 5)
    assert dst.weight.requires_grad
    with pytest.raises(KeyError):
        misc.copy_params_and_buffers(torch.nn.LayerNorm(3), dst, require_all=True)
    names = [name for name, _ in misc.named_params_and_buffers(src)]
    assert 'weight' in names and 'running_mean' in names
    assert len(misc.params_and_buffers(src)) == len(names)


def test_ddp_sync_plain_module_is_a_no_op():
    m = torch.nn.Linear(2, 2)
    with misc.ddp_sync(m, sync=False):
        m(torch.ones([1, 2])).sum().backward()
    assert m.weight.grad is not None


def test_print_module_summary(capsys):
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    out = misc.print_module_summary(net, [torch.zeros([3, 4])])
    assert out.shape == (3, 2)
    text = capsys.readouterr().out
    assert 'Total' in text and str(4 * 8 + 8 + 8 * 2 + 2) in text and '[3, 2]' in text


def test_suppress_tracer_warnings():
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with misc.suppress_tracer_warnings():
            warnings.warn('x', torch.jit.TracerWarning)
    assert not caught
