"""Helpers for the tests (importable as `helpers`: pytest.ini puts tests/ on the path)."""

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES_DIR = os.path.join(REPO_ROOT, 'tests', 'fixtures')


def run_python(args, cwd=None, env=None, timeout=600, input=None, fresh=False):
    """Runs `python args...` from the repository root (or `cwd`); returns CompletedProcess with text output.
    A project script (ARGS[0] a .py file) runs in a process forked from a runner that has imported torch already
    (tests/fork_runner.py; one runner per set of start-up variables, see below), unless `fresh` or stdin `input`
    asks for a new interpreter."""
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = REPO_ROOT + os.pathsep + full_env.get('PYTHONPATH', '')
    full_env.setdefault('PYTHONUNBUFFERED', '1')
    if env:
        full_env.update(env)
    cwd = cwd or REPO_ROOT
    if not fresh and input is None and str(args[0]).endswith('.py'):
        return _forked_run([str(arg) for arg in args], cwd=cwd, env=full_env, timeout=timeout)
    return subprocess.run([sys.executable] + list(args), cwd=cwd, env=full_env, input=input,
                          capture_output=True, text=True, timeout=timeout)


# Variables that take effect when the interpreter or torch starts: a runner honours those it was started with,
# so runs whose values differ get a runner of their own.
_STARTUP_VARIABLE_PREFIXES = ('PYTHON', 'TORCH', 'PYTORCH', 'CUDA', 'NVIDIA', 'OMP_', 'MKL_', 'KMP_', 'LD_')
# Set by torch itself when a test process first touches torch._dynamo (e.g. while building a network on the meta
# device): not a choice of the test, so it must not cost a new runner.
_IGNORED_STARTUP_VARIABLES = ('TORCHINDUCTOR_CACHE_DIR',)
_idle_runners = {}  # Start-up variables -> idle runners started with them.
_runners_lock = threading.Lock()


def _startup_variables(env):
    return tuple(sorted((key, value) for key, value in env.items()
                        if key.startswith(_STARTUP_VARIABLE_PREFIXES) and key not in _IGNORED_STARTUP_VARIABLES))


class _ForkRunner:
    """One tests/fork_runner.py process and the reading end of its answers."""

    def __init__(self, env):
        self.proc = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, 'tests', 'fork_runner.py')], cwd=REPO_ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.pending = b''
        self.read_answer(deadline=time.time() + 600)  # {'ready': True} once torch and the project are imported.

    def read_answer(self, deadline):
        while b'\n' not in self.pending:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(deadline - time.time(), 0))
            if not ready:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError('tests/fork_runner.py ended unexpectedly')
            self.pending += chunk
        line, self.pending = self.pending.split(b'\n', 1)
        return json.loads(line)

    def run(self, args, cwd, env, timeout):
        with tempfile.TemporaryDirectory() as folder:
            request = dict(args=args, cwd=cwd, env=env, stdout=os.path.join(folder, 'stdout'),
                           stderr=os.path.join(folder, 'stderr'))
            self.proc.stdin.write((json.dumps(request) + '\n').encode())
            self.proc.stdin.flush()
            pid = self.read_answer(deadline=time.time() + 60)['pid']
            answer = self.read_answer(deadline=time.time() + timeout)
            timed_out = answer is None
            if timed_out:
                os.kill(pid, signal.SIGKILL)
                answer = self.read_answer(deadline=time.time() + 60)
            outputs = []
            for name in ('stdout', 'stderr'):
                with open(request[name], errors='replace') as f:
                    outputs.append(f.read())
        if timed_out:
            raise subprocess.TimeoutExpired([sys.executable] + args, timeout, output=outputs[0], stderr=outputs[1])
        return subprocess.CompletedProcess([sys.executable] + args, answer['returncode'], outputs[0], outputs[1])


def _forked_run(args, cwd, env, timeout):
    key = _startup_variables(env)
    with _runners_lock:
        idle = _idle_runners.setdefault(key, [])
        runner = idle.pop() if idle else None
    if runner is None:
        runner = _ForkRunner(env)
    result = runner.run(args, cwd=cwd, env=env, timeout=timeout)
    with _runners_lock:
        _idle_runners[key].append(runner)
    return result


@atexit.register
def _stop_runners():
    for runners in _idle_runners.values():
        for runner in runners:
            runner.proc.stdin.close()
            runner.proc.wait()


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
