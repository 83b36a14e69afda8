"""bias_act: the reference against numpy definitions, every implementation against the reference,
first- and second-order gradients."""

import math
import warnings

import numpy as np
import pytest
import torch

from torch_utils.ops import bias_act
from torch_utils.ops import bias_act_fast
from helpers import relative_error


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))

NUMPY_ACTS = {
    'linear':   lambda x, alpha: x,
    'relu':     lambda x, alpha: np.maximum(x, 0),
    'lrelu':    lambda x, alpha: np.where(x > 0, x, alpha * x),
    'tanh':     lambda x, alpha: np.tanh(x),
    'sigmoid':  lambda x, alpha: _np_sigmoid(x),
    'elu':      lambda x, alpha: np.where(x > 0, x, np.expm1(x)),
    'selu':     lambda x, alpha: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    'softplus': lambda x, alpha: np.log1p(np.exp(x)),
    'swish':    lambda x, alpha: x * _np_sigmoid(x),
}
DEFAULT_GAINS = dict(linear=1, relu=math.sqrt(2), lrelu=math.sqrt(2), tanh=1, sigmoid=1, elu=1, selu=1, softplus=1, swish=math.sqrt(2))
ACTS = list(NUMPY_ACTS)


@pytest.fixture(params=['cpp', 'torch'])
def fast_backend(request, monkeypatch):
    """Runs the test with the C++ kernels, then with the vectorised PyTorch code behind 'fast'."""
    if request.param == 'torch':
        monkeypatch.setattr(bias_act_fast, '_plugin', lambda: None)
    else:
        assert bias_act_fast._plugin() is not None, 'the C++ plugin failed to build'
    return request.param


def test_activation_table():
    assert set(bias_act.activation_funcs) == set(NUMPY_ACTS)
    for name, spec in bias_act.activation_funcs.items():
        assert spec.def_gain == pytest.approx(DEFAULT_GAINS[name]), name
        assert spec.def_alpha == (0.2 if name == 'lrelu' else 0), name

#----------------------------------------------------------------------------

@pytest.mark.parametrize('act', ACTS)
@pytest.mark.parametrize('alpha,gain,clamp', [(None, None, None), (0.1, 0.5, 0.3), (None, 2.0, -1)])
def test_ref_matches_numpy(act, alpha, gain, clamp):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([3, 4, 5], generator=gen, dtype=torch.float64) * 2
    b = torch.randn([4], generator=gen, dtype=torch.float64)
    out = bias_act.bias_act(x, b, act=act, alpha=alpha, gain=gain, clamp=clamp, impl='ref')
    spec = bias_act.activation_funcs[act]
    a = spec.def_alpha if alpha is None else alpha
    g = spec.def_gain if gain is None else gain
    expected = NUMPY_ACTS[act](x.numpy() + b.numpy()[None, :, None], a) * g
    if clamp is not None and clamp >= 0:
        expected = np.clip(expected, -clamp, clamp)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_ref_without_bias_and_other_dim():
    x = torch.randn([2, 3, 4, 5])
    b = torch.randn([4])
    out = bias_act.bias_act(x, b, dim=2, act='lrelu', impl='ref')
    expected = torch.nn.functional.leaky_relu(x + b.reshape(1, 1, 4, 1), 0.2) * math.sqrt(2)
    assert torch.allclose(out, expected)
    out = bias_act.bias_act(x, act='relu', clamp=0.5, impl='ref')
    assert torch.allclose(out, (x.relu() * math.sqrt(2)).clamp(max=0.5))

#----------------------------------------------------------------------------

def make_inputs(layout, gen, dtype=torch.float32):
    """(x, b, dim) for the layout under test."""
    if layout == 'nchw':
        return torch.randn([3, 8, 5, 4], generator=gen, dtype=dtype) * 2, torch.randn([8], generator=gen, dtype=dtype), 1
    if layout == 'channels_last':
        x = torch.randn([2, 8, 5, 4], generator=gen, dtype=dtype).to(memory_format=torch.channels_last)
        return x, torch.randn([8], generator=gen, dtype=dtype), 1
    if layout == 'non_contiguous':
        x = torch.randn([6, 9, 8], generator=gen, dtype=dtype).transpose(0, 2)[:, ::2]
        return x, torch.randn([5], generator=gen, dtype=dtype), 1
    if layout == 'dim0':
        return torch.randn([7, 3], generator=gen, dtype=dtype), torch.randn([7], generator=gen, dtype=dtype), 0
    if layout == 'dim_last':
        return torch.randn([1, 4, 6], generator=gen, dtype=dtype), torch.randn([6], generator=gen, dtype=dtype), -1
    if layout == 'no_bias':
        return torch.randn([1, 8, 3, 3], generator=gen, dtype=dtype), None, 1
    raise ValueError(layout)

LAYOUTS = ['nchw', 'channels_last', 'non_contiguous', 'dim0', 'dim_last', 'no_bias']
OPTIONS = [(None, None, None), (0.3, 0.7, 1.0), (None, None, 0.0), (None, -1.5, None)]


@pytest.mark.parametrize('act', ACTS)
@pytest.mark.parametrize('layout', LAYOUTS)
def test_parity(fast_backend, act, layout):
    impl = 'fast'  # impl='cuda' on CPU tensors is this same leaf (tests/torch_utils/ops/test_cuda_ops.py).
    gen = torch.Generator().manual_seed(1)
    for alpha, gain, clamp in OPTIONS:
        x, b, dim = make_inputs(layout, gen)
        x.requires_grad_(True)
        if b is not None:
            b.requires_grad_(True)
        inputs = [t for t in (x, b) if t is not None]
        results = []
        for i in ['ref', impl]:
            y = bias_act.bias_act(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl=i)
            dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
            results.append([y] + list(torch.autograd.grad(y, inputs, dy)))
        for out, ref in zip(results[1], results[0]):
            assert out.shape == ref.shape and out.dtype == ref.dtype
            if ref.abs().max() == 0:
                assert out.abs().max() == 0
            else:
                assert relative_error(out, ref) < 1e-5


@pytest.mark.parametrize('impl', ['ref', 'fast'])
@pytest.mark.parametrize('act', ACTS)
def test_gradcheck(fast_backend, impl, act):
    gen = torch.Generator().manual_seed(3)
    # Keep the inputs away from the kinks of relu/lrelu and the clamp edges, where finite
    # differences are meaningless.
    x = torch.randn([2, 3, 2], generator=gen, dtype=torch.float64)
    x = x + 0.2 * x.sign()
    b = torch.tensor([0.05, -0.03, 0.02], dtype=torch.float64)
    x.requires_grad_(True)
    b.requires_grad_(True)
    for clamp in [None, 0.9]:
        fn = lambda x, b: bias_act.bias_act(x, b, act=act, alpha=0.3, gain=1.3, clamp=clamp, impl=impl)
        if clamp is not None:
            unclamped = bias_act.bias_act(x.detach(), b.detach(), act=act, alpha=0.3, gain=1.3, impl='ref')
            margin = (unclamped.abs() - clamp).abs().min()
            assert margin > 1e-3, 'test inputs too close to the clamp edge'
        assert torch.autograd.gradcheck(fn, [x, b])
        assert torch.autograd.gradgradcheck(fn, [x, b])


def test_fast_second_order_matches_ref(fast_backend):
    # The R1 pattern: gradient with create_graph, then a loss on it, then its gradient.
    gen = torch.Generator().manual_seed(4)
    x0 = torch.randn([4, 6, 3, 3], generator=gen)
    b0 = torch.randn([6], generator=gen)
    w = torch.randn([4, 6, 3, 3], generator=gen)
    results = []
    for impl in ['ref', 'fast']:
        x = x0.clone().requires_grad_(True)
        b = b0.clone().requires_grad_(True)
        y = bias_act.bias_act(x * 1.0, b, act='swish', clamp=2.0, impl=impl)
        (gx,) = torch.autograd.grad((y * w).sum(), [x], create_graph=True)
        penalty = gx.square().sum()
        results.append(torch.autograd.grad(penalty, [x, b]))
    for out, ref in zip(results[1], results[0]):
        assert relative_error(out, ref) < 1e-5


def test_half_precision():
    x = torch.randn([2, 4, 3, 3]).half()
    b = torch.randn([4]).half()
    ref = bias_act.bias_act(x.float(), b.float(), act='lrelu', clamp=1.0, impl='ref')
    out = bias_act.bias_act(x, b, act='lrelu', clamp=1.0, impl='fast')
    assert out.dtype == torch.float16 and relative_error(out, ref) < 2e-3


def test_does_not_modify_input(fast_backend):
    x = torch.randn([2, 3, 4])
    x_copy = x.clone()
    for impl in ['ref', 'fast']:
        bias_act.bias_act(x, None, act='relu', gain=2, clamp=0.1, impl=impl)
        bias_act.bias_act(x, torch.ones(3), act='tanh', impl=impl)
    assert torch.equal(x, x_copy)


def test_invalid_arguments():
    x = torch.randn([2, 3, 4])
    with pytest.raises(ValueError):
        bias_act.bias_act(x, act='gelu')
    with pytest.raises(ValueError):
        bias_act.bias_act(x, act='relu', impl='other')
    with pytest.raises(AssertionError):
        bias_act.bias_act(x, torch.zeros(4), dim=1)
    with pytest.raises(ValueError):
        bias_act.bias_act(x, torch.zeros(4), dim=3)


def test_cpu_default_impl_is_silent():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        bias_act.bias_act(torch.randn([2, 3]), torch.zeros(3), act='lrelu')
    assert not [w for w in caught if 'bias_act' in str(w.message)]


@pytest.mark.cuda
@pytest.mark.parametrize('impl', ['cuda', 'fast'])
@pytest.mark.parametrize('act', ACTS)
@pytest.mark.parametrize('layout', LAYOUTS)
def test_parity_cuda(impl, act, layout):
    gen = torch.Generator().manual_seed(5)
    for alpha, gain, clamp in OPTIONS:
        x, b, dim = make_inputs(layout, gen)
        ref = bias_act.bias_act(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl='ref')
        xc = x.cuda().requires_grad_(True)
        bc = b.cuda() if b is not None else None
        out = bias_act.bias_act(xc, bc, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl=impl)
        assert relative_error(out.detach().cpu(), ref) < 1e-5 or ref.abs().max() == 0
        (gx,) = torch.autograd.grad(out.sum(), [xc])
        xr = x.clone().requires_grad_(True)
        (gr,) = torch.autograd.grad(bias_act.bias_act(xr, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl='ref').sum(), [xr])
        assert relative_error(gx.cpu(), gr) < 1e-5 or gr.abs().max() == 0
