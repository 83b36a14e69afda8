"""fma: a * b + c with broadcasting, against the plain expression."""

import pytest
import torch

from torch_utils.ops import fma

SHAPES = [
    ([3, 4], [3, 4], [3, 4]),
    ([3, 1], [1, 4], [4]),
    ([2, 1, 5], [5], [2, 3, 1]),
    ([1], [2, 3], [1, 1]),
]


@pytest.mark.parametrize('impl', ['fast', 'cuda'])
@pytest.mark.parametrize('shapes', SHAPES)
def test_parity_and_broadcast_gradients(impl, shapes):
    gen = torch.Generator().manual_seed(0)
    a, b, c = [torch.randn(s, generator=gen).requires_grad_(True) for s in shapes]
    y_ref = fma.fma(a, b, c, impl='ref')
    y = fma.fma(a, b, c, impl=impl)
    assert y.shape == y_ref.shape and torch.allclose(y, y_ref, atol=1e-6)
    dy = torch.randn(y.shape, generator=gen)
    for g, g_ref, t in zip(torch.autograd.grad(y, [a, b, c], dy), torch.autograd.grad(y_ref, [a, b, c], dy), [a, b, c]):
        assert g.shape == t.shape and torch.allclose(g, g_ref, atol=1e-5)


def test_ref_matches_definition():
    a, b, c = torch.tensor([2.0]), torch.tensor([[3.0], [4.0]]), torch.tensor([1.0, -1.0])
    assert torch.equal(fma.fma(a, b, c, impl='ref'), torch.tensor([[7.0, 5.0], [9.0, 7.0]]))


@pytest.mark.parametrize('impl', ['ref', 'fast'])
def test_gradgradcheck(impl):
    gen = torch.Generator().manual_seed(1)
    a, b, c = [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_(True) for s in SHAPES[2]]
    fn = lambda a, b, c: fma.fma(a, b, c, impl=impl)
    assert torch.autograd.gradcheck(fn, [a, b, c])
    assert torch.autograd.gradgradcheck(fn, [a, b, c])


def test_python_scalar_operand():
    x = torch.randn([3])
    assert torch.allclose(fma.fma(x, 2.0, 1.0, impl='fast'), x * 2 + 1)
    assert torch.allclose(fma.fma(x, 2.0, 1.0, impl='ref'), x * 2 + 1)


@pytest.mark.cuda
def test_parity_cuda():
    a, b, c = torch.randn([4, 1]), torch.randn([5]), torch.randn([4, 5])
    assert torch.allclose(fma.fma(a.cuda(), b.cuda(), c.cuda()).cpu(), a * b + c, atol=1e-6)
