"""Fused multiply-add: fma(a, b, c) = a * b + c with broadcasting, differentiable to any order."""

import torch

from torch_utils.ops import dispatch

#----------------------------------------------------------------------------

def fma(a, b, c, impl='cuda'):
    r"""Returns `a * b + c`; the operands broadcast against each other and the gradient of each
    is summed back to its own shape.

    Args:
        a, b, c: Tensors (or Python numbers, as long as one operand is a tensor).
        impl:    'ref' = the plain expression; 'fast' and 'cuda' = one fused torch.addcmul, which
                 skips the intermediate product tensor.
    """
    tensors = [t for t in (a, b, c) if isinstance(t, torch.Tensor)]
    assert tensors, 'at least one operand must be a tensor'
    impl = dispatch.resolve_impl(impl, tensors[0])
    if impl == 'ref':
        return a * b + c
    a, b, c = [t if isinstance(t, torch.Tensor) else torch.as_tensor(t, dtype=tensors[0].dtype, device=tensors[0].device) for t in (a, b, c)]
    return torch.addcmul(c, a, b)

#----------------------------------------------------------------------------
