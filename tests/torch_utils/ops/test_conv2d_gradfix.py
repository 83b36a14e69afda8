"""conv2d_gradfix: the custom path against torch.nn.functional, gradients of any order, and
no_weight_gradients()."""

import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import conv2d_gradfix


@pytest.fixture
def custom_path():
    previous = conv2d_gradfix.enabled
    conv2d_gradfix.enabled = True
    yield
    conv2d_gradfix.enabled = previous


CONV_CASES = [
    dict(stride=1, padding=0, dilation=1, groups=1),
    dict(stride=2, padding=1, dilation=1, groups=2),
    dict(stride=[1, 2], padding=[2, 0], dilation=[2, 1], groups=1),
]
TRANSPOSE_CASES = [
    dict(stride=2, padding=0, output_padding=1, dilation=1, groups=1),
    dict(stride=[2, 3], padding=[1, 0], output_padding=[1, 2], dilation=1, groups=2),
    dict(stride=1, padding=1, output_padding=0, dilation=2, groups=1),
]


def make(shape, gen, dtype=torch.float64):
    return torch.randn(shape, generator=gen, dtype=dtype).requires_grad_(True)


@pytest.mark.parametrize('transpose,kwargs', [(False, c) for c in CONV_CASES] + [(True, c) for c in TRANSPOSE_CASES])
def test_matches_functional(custom_path, transpose, kwargs):
    gen = torch.Generator().manual_seed(0)
    x = make([2, 4, 7, 6], gen, torch.float32)
    b = make([6], gen, torch.float32)
    if transpose:
        w = make([4, 6 // kwargs['groups'], 3, 2], gen, torch.float32)
        ours, theirs = conv2d_gradfix.conv_transpose2d, F.conv_transpose2d
    else:
        w = make([6, 4 // kwargs['groups'], 3, 2], gen, torch.float32)
        ours, theirs = conv2d_gradfix.conv2d, F.conv2d
    y = ours(x, w, b, **kwargs)
    y_ref = theirs(x, w, b, **kwargs)
    assert torch.allclose(y, y_ref, atol=1e-5)
    dy = torch.randn(y.shape, generator=gen)
    grads = torch.autograd.grad(y, [x, w, b], dy)
    grads_ref = torch.autograd.grad(y_ref, [x, w, b], dy)
    for g, g_ref in zip(grads, grads_ref):
        assert torch.allclose(g, g_ref, atol=1e-4)


@pytest.mark.parametrize('transpose,kwargs', [(False, CONV_CASES[1]), (True, TRANSPOSE_CASES[1])])
def test_gradgradcheck(custom_path, transpose, kwargs):
    gen = torch.Generator().manual_seed(1)
    x = make([1, 2, 2, 3] if transpose else [1, 2, 3, 3], gen)
    b = make([2], gen)
    if transpose:
        w = make([2, 1, 2, 2], gen)
        fn = lambda x, w, b: conv2d_gradfix.conv_transpose2d(x, w, b, **kwargs)
    else:
        w = make([2, 1, 2, 2], gen)
        fn = lambda x, w, b: conv2d_gradfix.conv2d(x, w, b, **kwargs)
    assert torch.autograd.gradcheck(fn, [x, w, b])
    assert torch.autograd.gradgradcheck(fn, [x, w, b])


def r1_style_gradients(x0, w0, weight_gradients):
    """Weight gradient of |d(sum(conv(x)^2))/dx|^2, plus the first-order weight gradient."""
    x = x0.clone().requires_grad_(True)
    w = w0.clone().requires_grad_(True)
    y = conv2d_gradfix.conv2d(torch.tanh(x), w, padding=1)
    with conv2d_gradfix.no_weight_gradients(disable=not weight_gradients):
        (gx,) = torch.autograd.grad(y.square().sum(), [x], create_graph=True)
        first = torch.autograd.grad(y.square().sum(), [w], allow_unused=True, retain_graph=True)[0]
    (gw,) = torch.autograd.grad(gx.square().sum(), [w])
    return first, gw


@pytest.mark.parametrize('enabled', [False, True])
def test_no_weight_gradients(enabled):
    gen = torch.Generator().manual_seed(2)
    x0 = torch.randn([2, 3, 5, 5], generator=gen, dtype=torch.float64)
    w0 = torch.randn([4, 3, 3, 3], generator=gen, dtype=torch.float64)
    previous = conv2d_gradfix.enabled
    conv2d_gradfix.enabled = False
    try:
        first_ref, gw_ref = r1_style_gradients(x0, w0, weight_gradients=True)
        conv2d_gradfix.enabled = enabled
        first, gw = r1_style_gradients(x0, w0, weight_gradients=False)
    finally:
        conv2d_gradfix.enabled = previous
    # The second-order weight gradient flows through the input gradient and must be unaffected.
    assert torch.allclose(gw, gw_ref)
    if enabled:
        assert first is None            # the weight gradient was skipped
    else:
        assert torch.allclose(first, first_ref)
    assert not conv2d_gradfix.weight_gradients_disabled


def test_no_weight_gradients_nests_and_restores():
    with conv2d_gradfix.no_weight_gradients():
        assert conv2d_gradfix.weight_gradients_disabled
        with conv2d_gradfix.no_weight_gradients(disable=False):
            assert conv2d_gradfix.weight_gradients_disabled
        assert conv2d_gradfix.weight_gradients_disabled
    assert not conv2d_gradfix.weight_gradients_disabled
    with conv2d_gradfix.no_weight_gradients(disable=False):
        assert not conv2d_gradfix.weight_gradients_disabled


def test_disabled_is_plain_functional():
    assert conv2d_gradfix.enabled is False
    x = torch.randn([1, 2, 4, 4], requires_grad=True)
    w = torch.randn([3, 2, 3, 3])
    assert conv2d_gradfix.conv2d(x, w).grad_fn.name() == F.conv2d(x, w).grad_fn.name()


@pytest.mark.cuda
def test_matches_functional_cuda(custom_path):
    gen = torch.Generator().manual_seed(3)
    x = make([2, 4, 8, 8], gen, torch.float32).detach().cuda().requires_grad_(True)
    w = make([6, 4, 3, 3], gen, torch.float32).detach().cuda().requires_grad_(True)
    y = conv2d_gradfix.conv2d(x, w, padding=1)
    (gx,) = torch.autograd.grad(y.square().sum(), [x], create_graph=True)
    (gw,) = torch.autograd.grad(gx.square().sum(), [w])
    y_ref = F.conv2d(x, w, padding=1)
    (gx_ref,) = torch.autograd.grad(y_ref.square().sum(), [x], create_graph=True)
    (gw_ref,) = torch.autograd.grad(gx_ref.square().sum(), [w])
    assert torch.allclose(gw, gw_ref, rtol=1e-3, atol=1e-2)
