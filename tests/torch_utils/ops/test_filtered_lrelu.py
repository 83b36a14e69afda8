"""filtered_lrelu: the reference against a numpy/scipy definition, the fast C++ path against the
reference (values and gradients of first and second order), the exact layers of the StyleGAN3-T
fixture network, shapes and the fallback when the kernel cannot be built."""

import itertools
import json
import os
import shutil
import warnings
import zlib

import numpy as np
import pytest
import scipy.signal
import torch

from torch_utils import custom_ops
from torch_utils.ops import _geometry
from torch_utils.ops import filtered_lrelu
from torch_utils.ops import filtered_lrelu_fast
from helpers import relative_error

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures')


@pytest.fixture(scope='module')
def plugin():
    """The fast path must really run the C++ kernel here, or the parity tests would compare ref with ref."""
    if shutil.which(os.environ.get('CXX', 'c++')) is None:
        pytest.skip('no C++ compiler')
    module = filtered_lrelu_fast._plugin()
    assert module is not None, 'the filtered_lrelu C++ kernel failed to build'
    return module


def numpy_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    """Independent definition on float64 arrays: explicit zero insertion, padding by copying into a
    larger canvas, scipy 2-D convolution, then every down-th sample."""
    px0, px1, py0, py1 = padding
    as_2d = lambda f: np.ones([1, 1]) if f is None else (np.outer(f, f) if f.ndim == 1 else np.asarray(f, np.float64))
    fu2, fd2 = as_2d(fu), as_2d(fd)
    filt = scipy.signal.correlate2d if flip_filter else scipy.signal.convolve2d
    n, c, h, w = x.shape
    out = np.zeros([n, c], dtype=object)
    for i, j in itertools.product(range(n), range(c)):
        plane = x[i, j] + (0 if b is None else b[j])
        stuffed = np.zeros([h * up, w * up])
        stuffed[::up, ::up] = plane
        margin = max(map(abs, padding))
        canvas = np.zeros([h * up + 2 * margin, w * up + 2 * margin])
        canvas[margin : margin + h * up, margin : margin + w * up] = stuffed
        padded = canvas[margin - py0 : margin + h * up + py1, margin - px0 : margin + w * up + px1]
        mid = filt(padded, fu2 * up ** 2, mode='valid')
        mid = np.where(mid > 0, mid, mid * slope) * gain
        if clamp is not None:
            mid = np.clip(mid, -clamp, clamp)
        out[i, j] = filt(mid, fd2, mode='valid')[::down, ::down]
    return np.array(out.tolist())


def make_filter(kind, gen):
    shape = {'none': None, '1d-odd': [5], '1d-even': [4], '1d-single': [1], '2d': [3, 4], '2d-square': [3, 3]}[kind]
    return None if shape is None else torch.rand(shape, generator=gen) + 0.05

#----------------------------------------------------------------------------
# The reference against the numpy definition.

@pytest.mark.parametrize('up,down', [(1, 1), (2, 2), (4, 1), (1, 4), (2, 4)])
@pytest.mark.parametrize('padding', [0, [2, -1], [3, 1, -2, 4]])
@pytest.mark.parametrize('kinds', [('1d-even', '1d-odd'), ('2d', '1d-even'), ('none', '2d-square')])
@pytest.mark.parametrize('flip_filter', [False, True])
def test_ref_matches_numpy(up, down, padding, kinds, flip_filter):
    gen = torch.Generator().manual_seed(2)
    fu, fd = (make_filter(k, gen) for k in kinds)
    x = torch.randn([2, 3, 11, 10], generator=gen, dtype=torch.float64)
    b = torch.randn([3], generator=gen, dtype=torch.float64)
    kwargs = dict(up=up, down=down, padding=_geometry.parse_padding(padding), gain=1.7, slope=0.15, clamp=0.9, flip_filter=flip_filter)
    out = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **kwargs, impl='ref')
    expected = numpy_filtered_lrelu(x.numpy(), *(None if t is None else t.double().numpy() for t in (fu, fd, b)), **kwargs)
    assert list(out.shape) == list(expected.shape)
    assert relative_error(out, torch.from_numpy(expected)) < 1e-6   # upfirdn2d scales float32 filters before casting.

#----------------------------------------------------------------------------
# The fast path against the reference.

PADDINGS = [0, 3, [2, -1], [3, 1, -2, 4], [-1, 2, 4, 0]]
FILTER_KINDS = [('1d-even', '1d-even'), ('1d-odd', '1d-even'), ('2d', '1d-odd'), ('1d-even', '2d-square'), ('none', '1d-odd'), ('1d-single', 'none')]


@pytest.mark.parametrize('up', [1, 2, 4])
@pytest.mark.parametrize('down', [1, 2, 4])
@pytest.mark.parametrize('padding', PADDINGS)
@pytest.mark.parametrize('kinds', FILTER_KINDS)
def test_fast_matches_ref(plugin, up, down, padding, kinds):
    case = zlib.crc32(repr((up, down, padding, kinds)).encode()) % 1000
    gen = torch.Generator().manual_seed(case)
    fu, fd = (make_filter(k, gen) for k in kinds)
    x = torch.randn([2, 3, 11, 10], generator=gen) * 2
    b = None if case % 4 == 0 else torch.randn([3], generator=gen)
    kwargs = dict(up=up, down=down, padding=padding, gain=[np.sqrt(2), 1.0, 0.6][case % 3],
                  slope=[0.2, 0.0, 1.0, -0.3][case % 4], clamp=[None, 0.7, 5.0][case % 3], flip_filter=bool(case % 2))
    ref = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **kwargs, impl='ref')
    out = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **kwargs, impl='fast')
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert relative_error(out, ref) < 1e-5


@pytest.mark.parametrize('layout', ['batch1', 'transposed', 'channels_last', 'sliced'])
def test_fast_input_layouts(plugin, layout):
    gen = torch.Generator().manual_seed(3)
    base = torch.randn([3, 4, 12, 11], generator=gen)
    x = {'batch1': base[:1],
         'transposed': base.transpose(2, 3),
         'channels_last': base.contiguous(memory_format=torch.channels_last),
         'sliced': base[:, ::2, 1:, ::2]}[layout]
    fu, fd = torch.rand([6], generator=gen), torch.rand([3, 5], generator=gen)
    b = torch.randn([x.shape[1]], generator=gen)
    kwargs = dict(up=2, down=2, padding=[4, 3, 2, 5], clamp=1.0)
    ref = filtered_lrelu.filtered_lrelu(x.contiguous(), fu, fd, b, **kwargs, impl='ref')
    out = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **kwargs, impl='fast')
    assert relative_error(out, ref) < 1e-5


def _vector_widths(plugin):
    return [vb for vb in (16, 32, 64) if vb <= plugin.nhwc_vector_bytes()]


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize('vector_bytes', [16, 32, 64])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('kinds', [('1d-even', '2d-square'), ('2d', '1d-odd')])
def test_fast_vector_widths_and_layouts(plugin, monkeypatch, memory_format, vector_bytes, dtype, kinds):
    """Every compiled instruction set (as far as this CPU has it) and both memory formats, with a
    channel count that leaves a partial vector, against the reference: values and gradients; the
    output keeps a channels-last input's layout."""
    if vector_bytes not in _vector_widths(plugin):
        pytest.skip(f'this CPU has no {vector_bytes * 8}-bit vectors')
    monkeypatch.setattr(filtered_lrelu_fast, '_vector_bytes', vector_bytes)
    gen = torch.Generator().manual_seed(11)
    fu, fd = (make_filter(k, gen) for k in kinds)
    x0 = (torch.randn([2, 19, 9, 8], generator=gen, dtype=dtype) * 2).contiguous(memory_format=memory_format)
    b0 = torch.randn([19], generator=gen, dtype=dtype)
    kwargs = dict(up=2, down=2, padding=[3, 2, 4, 1], gain=1.3, slope=0.2, clamp=2.0)
    results = []
    for impl in ['ref', 'fast']:
        x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
        y = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **kwargs, impl=impl)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(12), dtype=dtype)
        results.append([y, *torch.autograd.grad((y * w).sum(), [x, b])])
    for out, ref in zip(results[1], results[0]):
        assert relative_error(out, ref) < 1e-5
    y, dx = results[1][0], results[1][1]
    channels_last = memory_format == torch.channels_last
    assert y.is_contiguous(memory_format=memory_format) and dx.is_contiguous(memory_format=memory_format)
    assert channels_last == (not y.is_contiguous())


def test_fast_gradcheck_channels_last(plugin):
    gen = torch.Generator().manual_seed(13)
    fu, fd = torch.rand([4], generator=gen) + 0.1, torch.rand([3, 5], generator=gen) + 0.1
    x = torch.randn([1, 3, 5, 4], generator=gen, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    b = torch.randn([3], generator=gen, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: filtered_lrelu.filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=[3, 2, 1, 4], gain=1.2, slope=0.3, clamp=0.5, impl='fast')
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_fast_inference_matches_training_forward(plugin):
    """Without a backward to come (no_grad, or nothing requiring grad) the kernel records no activation
    codes; the values must be those of the recording forward."""
    gen = torch.Generator().manual_seed(14)
    fu, fd = torch.rand([12], generator=gen), torch.rand([12, 12], generator=gen)
    x = torch.randn([2, 20, 14, 14], generator=gen).contiguous(memory_format=torch.channels_last)
    b = torch.randn([20], generator=gen)
    kwargs = dict(up=2, down=2, padding=[11, 10, 11, 10], clamp=256, impl='fast')
    y_train = filtered_lrelu.filtered_lrelu(x.clone().requires_grad_(), fu, fd, b, **kwargs)
    assert y_train.grad_fn is not None
    with torch.no_grad():
        y_no_grad = filtered_lrelu.filtered_lrelu(x.clone().requires_grad_(), fu, fd, b, **kwargs)
    y_const = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **kwargs)
    assert y_no_grad.grad_fn is None and y_const.grad_fn is None
    assert torch.equal(y_train.detach(), y_no_grad) and torch.equal(y_no_grad, y_const)
    ref = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **{**kwargs, 'impl': 'ref'})
    assert relative_error(y_const, ref) < 1e-5


def test_cuda_impl_on_cpu_takes_fast_path(plugin):
    gen = torch.Generator().manual_seed(4)
    x, fu, fd = torch.randn([2, 2, 7, 7], generator=gen), torch.rand([4], generator=gen), torch.rand([4], generator=gen)
    kwargs = dict(up=2, down=2, padding=2)
    fast = filtered_lrelu.filtered_lrelu(x, fu, fd, **kwargs, impl='fast')
    default = filtered_lrelu.filtered_lrelu(x, fu, fd, **kwargs)
    assert torch.equal(fast, default)


def test_fast_float64_matches_numpy(plugin):
    gen = torch.Generator().manual_seed(5)
    x, b = torch.randn([1, 2, 6, 9], generator=gen, dtype=torch.float64), torch.randn([2], generator=gen, dtype=torch.float64)
    fu, fd = torch.rand([3, 6], generator=gen), torch.rand([7], generator=gen)
    kwargs = dict(up=2, down=4, padding=[5, 2, -1, 6], gain=1.3, slope=0.25, clamp=0.8, flip_filter=False)
    out = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **kwargs, impl='fast')
    expected = numpy_filtered_lrelu(x.numpy(), fu.double().numpy(), fd.double().numpy(), b.numpy(), **{**kwargs, 'padding': [5, 2, -1, 6]})
    assert out.dtype == torch.float64
    assert relative_error(out, torch.from_numpy(expected)) < 1e-6

#----------------------------------------------------------------------------
# Gradients.

GRAD_CASES = [
    dict(up=2, down=2, padding=[3, 2, 1, 4], fu=[4], fd=[4], clamp=None),
    dict(up=1, down=4, padding=[2, 2, 3, 1], fu=[3, 2], fd=[5], clamp=0.4),
    dict(up=4, down=2, padding=[-1, 3, 2, 0], fu=[5], fd=[2, 3], clamp=0.6),
    dict(up=2, down=1, padding=1, fu=None, fd=[3], clamp=None),
]


@pytest.mark.parametrize('case', GRAD_CASES)
def test_fast_gradcheck(plugin, case):
    gen = torch.Generator().manual_seed(6)
    fu, fd = (None if s is None else torch.rand(s, generator=gen) + 0.1 for s in (case['fu'], case['fd']))
    x = torch.randn([1, 2, 5, 4], generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn([2], generator=gen, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: filtered_lrelu.filtered_lrelu(x, fu, fd, b, up=case['up'], down=case['down'], padding=case['padding'],
                                                    gain=1.2, slope=0.3, clamp=case['clamp'], impl='fast')
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


@pytest.mark.parametrize('case', GRAD_CASES)
def test_fast_gradients_match_ref(plugin, case):
    """First order w.r.t. x and b, and second order through the incoming gradient (as path-length
    regularisation uses it), in float32."""
    gen = torch.Generator().manual_seed(7)
    fu, fd = (None if s is None else torch.rand(s, generator=gen) + 0.1 for s in (case['fu'], case['fd']))
    x0 = torch.randn([2, 3, 7, 6], generator=gen)
    b0 = torch.randn([3], generator=gen)
    results = []
    for impl in ['ref', 'fast']:
        x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
        y = filtered_lrelu.filtered_lrelu(x, fu, fd, b, up=case['up'], down=case['down'], padding=case['padding'],
                                          clamp=case['clamp'], impl=impl)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(8)).requires_grad_()
        gx, gb = torch.autograd.grad((y * w).sum(), [x, b], create_graph=True)
        gw, = torch.autograd.grad((gx ** 2).sum() + (gb ** 2).sum(), [w])
        results.append([y, gx, gb, gw])
    for out, ref in zip(results[1], results[0]):
        assert relative_error(out, ref) < 1e-5


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('up,down,width', [(2, 2, 38), (4, 2, 30), (1, 2, 75)])
def test_fast_wide_2d_filter_matches_ref(plugin, dtype, up, down, width):
    """Rows wide enough for the 2-D stage's widest register blocks and every remainder (config R's
    12x12 radial downsampling filter shape), values and first-order gradients."""
    gen = torch.Generator().manual_seed(9)
    fu = torch.rand([6 * up], generator=gen) + 0.1 if up > 1 else None
    fd = torch.rand([6 * down, 6 * down], generator=gen) + 0.1
    x0 = torch.randn([1, 2, 9, width], generator=gen, dtype=dtype)
    b0 = torch.randn([2], generator=gen, dtype=dtype)
    results = []
    for impl in ['ref', 'fast']:
        x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
        y = filtered_lrelu.filtered_lrelu(x, fu, fd, b, up=up, down=down, padding=[7, 6, 5, 8], clamp=20, impl=impl)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(10), dtype=dtype)
        results.append([y, *torch.autograd.grad((y * w).sum(), [x, b])])
    for out, ref in zip(results[1], results[0]):
        assert relative_error(out, ref) < 1e-5

@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('size', [6, 13])
@pytest.mark.parametrize('taps', [(12, 12), (7, 12), (12, 5)])
def test_fast_mirrored_2d_filter_matches_ref(plugin, dtype, size, taps):
    """A 2-D downsampling filter whose rows mirror each other (as config R's radial filters do) takes
    the kernel's paired-rows path; odd and even heights, images small enough that the filter hangs
    over the border, channels-last with a partial vector of channels. Values and gradients."""
    gen = torch.Generator().manual_seed(15)
    half = torch.rand([taps[0], taps[1]], generator=gen) + 0.1
    fd = half + half.flip(0)
    assert torch.equal(fd, fd.flip(0))
    fu = torch.rand([12], generator=gen) + 0.1
    x0 = torch.randn([2, 21, size, size + 1], generator=gen, dtype=dtype).contiguous(memory_format=torch.channels_last)
    b0 = torch.randn([21], generator=gen, dtype=dtype)
    results = []
    for impl in ['ref', 'fast']:
        x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
        y = filtered_lrelu.filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=[11, 10, 12, 9], clamp=3, impl=impl)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(16), dtype=dtype)
        results.append([y, *torch.autograd.grad((y * w).sum(), [x, b])])
    for out, ref in zip(results[1], results[0]):
        assert relative_error(out, ref) < 1e-5

#----------------------------------------------------------------------------
# Every filtered_lrelu of the StyleGAN3-T fixture generator.

def sg3t_fixture_layers():
    """(name, fu, fd, up, down, padding, x_size, out_size, channels, torgb) for each synthesis layer.

    Sizes and channels come from the layer names (L<idx>_<size>_<channels>); the filters from the
    state dict. The T config designs 6 taps per unit of resampling factor, so up = len(fu) // 6 and
    down = len(fd) // 6. A layer's input is the previous layer's output after a 3x3 convolution
    with padding 2 (size + 2; the 1x1 toRGB layer adds nothing). The padding is the smallest
    that yields the layer's output size, with pad_lo = (pad_total + up) // 2 as the layer centres it."""
    names = json.load(open(os.path.join(FIXTURES, 'sg3t-32-uncond.json')))['G_state_dict']
    tensors = np.load(os.path.join(FIXTURES, 'sg3t-32-uncond.npz'))
    layer_names = sorted({k.split('.')[1] for k in names if k.startswith('synthesis.L')}, key=lambda n: int(n.split('_')[0][1:]))
    layers = []
    prev_size = None
    for name in layer_names:
        size, channels = int(name.split('_')[1]), int(name.split('_')[2])
        in_size = size if prev_size is None else prev_size
        key = f'G.synthesis.{name}.'
        torgb = key + 'up_filter' not in tensors.files
        fu = None if torgb else torch.from_numpy(tensors[key + 'up_filter'])
        fd = None if torgb else torch.from_numpy(tensors[key + 'down_filter'])
        up = 1 if torgb else fu.numel() // 6
        down = 1 if torgb else fd.numel() // 6
        taps_u, taps_d = (1, 1) if torgb else (fu.numel(), fd.numel())
        x_size = in_size + (0 if torgb else 2)
        pad_total = (size - 1) * down + 1 - x_size * up + (taps_u - 1) + (taps_d - 1)
        pad_lo = (pad_total + up) // 2
        layers.append((name, fu, fd, up, down, [pad_lo, pad_total - pad_lo] * 2, x_size, size, channels, torgb))
        prev_size = size
    return layers


def test_sg3t_fixture_schedule_is_consistent():
    layers = sg3t_fixture_layers()
    assert len(layers) == 15 and layers[-1][-1] and not any(l[-1] for l in layers[:-1])
    assert [l[3] for l in layers[:-1]] == [2] * 5 + [4] + [2] * 8   # L5 doubles the sampling rate.
    assert all(l[4] == 2 for l in layers[:-1])
    for name, fu, fd, up, down, padding, x_size, size, channels, torgb in layers:
        shape = filtered_lrelu.output_shape([1, channels, x_size, x_size], fu=fu, fd=fd, up=up, down=down, padding=padding)
        assert shape[2:] == [size, size], name


@pytest.mark.parametrize('layer', sg3t_fixture_layers(), ids=lambda l: l[0])
def test_sg3t_fixture_layers(plugin, layer):
    name, fu, fd, up, down, padding, x_size, size, channels, torgb = layer
    gen = torch.Generator().manual_seed(9)
    x = torch.randn([2, channels, x_size, x_size], generator=gen) * 3
    b = torch.randn([channels], generator=gen)
    kwargs = dict(up=up, down=down, padding=padding, gain=1 if torgb else np.sqrt(2), slope=1 if torgb else 0.2, clamp=256)
    ref = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **kwargs, impl='ref')
    out = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **kwargs, impl='fast')
    assert list(out.shape) == [2, channels, size, size]
    assert relative_error(out, ref) < 1e-5

#----------------------------------------------------------------------------
# Shapes and fallbacks.

def test_output_shape_formula():
    x = torch.zeros([1, 1, 10, 13])
    fu, fd = torch.ones([6]), torch.ones([4, 3])
    out = filtered_lrelu.filtered_lrelu(x, fu, fd, up=2, down=3, padding=[1, 2, 3, 4], impl='ref')
    w = ((13 * 2 + 1 + 2 - 5) - 2 + 2) // 3
    h = ((10 * 2 + 3 + 4 - 5) - 3 + 2) // 3
    assert list(out.shape) == [1, 1, h, w]
    with pytest.raises(AssertionError):
        filtered_lrelu.filtered_lrelu(x, fu, fd, up=1, down=1, padding=[-10, -10, 0, 0], impl='ref')


def test_rejects_bad_arguments():
    x = torch.zeros([1, 2, 8, 8])
    with pytest.raises(AssertionError):
        filtered_lrelu.filtered_lrelu(x, torch.ones([4]).requires_grad_(), None, impl='ref')
    with pytest.raises(AssertionError):
        filtered_lrelu.filtered_lrelu(x, b=torch.zeros([3]), impl='ref')
    with pytest.raises(AssertionError):
        filtered_lrelu.filtered_lrelu(x, padding=[1, 2, 3], impl='ref')


def test_fast_falls_back_to_ref_with_one_warning(monkeypatch):
    def failed_build(*_args, **_kwargs):
        raise RuntimeError('simulated build failure')
    monkeypatch.delitem(custom_ops._cached_plugins, 'filtered_lrelu_cpu_plugin', raising=False)
    monkeypatch.setattr(custom_ops, '_build_and_import', failed_build)
    gen = torch.Generator().manual_seed(10)
    x, fu = torch.randn([1, 2, 6, 6], generator=gen), torch.rand([4], generator=gen)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out1 = filtered_lrelu.filtered_lrelu(x, fu, fu, up=2, down=2, padding=3, impl='fast')
        out2 = filtered_lrelu.filtered_lrelu(x, fu, fu, up=2, down=2, padding=3, impl='fast')
    assert len([w for w in caught if 'filtered_lrelu' in str(w.message)]) == 1
    ref = filtered_lrelu.filtered_lrelu(x, fu, fu, up=2, down=2, padding=3, impl='ref')
    assert torch.equal(out1, ref) and torch.equal(out2, ref)
