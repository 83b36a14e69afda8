"""bias_act, reference implementation: the definition in plain PyTorch, and the activation table.

Leaf of torch_utils.ops.bias_act (see torch_utils.ops.dispatch). Arguments arrive normalised:
`dim` non-negative, `alpha`, `gain` and `clamp` floats, clamp < 0 meaning no clamp.
"""

import numpy as np
import torch
import torch.nn.functional as F

from dnnlib.util import EasyDict

DEVICE = None  # Any device.

#----------------------------------------------------------------------------
# Activation functions. `func` is the plain definition; `grad` is its derivative, taken from the
# activation's input `z` or its output `a = func(z)`, whichever `ref` names. `alpha` is the
# negative slope of lrelu; the other activations have no shape parameter and do not read it.
# `cuda_idx` numbers the activation in the C++ kernels; `has_2nd_grad` says whether the second
# derivative is nonzero somewhere.

def _sigmoid_grad(z, a, alpha):
    return a * (1 - a)

def _elu_grad(z, a, alpha):
    return torch.where(a > 0, torch.ones_like(a), a + 1)

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

def _selu_grad(z, a, alpha):
    return torch.where(a > 0, torch.full_like(a, _SELU_SCALE), a + _SELU_SCALE * _SELU_ALPHA)

def _swish_grad(z, a, alpha):
    s = torch.sigmoid(z)
    return s * (1 + z * (1 - s))

activation_funcs = {
    'linear':   EasyDict(func=lambda x, **_:        x,                          grad=lambda z, a, alpha: torch.ones_like(a),                           def_alpha=0,   def_gain=1,            cuda_idx=1, ref='',  has_2nd_grad=False),
    'relu':     EasyDict(func=lambda x, **_:        F.relu(x),                  grad=lambda z, a, alpha: (a > 0).to(a.dtype),                          def_alpha=0,   def_gain=np.sqrt(2),   cuda_idx=2, ref='y', has_2nd_grad=False),
    'lrelu':    EasyDict(func=lambda x, alpha, **_: F.leaky_relu(x, alpha),     grad=lambda z, a, alpha: torch.where(z > 0, 1.0, alpha * torch.ones_like(z)),     def_alpha=0.2, def_gain=np.sqrt(2),   cuda_idx=3, ref='x', has_2nd_grad=False),
    'tanh':     EasyDict(func=lambda x, **_:        torch.tanh(x),              grad=lambda z, a, alpha: 1 - a * a,                                    def_alpha=0,   def_gain=1,            cuda_idx=4, ref='y', has_2nd_grad=True),
    'sigmoid':  EasyDict(func=lambda x, **_:        torch.sigmoid(x),           grad=_sigmoid_grad,                                                    def_alpha=0,   def_gain=1,            cuda_idx=5, ref='y', has_2nd_grad=True),
    'elu':      EasyDict(func=lambda x, **_:        F.elu(x),                   grad=_elu_grad,                                                        def_alpha=0,   def_gain=1,            cuda_idx=6, ref='y', has_2nd_grad=True),
    'selu':     EasyDict(func=lambda x, **_:        F.selu(x),                  grad=_selu_grad,                                                       def_alpha=0,   def_gain=1,            cuda_idx=7, ref='y', has_2nd_grad=True),
    'softplus': EasyDict(func=lambda x, **_:        F.softplus(x),              grad=lambda z, a, alpha: torch.sigmoid(z),                             def_alpha=0,   def_gain=1,            cuda_idx=8, ref='x', has_2nd_grad=True),
    'swish':    EasyDict(func=lambda x, **_:        torch.sigmoid(x) * x,       grad=_swish_grad,                                                      def_alpha=0,   def_gain=np.sqrt(2),   cuda_idx=9, ref='x', has_2nd_grad=True),
}

#----------------------------------------------------------------------------

def bias_shape(x, dim):
    """The shape that broadcasts a [channels] bias along `dim` of `x`."""
    return [-1 if i == dim else 1 for i in range(x.ndim)]


def supported(x, b, dim, act, alpha, gain, clamp):
    return True


def apply(x, b, dim, act, alpha, gain, clamp):
    """The plain definition, differentiable to any order by autograd."""
    if b is not None:
        x = x + b.reshape(bias_shape(x, dim))
    x = activation_funcs[act].func(x, alpha=alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x

#----------------------------------------------------------------------------
