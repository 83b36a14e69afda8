"""Shared test configuration: markers, CPU threads, and small helpers."""

import os

import pytest
import torch

from helpers import run_python


# The files that take longest start first (pytest.ini hands whole files to the worker processes), so that no
# worker is left running one of them alone at the end.
SLOWEST_FILES = ['test_train.py', 'test_bad_input.py', 'test_kill_resume.py', 'test_quickstart.py',
                 'test_calc_metrics.py', 'test_text_metrics.py', 'test_official_commands.py', 'test_gen_images.py', 'test_visualizer.py', 'test_grids.py',
                 'test_avg_spectra.py', 'test_plot_stats.py']


def pytest_collection_modifyitems(config, items):
    order = {name: idx for idx, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: order.get(item.path.name, len(order)))  # Stable: the rest keep their order.
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
