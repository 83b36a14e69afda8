"""Argument parsing shared by the resampling ops: scaling factors, padding, filter sizes.

The public ops validate and normalise their arguments with these once, before dispatch, so every
implementation receives the same canonical tuples.
"""

import numpy as np
import torch

#----------------------------------------------------------------------------

def parse_scaling(scaling):
    """An int or [x, y] of positive ints -> (x, y)."""
    if type(scaling) is tuple and len(scaling) == 2 and type(scaling[0]) is int and type(scaling[1]) is int and min(scaling) >= 1:
        return scaling  # Already normalised (the ops pass their own results on).
    if isinstance(scaling, (int, np.integer)):
        scaling = [scaling, scaling]
    assert isinstance(scaling, (list, tuple)) and len(scaling) == 2, 'scaling must be an int or [x, y]'
    assert all(isinstance(s, (int, np.integer)) and s >= 1 for s in scaling), 'scaling factors must be positive ints'
    return int(scaling[0]), int(scaling[1])


def parse_padding(padding):
    """An int, [x, y] or [x0, x1, y0, y1] of ints -> (x0, x1, y0, y1)."""
    if type(padding) is tuple and len(padding) == 4 and all(type(p) is int for p in padding):
        return padding  # Already normalised.
    if isinstance(padding, (int, np.integer)):
        padding = [padding, padding]
    assert isinstance(padding, (list, tuple)), 'padding must be an int, [x, y] or [x0, x1, y0, y1]'
    assert all(isinstance(p, (int, np.integer)) for p in padding), 'padding values must be ints'
    if len(padding) == 2:
        px, py = padding
        padding = [px, px, py, py]
    assert len(padding) == 4, 'padding must be an int, [x, y] or [x0, x1, y0, y1]'
    return tuple(int(p) for p in padding)


def filter_size(f):
    """(taps along x, taps along y) of a 1-D (separable) or 2-D filter; None is a single tap."""
    if f is None:
        return 1, 1
    assert isinstance(f, torch.Tensor) and f.ndim in (1, 2), 'filters must be 1-D or 2-D tensors'
    width, height = int(f.shape[-1]), int(f.shape[0])
    assert width >= 1 and height >= 1, 'filters must have at least one tap'
    return width, height


def resampled_length(length, up, down, pad0, pad1, taps):
    """Samples along one axis after zero insertion (`up`), padding, a `taps`-tap filter and keeping every `down`-th."""
    return (length * up + pad0 + pad1 - taps + down) // down


def centring_padding(taps, up=1, down=1):
    """(pad0, pad1) along one axis that keeps pixel centres aligned when a `taps`-tap filter resamples by
    `up` (output j at input (j + 0.5) / up - 0.5) or by `down` (output j at input (j + 0.5) * down - 0.5),
    or, with neither, filters in place."""
    assert up == 1 or down == 1, 'centring is defined for upsampling or downsampling, not both'
    return (taps + up - down) // 2, (taps - max(up, down)) // 2


def added_padding(padding, extra_x, extra_y):
    """(x0, x1, y0, y1) padding plus per-axis (pad0, pad1) additions."""
    x0, x1, y0, y1 = padding
    return x0 + extra_x[0], x1 + extra_x[1], y0 + extra_y[0], y1 + extra_y[1]


def adjoint_padding(in_len, out_len, up, down, pad0, taps):
    """(pad0, pad1) of the resampling that maps gradients of an `out_len` output back to the `in_len`
    input along one axis: the same filter flipped, with `up` and `down` swapped."""
    return taps - pad0 - 1, in_len * up - out_len * down + pad0 - up + 1

#----------------------------------------------------------------------------
