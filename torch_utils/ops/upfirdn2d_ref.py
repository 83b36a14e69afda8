"""upfirdn2d, reference implementation: the four steps of the definition, spelled out.

Leaf of torch_utils.ops.upfirdn2d (see torch_utils.ops.dispatch). Arguments arrive normalised: `f` a
float32 1-D or 2-D tensor, `up` and `down` (x, y) pairs, `padding` (x0, x1, y0, y1), `gain` a float.
"""

import numpy as np
import torch
import torch.nn.functional as F

DEVICE = None  # Any device.

#----------------------------------------------------------------------------

def supported(x, f, up, down, padding, flip_filter, gain):
    return True


def apply(x, f, up, down, padding, flip_filter, gain):
    """The plain definition: zero insertion, padding, a full 2-D convolution, subsampling."""
    batch_size, num_channels, in_height, in_width = x.shape
    (upx, upy), (downx, downy) = up, down
    padx0, padx1, pady0, pady1 = padding

    # Insert up-1 zeros after every sample.
    x = x.reshape([batch_size, num_channels, in_height, 1, in_width, 1])
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape([batch_size, num_channels, in_height * upy, in_width * upx])

    # Pad with zeros, then crop where the padding is negative.
    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[:, :, max(-pady0, 0) : x.shape[2] - max(-pady1, 0), max(-padx0, 0) : x.shape[3] - max(-padx1, 0)]

    # Convolve with the filter; a separable filter becomes its outer product. conv2d correlates,
    # so a true convolution needs the flipped kernel.
    if f.ndim == 1:
        f = torch.outer(f, f) * gain
    else:
        f = f * gain
    if not flip_filter:
        f = f.flip([0, 1])
    f = f.to(x.dtype)[np.newaxis, np.newaxis].repeat([num_channels, 1, 1, 1])
    x = F.conv2d(x, f, groups=num_channels)

    # Keep every down-th sample.
    return x[:, :, ::downy, ::downx]

#----------------------------------------------------------------------------
