"""upfirdn2d: the reference against a scipy definition, every implementation against the reference,
gradients, and the centring of the filter2d/upsample2d/downsample2d wrappers."""

import itertools
import warnings

import numpy as np
import pytest
import scipy.signal
import torch

from torch_utils.ops import _geometry
from torch_utils.ops import upfirdn2d
from torch_utils.ops import upfirdn2d_fast
from helpers import relative_error

IMPLS_CPU = ['fast']   # impl='cuda' on CPU tensors is this same leaf (tests/torch_utils/ops/test_cuda_ops.py).


@pytest.fixture(params=['cpp', 'torch'])
def fast_backend(request, monkeypatch):
    """Runs the test with the C++ kernels, then with the vectorised PyTorch code behind 'fast'."""
    if request.param == 'torch':
        monkeypatch.setattr(upfirdn2d_fast, '_plugin', lambda: None)
    else:
        assert upfirdn2d_fast._plugin() is not None, 'the C++ plugin failed to build'
    return request.param


def upfirdn2d_numpy(x, f, up, down, padding, flip_filter, gain):
    """Independent definition: explicit zero insertion and padding, scipy 2-D convolution."""
    upx, upy = up
    downx, downy = down
    px0, px1, py0, py1 = padding
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 1:
        f = np.outer(f, f)
    n, c, h, w = x.shape
    out = []
    for image in x.reshape(n * c, h, w):
        u = np.zeros([h * upy, w * upx])
        u[::upy, ::upx] = image
        big = np.zeros([h * upy + abs(py0) + abs(py1), w * upx + abs(px0) + abs(px1)])
        big[abs(py0) : abs(py0) + h * upy, abs(px0) : abs(px0) + w * upx] = u
        big = big[abs(py0) - py0 : big.shape[0] - (abs(py1) - py1), abs(px0) - px0 : big.shape[1] - (abs(px1) - px1)]
        op = scipy.signal.correlate2d if flip_filter else scipy.signal.convolve2d
        out.append(op(big, f, mode='valid')[::downy, ::downx] * gain)
    out = np.stack(out)
    return out.reshape(n, c, out.shape[1], out.shape[2])


def random_filter(kind, generator):
    taps = {'1d-even': [4], '1d-odd': [5], '2d-square': [3, 3], '2d-rect': [2, 5], 'single': [1]}[kind]
    return torch.rand(taps, generator=generator) + 0.1

#----------------------------------------------------------------------------
# The reference against the scipy definition.

@pytest.mark.parametrize('up,down', [(1, 1), (2, 1), (1, 2), (4, 1), (1, 4), (2, 2), ([2, 3], [3, 1])])
@pytest.mark.parametrize('padding', [0, [2, 1], [3, -1, 0, 2], [-2, -1, 1, 4]])
@pytest.mark.parametrize('kind', ['1d-even', '2d-rect'])
@pytest.mark.parametrize('flip_filter', [False, True])
def test_ref_matches_scipy(up, down, padding, kind, flip_filter):
    gen = torch.Generator().manual_seed(1)
    f = random_filter(kind, gen)
    x = torch.randn([2, 2, 7, 9], generator=gen, dtype=torch.float64)
    out = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=1.5, impl='ref')
    expected = upfirdn2d_numpy(x.numpy(), f.numpy(), _geometry.parse_scaling(up), _geometry.parse_scaling(down), _geometry.parse_padding(padding), flip_filter, 1.5)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_ref_is_a_true_convolution():
    x = torch.zeros([1, 1, 5, 5])
    x[0, 0, 2, 2] = 1
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    conv = upfirdn2d.upfirdn2d(x, f, padding=[1, 0, 1, 0], impl='ref')[0, 0]
    corr = upfirdn2d.upfirdn2d(x, f, padding=[0, 1, 0, 1], flip_filter=True, impl='ref')[0, 0]
    # An impulse reproduces the filter itself under convolution and its flip under correlation.
    assert torch.equal(conv[2:4, 2:4], f)
    assert torch.equal(corr[1:3, 1:3], f.flip([0, 1]))

#----------------------------------------------------------------------------
# setup_filter.

def test_setup_filter():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    assert torch.allclose(f.sum(), torch.tensor(1.0))
    assert torch.allclose(f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    f = upfirdn2d.setup_filter([1, 2, 3, 4, 5, 6, 7, 8])
    assert f.shape == (8,) and torch.allclose(f.sum(), torch.tensor(1.0))
    f = upfirdn2d.setup_filter([1, 2, 3], separable=True, gain=4, normalize=False, flip_filter=True)
    assert torch.allclose(f, torch.tensor([3.0, 2, 1]) * 2)
    f = upfirdn2d.setup_filter([[1, 2], [3, 4]], gain=2)
    assert torch.allclose(f, torch.tensor([[1.0, 2], [3, 4]]) / 10 * 2)
    assert upfirdn2d.setup_filter(None).shape == (1, 1)
    assert upfirdn2d.setup_filter(2.0, normalize=False).item() == 4.0   # one tap, applied along both axes
    with pytest.raises(AssertionError):
        upfirdn2d.setup_filter([[1, 2], [3, 4]], separable=True)

#----------------------------------------------------------------------------
# Every implementation against the reference.

CASES = list(itertools.product(
    [1, 2, 4],                                   # up
    [1, 2, 4],                                   # down
    [0, [2, -1, 3, 1], [-3, 2, -1, -2]],          # padding
    ['1d-even', '1d-odd', '2d-square', '2d-rect'],
))

def check_parity(impl, device, up, down, padding, kind):
    gen = torch.Generator().manual_seed(up * 100 + down * 10 + len(kind))
    f = random_filter(kind, gen)
    fw, fh = _geometry.filter_size(f)
    x = torch.randn([2, 3, 9, 8], generator=gen)
    px0, px1, py0, py1 = _geometry.parse_padding(padding)
    if 8 * up + px0 + px1 < fw or 9 * up + py0 + py1 < fh:
        pytest.skip('padded image smaller than the filter')
    for flip_filter, gain in [(False, 1), (True, 2.5), (False, -0.5)]:
        ref = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain, impl='ref')
        out = upfirdn2d.upfirdn2d(x.to(device), f.to(device), up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain, impl=impl)
        assert out.shape == ref.shape
        assert relative_error(out.cpu(), ref) < 1e-5


@pytest.mark.parametrize('up,down,padding,kind', CASES)
def test_parity(fast_backend, up, down, padding, kind):
    check_parity('fast', 'cpu', up, down, padding, kind)


@pytest.mark.parametrize('up,down,padding,kind', CASES[::11])
def test_parity_default_impl_on_cpu(up, down, padding, kind):
    check_parity('cuda', 'cpu', up, down, padding, kind)


@pytest.mark.parametrize('impl', ['ref'] + IMPLS_CPU)
def test_output_size(impl):
    x = torch.randn([1, 1, 10, 7])
    f = upfirdn2d.setup_filter([1, 2, 2, 1])
    out = upfirdn2d.upfirdn2d(x, f, up=[3, 2], down=[2, 3], padding=[1, -2, 3, 0], impl=impl)
    # (in * up + pad0 + pad1 - taps + down) // down, per axis
    assert out.shape == (1, 1, (10 * 2 + 3 + 0 - 4 + 3) // 3, (7 * 3 + 1 - 2 - 4 + 2) // 2)


@pytest.mark.parametrize('impl', IMPLS_CPU)
def test_parity_layouts(fast_backend, impl):
    gen = torch.Generator().manual_seed(3)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    base = torch.randn([1, 4, 12, 10], generator=gen)
    inputs = {
        'batch1': base,
        'channels_last': base.to(memory_format=torch.channels_last),
        'non_contiguous': torch.randn([1, 10, 4, 24], generator=gen).permute(0, 2, 3, 1)[:, :, ::2, :],
        'expanded_batch': base[:, :1].expand(3, 4, 12, 10),
    }
    for name, x in inputs.items():
        for up, down in [(2, 1), (1, 2), (1, 1)]:
            ref = upfirdn2d.upfirdn2d(x.contiguous(), f, up=up, down=down, padding=1, impl='ref')
            out = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=1, impl=impl)
            assert relative_error(out, ref) < 1e-5, name


def test_rank_deficient_2d_filter_uses_general_path(fast_backend):
    # A 2-D filter that is not an outer product must not be separated.
    f = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0], [4.0, 0.0, 5.0]])
    assert upfirdn2d_fast._separate_filter(f) is None
    x = torch.randn([2, 2, 8, 8])
    for up, down in [(1, 1), (2, 1), (1, 2), (2, 2)]:
        ref = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=1, impl='ref')
        out = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=1, impl='fast')
        assert relative_error(out, ref) < 1e-5


def test_float64_and_float16(fast_backend):
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn([2, 3, 8, 8], dtype=torch.float64)
    ref = upfirdn2d.upfirdn2d(x, f, up=2, padding=2, impl='ref')
    out = upfirdn2d.upfirdn2d(x, f, up=2, padding=2, impl='fast')
    assert out.dtype == torch.float64 and relative_error(out, ref) < 1e-12
    out16 = upfirdn2d.upfirdn2d(x.half(), f, down=2, padding=1, impl='fast')
    ref16 = upfirdn2d.upfirdn2d(x.float(), f, down=2, padding=1, impl='ref')
    assert out16.dtype == torch.float16 and relative_error(out16, ref16) < 2e-3

#----------------------------------------------------------------------------
# Gradients.

GRADCHECK_CASES = [
    (1, 1, 1, '2d-square'), (2, 1, [2, 1], '1d-even'), (1, 2, [1, 2, 0, 1], '2d-rect'),
    ([2, 1], [1, 3], [0, -1, 2, 1], '1d-odd'), (4, 2, [-1, 3, 2, 0], '2d-square'),
]

@pytest.mark.parametrize('impl,up,down,padding,kind', [('fast',) + case for case in GRADCHECK_CASES] + [('ref',) + GRADCHECK_CASES[2]])
def test_gradcheck(fast_backend, impl, up, down, padding, kind):
    gen = torch.Generator().manual_seed(4)
    f = random_filter(kind, gen)
    x = torch.randn([1, 2, 4, 4], generator=gen, dtype=torch.float64, requires_grad=True)
    fn = lambda x: upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=True, gain=1.7, impl=impl)
    assert torch.autograd.gradcheck(fn, [x])
    assert torch.autograd.gradgradcheck(fn, [x])


@pytest.mark.parametrize('up,down,padding', [(2, 1, [2, 1]), (1, 2, [1, 1, 1, 2]), (2, 3, [-1, 2, 3, 0])])
def test_fast_gradient_matches_ref(fast_backend, up, down, padding):
    gen = torch.Generator().manual_seed(5)
    f = upfirdn2d.setup_filter(torch.rand([4], generator=gen) + 0.1)
    x = torch.randn([2, 3, 9, 7], generator=gen, requires_grad=True)
    grads = []
    for impl in ['ref', 'fast']:
        y = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=padding, impl=impl)
        (gx,) = torch.autograd.grad(y, [x], torch.sin(torch.arange(y.numel(), dtype=torch.float32).reshape(y.shape)))
        grads.append(gx)
    assert relative_error(grads[1], grads[0]) < 1e-5


def test_gradient_is_transposed_op():
    # <upfirdn2d(x), y> == <x, upfirdn2d^T(y)> with up and down swapped.
    gen = torch.Generator().manual_seed(6)
    f = upfirdn2d.setup_filter([1, 2, 5, 1])
    x = torch.randn([1, 1, 6, 6], generator=gen, dtype=torch.float64, requires_grad=True)
    y = upfirdn2d.upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1], impl='ref')
    v = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    (gx,) = torch.autograd.grad((y * v).sum(), [x])
    # Per axis: padding [taps - pad0 - 1, in * up - out * down + pad0 - up + 1] = [1, 1].
    transposed = upfirdn2d.upfirdn2d(v, f, down=2, padding=1, flip_filter=True, impl='ref')
    assert torch.allclose(gx, transposed)

#----------------------------------------------------------------------------
# The wrappers keep the image centred.

def ramp(height, width, axis):
    coords = torch.arange(height if axis == 2 else width, dtype=torch.float64)
    return coords.reshape([1, 1, -1, 1] if axis == 2 else [1, 1, 1, -1]).expand(1, 1, height, width)


@pytest.mark.parametrize('impl', ['ref', 'fast'])
@pytest.mark.parametrize('up', [2, 4])
@pytest.mark.parametrize('axis', [2, 3])
def test_upsample2d_is_centred(impl, up, axis):
    # A symmetric filter that interpolates linear functions exactly: a tent of width 2 * up.
    taps = [1 - abs(i + 0.5 - up) / up for i in range(2 * up)]
    f = upfirdn2d.setup_filter(taps)
    x = ramp(8, 8, axis)
    y = upfirdn2d.upsample2d(x, f, up=up, impl=impl)
    assert y.shape == (1, 1, 8 * up, 8 * up)
    # Output pixel j sits at input coordinate (j + 0.5) / up - 0.5; compare away from the borders.
    expected = (torch.arange(8 * up, dtype=torch.float64) + 0.5) / up - 0.5
    inner = slice(up, 7 * up)
    line = y[0, 0, :, 3] if axis == 2 else y[0, 0, 3, :]
    assert torch.allclose(line[inner], expected[inner])


@pytest.mark.parametrize('impl', ['ref', 'fast'])
@pytest.mark.parametrize('down,taps', [(2, [1, 3, 3, 1]), (2, [1, 1]), (4, [1, 1, 1, 1]), (2, [1, 2, 1])])
@pytest.mark.parametrize('axis', [2, 3])
def test_downsample2d_is_centred(impl, down, taps, axis):
    f = upfirdn2d.setup_filter(taps)
    x = ramp(16, 16, axis)
    y = upfirdn2d.downsample2d(x, f, down=down, impl=impl)
    assert y.shape == (1, 1, 16 // down, 16 // down)
    # Output pixel j sits at input coordinate (j + 0.5) * down - 0.5, for every symmetric filter
    # whose length has the parity of `down` (odd filters are centred on a pixel).
    centres = (torch.arange(16 // down, dtype=torch.float64) + 0.5) * down - 0.5
    # The centring padding rounds down: an odd filter with an even factor lands half a pixel early.
    if len(taps) % 2 != down % 2:
        centres = centres - 0.5
    line = y[0, 0, :, 2] if axis == 2 else y[0, 0, 2, :]
    assert torch.allclose(line[1:-1], centres[1:-1])


@pytest.mark.parametrize('impl', ['ref', 'fast'])
@pytest.mark.parametrize('taps', [[1, 2, 1], [1, 3, 3, 1], [1, 4, 6, 4, 1]])
def test_filter2d_is_centred_and_keeps_size(impl, taps):
    f = upfirdn2d.setup_filter(taps)
    x = ramp(10, 10, 3)
    y = upfirdn2d.filter2d(x, f, impl=impl)
    assert y.shape == x.shape
    shift = 0.5 if len(taps) % 2 == 0 else 0.0   # even filters sit between two pixels
    assert torch.allclose(y[0, 0, 4, 2:-2], x[0, 0, 4, 2:-2] - shift)


def test_wrappers_match_explicit_upfirdn2d():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn([1, 2, 6, 6])
    assert torch.allclose(upfirdn2d.upsample2d(x, f, padding=1, impl='ref'), upfirdn2d.upfirdn2d(x, f, up=2, padding=[3, 2, 3, 2], gain=4, impl='ref'))
    assert torch.allclose(upfirdn2d.downsample2d(x, f, impl='ref'), upfirdn2d.upfirdn2d(x, f, down=2, padding=1, impl='ref'))
    assert torch.allclose(upfirdn2d.filter2d(x, f, impl='ref'), upfirdn2d.upfirdn2d(x, f, padding=[2, 1, 2, 1], impl='ref'))

#----------------------------------------------------------------------------
# Dispatch.

def test_invalid_arguments():
    x = torch.randn([1, 1, 4, 4])
    f = upfirdn2d.setup_filter([1, 1])
    with pytest.raises(ValueError):
        upfirdn2d.upfirdn2d(x, f, impl='nonsense')
    with pytest.raises(AssertionError):
        upfirdn2d.upfirdn2d(x, f, up=0)
    with pytest.raises(AssertionError):
        upfirdn2d.upfirdn2d(x, f, padding=[1, 2, 3])
    with pytest.raises(AssertionError):
        upfirdn2d.upfirdn2d(x, f.double())
    with pytest.raises(AssertionError):
        upfirdn2d.upfirdn2d(x, f, padding=-3)


def test_default_impl_on_cpu_warns_at_most_once():
    x = torch.randn([1, 1, 6, 6])
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        outs = [upfirdn2d.upsample2d(x, f) for _ in range(3)]
    assert len([w for w in caught if 'upfirdn2d' in str(w.message)]) == 0   # CPU tensors go to 'fast' silently
    assert relative_error(outs[0], upfirdn2d.upsample2d(x, f, impl='ref')) < 1e-6


@pytest.mark.cuda
@pytest.mark.parametrize('impl', ['cuda', 'fast'])
@pytest.mark.parametrize('up,down,padding,kind', CASES[::5])
def test_parity_cuda(impl, up, down, padding, kind):
    check_parity(impl, 'cuda', up, down, padding, kind)

#----------------------------------------------------------------------------
