"""Custom ops, each with up to three implementations.

'ref'  -- plain PyTorch, written for clarity; the definition and the oracle of the tests.
'fast' -- the fast path for CPU tensors (vectorised PyTorch and/or a JIT-built C++ kernel).
'cuda' -- the CUDA kernels for CUDA tensors (the default, as in the official API); CPU tensors
          passed with impl='cuda' take the fast path.

Which implementation runs is decided in one place, torch_utils.ops.dispatch. Set the environment
variable TORCH_UTILS_OPS_IMPL (or `force_impl` below) to 'ref', 'fast' or 'cuda' to override the
`impl` argument of every call, for debugging and benchmarks.
"""

import os

force_impl = os.environ.get('TORCH_UTILS_OPS_IMPL') or None
