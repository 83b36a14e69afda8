"""Compile check of the CUDA kernels: builds the plugin whenever nvcc is present (no GPU needed).

The first run compiles for the architectures in TORCH_CUDA_ARCH_LIST (8.0 and 9.0 when unset and
no GPU is visible) and takes a minute or two; later runs load the cached build.
"""

import pytest
import torch

from torch_utils.ops import plugin_cuda


def test_cuda_plugin_builds_and_exposes_its_functions(cuda_plugin):
    plugin = cuda_plugin
    for name in plugin_cuda.FUNCTIONS:
        assert callable(getattr(plugin, name, None)), f'the plugin lacks {name}'


def test_cuda_plugin_rejects_bad_arguments(cuda_plugin):
    plugin = cuda_plugin
    x = torch.zeros([2, 3, 4, 4], dtype=torch.float64)
    empty = torch.zeros([0])
    with pytest.raises(RuntimeError, match='float32, float16 or bfloat16'):
        plugin.bias_act(x, empty, empty, empty, 1, 0, 0, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match='f must be'):
        plugin.upfirdn2d(x.float(), torch.ones([3]), 1, 1, 1, 1, 0, 0, 4, 4)
    with pytest.raises(RuntimeError, match='signs must be'):
        plugin.filtered_lrelu(x.float(), empty, torch.ones([1, 1]), torch.ones([1, 1]), torch.zeros([1], dtype=torch.int32),
                              1, 0, 0, 4, 4, 1, 0, 0, 4, 4, 1, 1.0, 0.2, -1.0, False, False, False)
