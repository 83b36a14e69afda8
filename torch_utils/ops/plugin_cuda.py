"""The compiled plugin with the CUDA kernels of bias_act, upfirdn2d and filtered_lrelu.

One extension (ops_cuda.cpp with the bindings, one .cu file per op) so that a fresh machine pays
for compiling the PyTorch headers once. The .cu files include no PyTorch headers, which keeps
nvcc fast. Built on first use by torch_utils.custom_ops.get_plugin (for the architectures in
TORCH_CUDA_ARCH_LIST, or those of the visible GPUs); None when it cannot be built.
"""

import os

from torch_utils import custom_ops

SOURCES = ['ops_cuda.cpp', 'bias_act_cuda.cu', 'upfirdn2d_cuda.cu', 'filtered_lrelu_cuda.cu']
HEADERS = ['ops_cuda.h', 'common_cuda.h']
FUNCTIONS = ['bias_act', 'upfirdn2d', 'filtered_lrelu']
_SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))


def get_plugin():
    """The built module, or None (after one warning from custom_ops) if it cannot be built."""
    return custom_ops.get_plugin('ops_cuda_plugin', sources=SOURCES, headers=HEADERS,
                                 source_dir=_SOURCE_DIR)
