"""Helpers for the tests (importable as `helpers`: pytest.ini puts tests/ on the path)."""

import os
import shutil
import subprocess
import sys

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES_DIR = os.path.join(REPO_ROOT, 'tests', 'fixtures')


def run_python(args, cwd=None, env=None, timeout=600, input=None):
    """Runs `python args...` from the repository root (or `cwd`); returns CompletedProcess with text output."""
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = REPO_ROOT + os.pathsep + full_env.get('PYTHONPATH', '')
    full_env.setdefault('PYTHONUNBUFFERED', '1')
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable] + list(args), cwd=cwd or REPO_ROOT, env=full_env, input=input,
                          capture_output=True, text=True, timeout=timeout)


def relative_error(out, ref):
    """||out - ref|| / ||ref|| in float64; the shapes must match (0 when both are zero)."""
    out = torch.as_tensor(out).detach().to(torch.float64)
    ref = torch.as_tensor(ref).detach().to(torch.float64)
    assert out.shape == ref.shape, f'shape {list(out.shape)}, expected {list(ref.shape)}'
    return float((out - ref).norm() / ref.norm().clamp(min=1e-30))


def nvcc_path():
    """Path of the CUDA compiler (CUDA_HOME, CUDA_PATH, /usr/local/cuda, then PATH), or None."""
    for home in (os.environ.get('CUDA_HOME'), os.environ.get('CUDA_PATH'), '/usr/local/cuda'):
        if home and os.path.isfile(os.path.join(home, 'bin', 'nvcc')):
            return os.path.join(home, 'bin', 'nvcc')
    return shutil.which('nvcc')
