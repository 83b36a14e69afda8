"""Tests of the CUDA kernels of bias_act, upfirdn2d and filtered_lrelu.

Without a GPU: the kernels' own code runs on CPU tensors (the plugin's CPU emulation, built when
nvcc is present) and is compared with impl='ref' through the same self-check that guards the
kernels on first use; and the self-check itself is tested with deliberately wrong kernels. With a
GPU (@pytest.mark.cuda): the public ops with impl='cuda' against impl='ref'.
"""

import warnings

import numpy as np
import pytest
import torch

from torch_utils.ops import bias_act
from torch_utils.ops import bias_act_cuda
from torch_utils.ops import dispatch
from torch_utils.ops import filtered_lrelu
from torch_utils.ops import filtered_lrelu_cuda
from torch_utils.ops import plugin_cuda
from torch_utils.ops import upfirdn2d
from torch_utils.ops import upfirdn2d_cuda
from torch_utils.ops import verify_cuda

CPU = torch.device('cpu')

#----------------------------------------------------------------------------

@pytest.fixture
def real_plugin(cuda_plugin):
    """The built plugin (its CPU emulation runs the kernel code on CPU tensors); skips without nvcc."""
    return cuda_plugin


@pytest.fixture(autouse=True)
def fresh_self_check_results():
    verify_cuda.reset()
    yield
    verify_cuda.reset()


def _filter(taps, seed):
    if taps is None:
        return None
    g = torch.Generator().manual_seed(seed)
    if isinstance(taps, int):
        return upfirdn2d.setup_filter(torch.rand([taps], generator=g) + 0.5)
    return torch.rand(list(taps), generator=g) + 0.1


def _check(op_module, x_shape, dtype, **kwargs):
    """The kernel's self-check (kernel code on the CPU against the reference) for one kind of call."""
    x = torch.zeros(x_shape, dtype=dtype)
    if 'b' in kwargs:
        kwargs['b'] = torch.zeros([x_shape[kwargs.get('dim', 1)]], dtype=dtype) if kwargs['b'] else None
    tensors, args = op_module._prepare(x, **kwargs)
    return dispatch.check_kernel(op_module._LEAVES, tensors, args)

#----------------------------------------------------------------------------
# The kernel code (run on the CPU) against impl='ref': values, gradients, second order.

@pytest.mark.parametrize('act', list(bias_act_cuda._ACT_CODE))
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_bias_act_kernel_code_matches_ref(real_plugin, act, dtype):
    for clamp in [None, 0.7]:
        for has_bias, ndim, dim in [(True, 4, 1), (True, 2, 1), (True, 3, 2), (False, 4, 1)]:
            problem = _check(bias_act, [2] * ndim, dtype, b=has_bias, dim=dim, act=act, clamp=clamp)
            assert problem is None, f'clamp={clamp} bias={has_bias} ndim={ndim} dim={dim}: {problem}'


def test_bias_act_kernel_third_order_is_an_error(real_plugin):
    x = torch.randn([2, 3], requires_grad=True)
    tensors, args = bias_act._prepare(x, None, act='tanh')
    y = bias_act_cuda.apply(*tensors, **args)
    dx, = torch.autograd.grad(y.sum(), x, create_graph=True)
    ddx, = torch.autograd.grad(dx.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match='second order'):
        torch.autograd.grad(ddx.sum(), x)


UPFIRDN2D_CASES = [
    # taps, up, down, padding, flip_filter
    (None, 1, 1, 0, False),
    (4, 2, 1, [2, 1], False),
    (4, 1, 2, [1, 1], True),
    (4, 2, 2, [1, 2, -1, 3], False),
    ((3, 5), 1, 1, [2, 2], False),
    ((3, 5), [2, 1], [1, 3], [1, -2, 3, 0], True),
    ((4, 4), 4, 2, 3, False),
    (12, 2, 1, [6, 5], False),
    (6, 1, 3, [-1, 4, 2, 2], True),
]


@pytest.mark.parametrize('taps, up, down, padding, flip_filter', UPFIRDN2D_CASES)
def test_upfirdn2d_kernel_code_matches_ref(real_plugin, taps, up, down, padding, flip_filter):
    for dtype in [torch.float32, torch.bfloat16]:
        problem = _check(upfirdn2d, [2, 3, 32, 32], dtype, f=_filter(taps, 1), up=up, down=down, padding=padding, flip_filter=flip_filter)
        assert problem is None, f'{dtype}: {problem}'


FILTERED_LRELU_CASES = [
    # fu taps, fd taps, up, down, padding, clamp, flip_filter, bias
    (None, None, 1, 1, 0, None, False, True),
    (12, 12, 2, 2, [10, 10, 10, 10], 0.5, False, True),
    (8, 8, 2, 2, [4, 3], None, True, False),
    (6, (3, 5), 2, 1, [5, -1, 2, 4], 0.3, False, True),
    ((4, 5), None, 1, 2, [3, 2], None, False, True),
    (16, 8, 4, 2, [9, 8, 9, 8], 0.5, True, True),
    (None, 6, 1, 2, [0, 0, 0, 0], None, False, False),
]


@pytest.mark.parametrize('fu, fd, up, down, padding, clamp, flip_filter, bias', FILTERED_LRELU_CASES)
def test_filtered_lrelu_kernel_code_matches_ref(real_plugin, fu, fd, up, down, padding, clamp, flip_filter, bias):
    for dtype in [torch.float32, torch.float16]:
        problem = _check(filtered_lrelu, [2, 3, 32, 32], dtype, fu=_filter(fu, 2), fd=_filter(fd, 3), b=bias, up=up, down=down,
                         padding=padding, clamp=clamp, flip_filter=flip_filter)
        assert problem is None, f'{dtype}: {problem}'


def test_filtered_lrelu_kernel_higher_order_gradients_match_ref(real_plugin):
    """Third order through the incoming gradient: the backward of the backward of the backward."""
    fu, fd = _filter(8, 4), _filter(8, 5)
    kwargs = dict(fu=fu, fd=fd, up=2, down=2, padding=[5, 4, 5, 4], gain=np.sqrt(2), slope=0.2, clamp=0.8, flip_filter=False)
    g = torch.Generator().manual_seed(6)
    x, b = torch.randn([2, 3, 9, 8], generator=g), torch.randn([3], generator=g)

    def third_order(fn):
        xr = x.clone().requires_grad_(True)
        y = fn(xr, b)
        dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(7)).requires_grad_(True)
        dx, = torch.autograd.grad(y, xr, dy, create_graph=True)
        v = torch.randn(dx.shape, generator=torch.Generator().manual_seed(8)).requires_grad_(True)
        ddy, = torch.autograd.grad((dx * v).sum(), dy, create_graph=True)
        w = torch.randn(ddy.shape, generator=torch.Generator().manual_seed(9))
        dv, = torch.autograd.grad((ddy * w).sum(), v)
        return dv

    _, args = filtered_lrelu._prepare(x, b=b, **kwargs)
    got = third_order(lambda x, b: filtered_lrelu_cuda.apply(x, b, **args))
    ref = third_order(lambda x, b: filtered_lrelu.filtered_lrelu(x, b=b, **kwargs, impl='ref'))
    assert verify_cuda.mismatch('third order', got, ref, torch.float32) is None

#----------------------------------------------------------------------------
# The self-check and the fallback, with deliberately wrong kernels (no GPU or nvcc needed). The
# dispatcher is made to treat CPU tensors as the kernels' device, so the whole path runs here.

class _WrongPlugin:
    """Kernels with the plugin's signatures and shapes but wrong numbers, or a crash."""
    def __init__(self, crash=False):
        self.crash = crash

    def _result(self, t):
        if self.crash:
            raise RuntimeError('simulated kernel crash')
        return t

    def bias_act(self, x, b, dy, g, dim, act, mode, alpha, gain, clamp):
        return self._result(x * 0.5)

    def upfirdn2d(self, x, f, up_x, up_y, down_x, down_y, pad_x0, pad_y0, out_w, out_h):
        return self._result(torch.ones([x.shape[0], x.shape[1], out_h, out_w], dtype=x.dtype))

    def filtered_lrelu(self, x, b, f1, f2, signs, up, pad1_x0, pad1_y0, mid_w, mid_h, down, pad2_x0, pad2_y0,
                       out_w, out_h, mode, gain, slope, clamp, write_signs, sep1, sep2):
        out = torch.ones([x.shape[0], x.shape[1], out_h, out_w], dtype=x.dtype)
        return self._result((out, torch.zeros([x.shape[0], x.shape[1], mid_h, (mid_w + 15) // 16], dtype=torch.int32)))


OPS = {
    'bias_act': (bias_act, dict(b=torch.randn([3]), act='lrelu')),
    'upfirdn2d': (upfirdn2d, dict(f=upfirdn2d.setup_filter([1, 3, 3, 1]), up=2, padding=[2, 1])),
    'filtered_lrelu': (filtered_lrelu, dict(fu=upfirdn2d.setup_filter([1, 3, 3, 1]), fd=upfirdn2d.setup_filter([1, 3, 3, 1]),
                                            b=torch.randn([3]), up=2, down=2, padding=3, clamp=1.0)),
}


@pytest.fixture
def kernels_on_cpu(monkeypatch):
    """Routes CPU tensors to the CUDA leaves, as CUDA tensors are on a GPU machine (where the CPU-only
    fast filtered_lrelu is not in line)."""
    for module in (bias_act_cuda, upfirdn2d_cuda, filtered_lrelu_cuda):
        monkeypatch.setattr(module, 'DEVICE', 'cpu')
    monkeypatch.setattr(filtered_lrelu._LEAVES['fast'], 'DEVICE', 'cuda')


def _fallback(op_module):
    """The leaf the dispatcher falls back to when the kernel is out: the next one in line for the device."""
    return op_module._LEAVES['ref'] if op_module is filtered_lrelu else op_module._LEAVES['fast']


@pytest.mark.parametrize('op', list(OPS))
@pytest.mark.parametrize('crash', [False, True])
def test_wrong_kernel_fails_self_check_once_and_op_falls_back(monkeypatch, kernels_on_cpu, op, crash):
    module, kwargs = OPS[op]
    monkeypatch.setattr(plugin_cuda, 'get_plugin', lambda: _WrongPlugin(crash=crash))
    x = torch.randn([2, 3, 8, 8])
    op_fn = getattr(module, op)
    with pytest.warns(verify_cuda.KernelSelfCheckWarning, match=op) as record:
        y = op_fn(x, **kwargs, impl='cuda')
    assert len(record) == 1
    assert ('simulated kernel crash' in str(record[0].message)) == crash
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # Decided once: no second check, no second warning.
        assert torch.equal(op_fn(x, **kwargs, impl='cuda'), y)
    tensors, args = module._prepare(x, **kwargs)
    assert torch.equal(y, _fallback(module).apply(*tensors, **args))


@pytest.mark.parametrize('op', list(OPS))
def test_build_failure_means_unavailable_without_self_check(monkeypatch, kernels_on_cpu, op):
    module, kwargs = OPS[op]
    monkeypatch.setattr(plugin_cuda, 'get_plugin', lambda: None)
    x = torch.zeros([2, 3, 8, 8])
    tensors, args = module._prepare(x, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # custom_ops has warned about the build; nothing more is said.
        assert dispatch.choose_implementation(op, module._LEAVES, 'cuda', tensors, args) is _fallback(module)


@pytest.mark.parametrize('op', list(OPS))
def test_kernels_are_not_chosen_for_cpu_tensors(op):
    module, kwargs = OPS[op]
    tensors, args = module._prepare(torch.zeros([2, 3, 8, 8]), **kwargs)
    assert dispatch.choose_implementation(op, module._LEAVES, 'cuda', tensors, args) is module._LEAVES['fast']


def test_self_check_catches_small_errors_and_leaves_global_rng_alone(real_plugin, monkeypatch, kernels_on_cpu):
    class Perturbed:
        def __getattr__(self, name):
            fn = getattr(real_plugin, name)
            def wrapped(*args):
                out = fn(*args)
                return (out[0] * 1.001, out[1]) if isinstance(out, tuple) else out * 1.001
            return wrapped
    x = torch.randn([2, 3, 8, 8])
    state = torch.random.get_rng_state()
    choose = lambda act: dispatch.choose_implementation('bias_act', bias_act._LEAVES, 'cuda', *bias_act._prepare(x, act=act))
    assert choose('lrelu') is bias_act_cuda
    monkeypatch.setattr(plugin_cuda, 'get_plugin', lambda: Perturbed())
    with pytest.warns(verify_cuda.KernelSelfCheckWarning, match='relative error'):
        assert choose('tanh') is not bias_act_cuda
    assert torch.equal(torch.random.get_rng_state(), state)


def test_unsupported_call_warns_once_naming_the_implementation_used(monkeypatch, kernels_on_cpu):
    monkeypatch.setattr(dispatch, '_warned', set())
    monkeypatch.setattr(plugin_cuda, 'get_plugin', lambda: _WrongPlugin())
    x = torch.randn([2, 3, 8, 8], dtype=torch.float64)  # The kernels take float32, float16 and bfloat16.
    with pytest.warns(dispatch.OpFallbackWarning, match="bias_act: impl='cuda' does not support.*float64.*impl='fast'") as record:
        for _ in range(3):
            bias_act.bias_act(x, act='lrelu', impl='cuda')
    assert len(record) == 1

#----------------------------------------------------------------------------
# On a GPU: the public ops with impl='cuda' against impl='ref'.

def _assert_close(got, ref, dtype):
    problem = verify_cuda.mismatch('value', got, ref, dtype)
    assert problem is None, problem


@pytest.mark.cuda
@pytest.mark.parametrize('act', list(bias_act_cuda._ACT_CODE))
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16])
def test_bias_act_cuda_matches_ref_on_gpu(act, dtype):
    x = torch.randn([4, 16, 8, 8], device='cuda').to(dtype).requires_grad_(True)
    b = torch.randn([16], device='cuda').to(dtype).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter('error', verify_cuda.KernelSelfCheckWarning)
        assert dispatch.choose_implementation('bias_act', bias_act._LEAVES, 'cuda', *bias_act._prepare(x, b, act=act, clamp=1.5)) is bias_act_cuda
        y = bias_act.bias_act(x, b, act=act, clamp=1.5, impl='cuda')
    xr, br = x.detach().float().requires_grad_(True), b.detach().float().requires_grad_(True)
    yr = bias_act.bias_act(xr, br, act=act, clamp=1.5, impl='ref')
    _assert_close(y, yr, dtype)
    dy = torch.randn_like(yr)
    for got, ref in zip(torch.autograd.grad(y, [x, b], dy.to(dtype)), torch.autograd.grad(yr, [xr, br], dy)):
        _assert_close(got, ref, dtype)


@pytest.mark.cuda
@pytest.mark.parametrize('taps, up, down, padding, flip_filter', UPFIRDN2D_CASES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_upfirdn2d_cuda_matches_ref_on_gpu(taps, up, down, padding, flip_filter, dtype):
    f = _filter(taps, 1)
    f = f.cuda() if f is not None else None
    x = torch.randn([3, 5, 20, 17], device='cuda').to(dtype).requires_grad_(True)
    kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter('error', verify_cuda.KernelSelfCheckWarning)
        assert dispatch.choose_implementation('upfirdn2d', upfirdn2d._LEAVES, 'cuda', *upfirdn2d._prepare(x, f, **kwargs)) is upfirdn2d_cuda
        y = upfirdn2d.upfirdn2d(x, f, **kwargs, impl='cuda')
    xr = x.detach().float().requires_grad_(True)
    yr = upfirdn2d.upfirdn2d(xr, f, **kwargs, impl='ref')
    _assert_close(y, yr, dtype)
    dy = torch.randn_like(yr)
    _assert_close(torch.autograd.grad(y, x, dy.to(dtype))[0], torch.autograd.grad(yr, xr, dy)[0], dtype)


@pytest.mark.cuda
@pytest.mark.parametrize('fu, fd, up, down, padding, clamp, flip_filter, bias', FILTERED_LRELU_CASES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_filtered_lrelu_cuda_matches_ref_on_gpu(fu, fd, up, down, padding, clamp, flip_filter, bias, dtype):
    fu, fd = [f.cuda() if f is not None else None for f in (_filter(fu, 2), _filter(fd, 3))]
    x = torch.randn([3, 6, 37, 41], device='cuda').to(dtype).requires_grad_(True)
    b = torch.randn([6], device='cuda').requires_grad_(True) if bias else None
    kwargs = dict(fu=fu, fd=fd, up=up, down=down, padding=padding, clamp=clamp, flip_filter=flip_filter)
    with warnings.catch_warnings():
        warnings.simplefilter('error', verify_cuda.KernelSelfCheckWarning)
        assert dispatch.choose_implementation('filtered_lrelu', filtered_lrelu._LEAVES, 'cuda', *filtered_lrelu._prepare(x, b=b, **kwargs)) is filtered_lrelu_cuda
        y = filtered_lrelu.filtered_lrelu(x, b=b, **kwargs, impl='cuda')
    xr = x.detach().float().requires_grad_(True)
    yr = filtered_lrelu.filtered_lrelu(xr, b=b, **kwargs, impl='ref')
    _assert_close(y, yr, dtype)
    dy = torch.randn_like(yr)
    _assert_close(torch.autograd.grad(y, x, dy.to(dtype))[0], torch.autograd.grad(yr, xr, dy)[0], dtype)


def test_kernels_read_strided_inputs(real_plugin):
    """upfirdn2d and filtered_lrelu read x through its strides (e.g. channels_last) without a copy."""
    g = torch.Generator().manual_seed(10)
    x = torch.randn([2, 5, 11, 9], generator=g)
    x_cl = x.to(memory_format=torch.channels_last)
    f = _filter(4, 11)
    for op_module, kwargs in [(upfirdn2d, dict(f=f, up=2, padding=[2, 1])),
                              (upfirdn2d, dict(f=_filter((3, 4), 12), down=2, padding=1, flip_filter=True)),
                              (filtered_lrelu, dict(fu=f, fd=f, up=2, down=2, padding=3))]:
        kernel = op_module._LEAVES['cuda']
        fn = lambda x: kernel.apply(*op_module._prepare(x, **kwargs)[0], **op_module._prepare(x, **kwargs)[1])
        assert torch.equal(fn(x_cl), fn(x))
        assert torch.equal(fn(x[:, 1:4]), fn(x[:, 1:4].contiguous()))


def test_selftest_without_gpu_says_so_and_fails(capsys):
    if torch.cuda.is_available():
        pytest.skip('a GPU is present; run python -m torch_utils.ops.selftest instead')
    from torch_utils.ops import selftest
    assert selftest.main([]) == 1
    assert 'no CUDA device' in capsys.readouterr().out
