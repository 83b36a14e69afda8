"""Fixtures of the op tests."""

import os
import warnings

import pytest
import torch

from helpers import nvcc_path
from torch_utils.ops import plugin_cuda


@pytest.fixture
def cuda_plugin(monkeypatch):
    """The CUDA plugin, built (on a machine without a GPU, for sm_80 and sm_90, where its CPU emulation runs
    the kernel code on CPU tensors); skips without nvcc or a CUDA build of PyTorch."""
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
