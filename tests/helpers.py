"""Helpers for the tests (importable as `helpers`: pytest.ini puts tests/ on the path)."""

import os
import subprocess
import sys

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
