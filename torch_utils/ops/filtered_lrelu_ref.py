"""filtered_lrelu, reference implementation: the literal composition of upfirdn2d and bias_act.

Leaf of torch_utils.ops.filtered_lrelu (see torch_utils.ops.dispatch). Arguments arrive normalised:
`up`, `down` ints, `padding` (x0, x1, y0, y1), `gain`, `slope` floats, `clamp` a float (< 0: none).
"""

import torch

from torch_utils.ops import bias_act_ref
from torch_utils.ops import upfirdn2d_ref

DEVICE = None  # Any device.

#----------------------------------------------------------------------------

def supported(x, b, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
    return True


def apply(x, b, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
    x = bias_act_ref.apply(x, b, dim=1, act='linear', alpha=0.0, gain=1.0, clamp=-1.0)
    x = upfirdn2d_ref.apply(x, _or_identity(fu, x), up=(up, up), down=(1, 1), padding=padding, flip_filter=flip_filter, gain=float(up ** 2))
    x = bias_act_ref.apply(x, None, dim=1, act='lrelu', alpha=slope, gain=gain, clamp=clamp)
    x = upfirdn2d_ref.apply(x, _or_identity(fd, x), up=(1, 1), down=(down, down), padding=(0, 0, 0, 0), flip_filter=flip_filter, gain=1.0)
    return x


def _or_identity(f, x):
    return torch.ones([1, 1], dtype=torch.float32, device=x.device) if f is None else f

#----------------------------------------------------------------------------
