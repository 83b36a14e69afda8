"""Runs the project's command-line scripts for the tests, each in its own process, forked from an interpreter
that has imported torch and the project once (a fresh interpreter spends seconds of CPU importing torch).

Protocol, one JSON object per line: the test side writes {"args", "cwd", "env", "stdout", "stderr"}; this
server forks a child that runs `python ARGS...` as the interpreter would (stdin empty, stdout and stderr into
the named files, exit status from SystemExit, traceback and status 1 for an uncaught exception, atexit
handlers at the end), answers {"pid"} at once and {"returncode"} when the child has ended. The server
computes nothing itself, so no thread pool or device state is inherited by the children.
"""

import atexit
import importlib
import json
import os
import runpy
import sys
import threading
import traceback

# torch._dynamo: torch.optim imports it on the first optimizer (seconds); tensorboard: every training run.
PRELOAD = ['numpy', 'torch', 'torch._dynamo', 'torch.optim', 'torch.utils.tensorboard', 'PIL.Image', 'click', 'dnnlib',
           'legacy', 'torch_utils.misc', 'torch_utils.ops.dispatch', 'training.networks_stylegan2',
           'training.networks_stylegan3', 'training.dataset', 'training.training_loop', 'training.loss',
           'training.augment', 'metrics.metric_main', 'open_clip', 'timm', 'training.encoders',
           'training.networks_stylegan_t']


def exit_status(code):
    """The status the interpreter ends with for `raise SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def run_child(request):
    """In the forked child: becomes `python ARGS...`; never returns."""
    status = 1
    try:
        stdin = os.open(os.devnull, os.O_RDONLY)
        stdout = os.open(request['stdout'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        stderr = os.open(request['stderr'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request['env'])
        os.chdir(request['cwd'])
        script = request['args'][0]
        if not os.path.isfile(script):  # As the interpreter reports it.
            print(f"{sys.executable}: can't open file {os.path.abspath(script)!r}: [Errno 2] No such file or directory",
                  file=sys.stderr)
            status = 2
            sys.stderr.flush()
            os._exit(status)
        sys.argv = list(request['args'])
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        try:
            runpy.run_path(script, run_name='__main__')
            status = 0
        except SystemExit as exc:
            status = exit_status(exc.code)
        except BaseException:  # The interpreter's own report of an uncaught exception.
            traceback.print_exc()
            status = 1
        threading._shutdown()  # Non-daemon threads finish first, as at a normal exit.
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


def answer(message):
    os.write(1, (json.dumps(message) + '\n').encode())


def main():
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # The repository, not tests/.
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # Optional packages: the child reports their absence as a fresh interpreter would.
    answer({'ready': True})
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(request)
        answer({'pid': pid})
        _, wait_status = os.waitpid(pid, 0)
        answer({'returncode': os.waitstatus_to_exitcode(wait_status)})


if __name__ == '__main__':
    main()
