"""Compile check of the CUDA kernels: builds the plugin whenever nvcc is present (no GPU needed).

The first run compiles for the architectures in TORCH_CUDA_ARCH_LIST (8.0 and 9.0 when unset and
no GPU is visible) and takes a minute or two; later runs load the cached build.
"""

import os
import shutil
import warnings

import pytest
import torch

from torch_utils.ops import plugin_cuda


def nvcc_path():
    """Path of nvcc, or None."""
    for home in (os.environ.get('CUDA_HOME'), os.environ.get('CUDA_PATH'), '/usr/local/cuda'):
        if home and os.path.isfile(os.path.join(home, 'bin', 'nvcc')):
            return os.path.join(home, 'bin', 'nvcc')
    return shutil.which('nvcc')


def build_plugin(monkeypatch):
    """The CUDA plugin, built for default architectures on a machine without a GPU; skips without nvcc."""
    if torch.version.cuda is None:
        pytest.skip('this PyTorch has no CUDA support, so CUDA plugins cannot be built')
    if nvcc_path() is None:
        pytest.skip('nvcc (CUDA toolkit) not found, so the CUDA plugin cannot be compiled')
    if not torch.cuda.is_available() and not os.environ.get('TORCH_CUDA_ARCH_LIST'):
        monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '8.0;9.0')  # Otherwise torch compiles for every architecture.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        plugin = plugin_cuda.get_plugin()
    assert plugin is not None, 'the CUDA plugin failed to build: ' + ' | '.join(str(w.message) for w in caught)
    return plugin


def test_cuda_plugin_builds_and_exposes_its_functions(monkeypatch):
    plugin = build_plugin(monkeypatch)
    for name in plugin_cuda.FUNCTIONS:
        assert callable(getattr(plugin, name, None)), f'the plugin lacks {name}'


def test_cuda_plugin_rejects_bad_arguments(monkeypatch):
    plugin = build_plugin(monkeypatch)
    x = torch.zeros([2, 3, 4, 4], dtype=torch.float64)
    empty = torch.zeros([0])
    with pytest.raises(RuntimeError, match='float32, float16 or bfloat16'):
        plugin.bias_act(x, empty, empty, empty, 1, 0, 0, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match='f must be'):
        plugin.upfirdn2d(x.float(), torch.ones([3]), 1, 1, 1, 1, 0, 0, 4, 4)
    with pytest.raises(RuntimeError, match='signs must be'):
        plugin.filtered_lrelu(x.float(), empty, torch.ones([1, 1]), torch.ones([1, 1]), torch.zeros([1], dtype=torch.int32),
                              1, 0, 0, 4, 4, 1, 0, 0, 4, 4, 1, 1.0, 0.2, -1.0, False, False, False)
