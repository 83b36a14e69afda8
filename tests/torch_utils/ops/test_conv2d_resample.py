"""conv2d_resample: the fused paths against the plain composition, the composition against an
independent spelling, and gradients."""

import itertools

import numpy as np
import pytest
import scipy.signal
import torch

from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import conv2d_resample
from torch_utils.ops import upfirdn2d
from helpers import relative_error


def make_filter(taps, gen):
    if taps is None:
        return None
    return upfirdn2d.setup_filter(torch.rand([taps], generator=gen) + 0.1)


CASES = list(itertools.product(
    [1, 2, 4],                      # up
    [1, 2, 4],                      # down
    [1, 3, 4],                      # kernel size
    [1, [1, -1, 2, 0]],             # padding
    [None, 3, 4],                   # filter taps
))

@pytest.mark.parametrize('up,down,k,padding,taps', CASES)
def test_fused_matches_composition(up, down, k, padding, taps):
    check_parity(['fast'], up, down, k, padding, taps)


@pytest.mark.parametrize('up,down,k,padding,taps', CASES[::13])
def test_default_impl_on_cpu_matches_composition(up, down, k, padding, taps):
    check_parity(['cuda'], up, down, k, padding, taps)


def check_parity(impls, up, down, k, padding, taps):
    gen = torch.Generator().manual_seed(up * 100 + down * 10 + k)
    f = make_filter(taps, gen)
    x = torch.randn([2, 4, 9, 8], generator=gen)
    checked = 0
    for groups, flip_weight, flip_filter in [(1, True, False), (2, False, True), (4, True, True)]:
        w = torch.randn([6 if groups < 4 else 4, 4 // groups, k, k], generator=gen)
        try:
            ref = conv2d_resample.conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter, impl='ref')
        except AssertionError:
            continue    # the padded image is smaller than the filters
        for impl in impls:
            out = conv2d_resample.conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter, impl=impl)
            assert out.shape == ref.shape
            assert relative_error(out, ref) < 1e-5
        checked += 1
    if not checked:
        pytest.skip('padded image smaller than the filters')


def test_fused_matches_composition_channels_last_and_gradfix():
    gen = torch.Generator().manual_seed(1)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn([1, 4, 8, 8], generator=gen).to(memory_format=torch.channels_last)
    w = torch.randn([5, 4, 3, 3], generator=gen)
    previous = conv2d_gradfix.enabled
    conv2d_gradfix.enabled = True
    try:
        for up, down in [(2, 1), (1, 2), (1, 1)]:
            ref = conv2d_resample.conv2d_resample(x.contiguous(), w, f, up=up, down=down, padding=1, impl='ref')
            out = conv2d_resample.conv2d_resample(x, w, f, up=up, down=down, padding=1)
            assert relative_error(out, ref) < 1e-5
    finally:
        conv2d_gradfix.enabled = previous


def composition_numpy(x, w, f, up, down, padding, flip_weight, flip_filter):
    """Independent spelling for groups=1: scipy resampling and an explicit channel sum."""
    fw = f.shape[0]
    px0, px1, py0, py1 = padding
    if up > 1:
        px0 += (fw + up - 1) // 2; px1 += (fw - up) // 2; py0 += (fw + up - 1) // 2; py1 += (fw - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2; px1 += (fw - down) // 2; py0 += (fw - down + 1) // 2; py1 += (fw - down) // 2
    f2 = np.outer(f, f)
    filt = scipy.signal.correlate2d if flip_filter else scipy.signal.convolve2d
    kern = scipy.signal.correlate2d if flip_weight else scipy.signal.convolve2d
    results = []
    for image in x:
        planes = []
        for plane in image:
            u = np.zeros([plane.shape[0] * up, plane.shape[1] * up])
            u[::up, ::up] = plane
            u = np.pad(u, [[py0, py1], [px0, px1]])
            planes.append(filt(u, f2 * up ** 2, mode='valid') if up > 1 else u)
        out = [sum(kern(p, w[o, i], mode='valid') for i, p in enumerate(planes)) for o in range(w.shape[0])]
        if down > 1:
            out = [filt(o, f2, mode='valid')[::down, ::down] for o in out]
        results.append(np.stack(out))
    return np.stack(results)


@pytest.mark.parametrize('up,down,flip_weight,flip_filter', [(1, 1, True, False), (2, 1, False, False), (1, 2, True, True), (2, 2, False, True)])
def test_ref_matches_numpy(up, down, flip_weight, flip_filter):
    gen = torch.Generator().manual_seed(2)
    taps = torch.rand([4], generator=gen, dtype=torch.float64) + 0.1
    f = upfirdn2d.setup_filter(taps)
    x = torch.randn([1, 2, 6, 6], generator=gen, dtype=torch.float64)
    w = torch.randn([3, 2, 3, 3], generator=gen, dtype=torch.float64)
    out = conv2d_resample.conv2d_resample(x, w, f, up=up, down=down, padding=1, flip_weight=flip_weight, flip_filter=flip_filter, impl='ref')
    expected = composition_numpy(x.numpy(), w.numpy(), (taps / taps.sum()).numpy(), up, down, (1, 1, 1, 1), flip_weight, flip_filter)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_keeps_resolution_and_centre():
    # A centred 3x3 identity kernel with padding 1 turns conv2d_resample into upsample2d/downsample2d.
    gen = torch.Generator().manual_seed(3)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn([1, 2, 8, 8], generator=gen)
    w = torch.zeros([2, 2, 3, 3])
    w[0, 0, 1, 1] = w[1, 1, 1, 1] = 1
    for impl in ['ref', 'fast']:
        up = conv2d_resample.conv2d_resample(x, w, f, up=2, padding=1, impl=impl)
        assert torch.allclose(up, upfirdn2d.upsample2d(x, f, impl='ref'), atol=1e-6)
        down = conv2d_resample.conv2d_resample(x, w, f, down=2, padding=1, impl=impl)
        assert torch.allclose(down, upfirdn2d.downsample2d(x, f, impl='ref'), atol=1e-6)


@pytest.mark.parametrize('impl', ['ref', 'fast'])
@pytest.mark.parametrize('up,down,k', [(2, 1, 3), (1, 2, 3), (2, 1, 1), (1, 2, 1), (1, 1, 3)])
def test_gradcheck(impl, up, down, k):
    gen = torch.Generator().manual_seed(4)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn([1, 2, 3, 3], generator=gen, dtype=torch.float64).requires_grad_(True)
    w = torch.randn([1, 2, k, k], generator=gen, dtype=torch.float64).requires_grad_(True)
    fn = lambda x, w: conv2d_resample.conv2d_resample(x, w, f, up=up, down=down, padding=k // 2, impl=impl)
    assert torch.autograd.gradcheck(fn, [x, w])
    if impl == 'fast' and k == 3 and up * down > 1:
        assert torch.autograd.gradgradcheck(fn, [x, w])


@pytest.mark.cuda
@pytest.mark.parametrize('up,down,k,padding,taps', CASES[::9])
def test_parity_cuda(up, down, k, padding, taps):
    gen = torch.Generator().manual_seed(5)
    f = make_filter(taps, gen)
    x = torch.randn([2, 4, 9, 8], generator=gen)
    w = torch.randn([6, 4, k, k], generator=gen)
    try:
        ref = conv2d_resample.conv2d_resample(x, w, f, up, down, padding, impl='ref')
    except AssertionError:
        pytest.skip('padded image smaller than the filters')
    out = conv2d_resample.conv2d_resample(x.cuda(), w.cuda(), None if f is None else f.cuda(), up, down, padding)
    assert relative_error(out.cpu(), ref) < 1e-5
