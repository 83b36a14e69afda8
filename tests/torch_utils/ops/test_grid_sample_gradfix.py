"""grid_sample_gradfix: the gather-based reference against torch and a pixel loop, and gradients
of any order."""

import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import grid_sample_gradfix


def sample_loop(image, gx, gy):
    """Bilinear sample of one [C, H, W] image at one normalised point, with zero padding."""
    c, h, w = image.shape
    ix = ((gx + 1) * w - 1) / 2
    iy = ((gy + 1) * h - 1) / 2
    x0, y0 = int(torch.floor(torch.tensor(ix))), int(torch.floor(torch.tensor(iy)))
    out = torch.zeros(c, dtype=image.dtype)
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            if 0 <= yy < h and 0 <= xx < w:
                out += image[:, yy, xx] * (1 - abs(ix - xx)) * (1 - abs(iy - yy))
    return out


def random_grid(gen, n, h, w, dtype=torch.float64):
    return torch.rand([n, h, w, 2], generator=gen, dtype=dtype) * 2.6 - 1.3   # some points outside


def test_ref_matches_pixel_loop():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([2, 3, 4, 5], generator=gen, dtype=torch.float64)
    grid = random_grid(gen, 2, 3, 2)
    out = grid_sample_gradfix.grid_sample(x, grid, impl='ref')
    for n in range(2):
        for i in range(3):
            for j in range(2):
                expected = sample_loop(x[n], grid[n, i, j, 0].item(), grid[n, i, j, 1].item())
                assert torch.allclose(out[n, :, i, j], expected)


@pytest.mark.parametrize('impl', ['ref', 'fast', 'cuda'])
def test_parity_with_torch(impl):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn([2, 3, 6, 7], generator=gen).requires_grad_(True)
    grid = random_grid(gen, 2, 5, 4, torch.float32).requires_grad_(True)
    y = grid_sample_gradfix.grid_sample(x, grid, impl=impl)
    y_ref = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    assert torch.allclose(y, y_ref, atol=1e-5)
    dy = torch.randn(y.shape, generator=gen)
    for g, g_ref in zip(torch.autograd.grad(y, [x, grid], dy), torch.autograd.grad(y_ref, [x, grid], dy)):
        assert torch.allclose(g, g_ref, atol=1e-4)


@pytest.mark.parametrize('impl', ['ref', 'fast'])
def test_gradgradcheck(impl):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn([1, 2, 3, 4], generator=gen, dtype=torch.float64).requires_grad_(True)
    grid = random_grid(gen, 1, 2, 3).requires_grad_(True)
    fn = lambda x, grid: grid_sample_gradfix.grid_sample(x, grid, impl=impl)
    assert torch.autograd.gradcheck(fn, [x, grid])
    assert torch.autograd.gradgradcheck(fn, [x, grid])


def test_r1_through_augmentation_matches_ref():
    # d/d(params) of |d(score)/d(image)|^2 with the image resampled by a fixed grid.
    gen = torch.Generator().manual_seed(3)
    img0 = torch.randn([2, 3, 6, 6], generator=gen)
    grid = random_grid(gen, 2, 6, 6, torch.float32)
    w0 = torch.randn([3, 6, 6], generator=gen)
    results = []
    for impl in ['ref', 'fast']:
        img = img0.clone().requires_grad_(True)
        w = w0.clone().requires_grad_(True)
        score = (torch.tanh(grid_sample_gradfix.grid_sample(img, grid, impl=impl)) * w).sum()
        (g,) = torch.autograd.grad(score, [img], create_graph=True)
        results.append(torch.autograd.grad(g.square().sum(), [w])[0])
    assert torch.allclose(results[0], results[1], atol=1e-5)


@pytest.mark.cuda
def test_parity_cuda():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn([2, 3, 6, 7], generator=gen)
    grid = random_grid(gen, 2, 5, 4, torch.float32)
    ref = grid_sample_gradfix.grid_sample(x, grid, impl='ref')
    out = grid_sample_gradfix.grid_sample(x.cuda(), grid.cuda())
    assert torch.allclose(out.cpu(), ref, atol=1e-5)
