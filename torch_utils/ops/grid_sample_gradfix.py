"""Bilinear grid sampling (zero padding, align_corners=False) with gradients of any order.

The augmentation pipeline resamples images with grid_sample() inside the discriminator's graph, so
the R1 penalty differentiates through it twice. 'ref' spells the interpolation out with gathers,
which autograd differentiates to any order with respect to both the input and the grid; 'fast' and
'cuda' call torch.nn.functional.grid_sample, whose backward is itself differentiable.
"""

import torch
import torch.nn.functional as F

from torch_utils.ops import dispatch

#----------------------------------------------------------------------------

def grid_sample(input, grid, impl='cuda'):
    r"""Samples `input` [N, C, H, W] at the normalised coordinates `grid` [N, H_out, W_out, 2]
    ((x, y) in [-1, 1] spanning the outer edges of the corner pixels) bilinearly, reading zeros
    outside the image. Returns [N, C, H_out, W_out]."""
    assert isinstance(input, torch.Tensor) and input.ndim == 4, 'input must be an NCHW tensor'
    assert isinstance(grid, torch.Tensor) and grid.ndim == 4 and grid.shape[3] == 2, 'grid must be [N, H_out, W_out, 2]'
    assert grid.shape[0] == input.shape[0], 'input and grid must have the same batch size'
    if dispatch.resolve_impl(impl, input) == 'ref':
        return _grid_sample_ref(input, grid)
    return F.grid_sample(input=input, grid=grid, mode='bilinear', padding_mode='zeros', align_corners=False)

#----------------------------------------------------------------------------

def _grid_sample_ref(input, grid):
    batch_size, num_channels, height, width = input.shape
    _, out_height, out_width, _ = grid.shape
    grid = grid.to(input.dtype)

    # Pixel coordinates: -1 maps to the left edge of pixel 0, i.e. coordinate -0.5.
    ix = ((grid[..., 0] + 1) * width - 1) / 2
    iy = ((grid[..., 1] + 1) * height - 1) / 2
    x0 = ix.detach().floor()
    y0 = iy.detach().floor()
    wx1 = ix - x0
    wy1 = iy - y0
    flat = input.reshape(batch_size, num_channels, height * width)

    def corner(xc, yc, weight):
        inside = (xc >= 0) & (xc <= width - 1) & (yc >= 0) & (yc <= height - 1)
        index = (yc.clamp(0, height - 1) * width + xc.clamp(0, width - 1)).long()
        index = index.reshape(batch_size, 1, -1).expand(-1, num_channels, -1)
        values = flat.gather(2, index).reshape(batch_size, num_channels, out_height, out_width)
        return values * (weight * inside.to(weight.dtype)).unsqueeze(1)

    return (corner(x0, y0, (1 - wx1) * (1 - wy1)) + corner(x0 + 1, y0, wx1 * (1 - wy1)) +
            corner(x0, y0 + 1, (1 - wx1) * wy1) + corner(x0 + 1, y0 + 1, wx1 * wy1))

#----------------------------------------------------------------------------
