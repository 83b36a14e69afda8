"""Shared test configuration: markers, CPU threads, and small helpers."""

import os

import pytest
import torch

from helpers import run_python


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason='needs a CUDA GPU')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip_cuda)


@pytest.fixture
def python_runner():
    return run_python


@pytest.fixture(autouse=True, scope='session')
def _isolated_caches(tmp_path_factory):
    """Keep download caches of the tests out of the user's home."""
    cache = tmp_path_factory.mktemp('dnnlib-cache')
    old = os.environ.get('DNNLIB_CACHE_DIR')
    os.environ['DNNLIB_CACHE_DIR'] = str(cache)
    yield
    if old is None:
        os.environ.pop('DNNLIB_CACHE_DIR', None)
    else:
        os.environ['DNNLIB_CACHE_DIR'] = old
