"""Just-in-time building of C++/CUDA extensions, with a cache keyed by the source text.

`get_plugin()` compiles once per distinct set of sources (and compiler options, Python, PyTorch
and CUDA versions) into TORCH_EXTENSIONS_DIR, and later loads the built module without invoking
the compiler. A failed build never raises: it warns once, saying why and what to install, and
returns None, so the caller takes its pure-PyTorch path.
"""

import glob
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
import warnings

import torch

# ----------------------------------------------------------------------------

verbosity = 'brief'     # 'none', 'brief' (one status line per build) or 'full' (compiler output).

_cached_plugins = dict()   # module_name -> loaded module, or None after a failed build.


class PluginBuildWarning(UserWarning):
    """Emitted once per plugin when it cannot be built; the caller falls back to PyTorch code."""

# ----------------------------------------------------------------------------


def _extensions_root():
    root = os.environ.get('TORCH_EXTENSIONS_DIR')
    if not root:
        cache_home = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
        root = os.path.join(cache_home, 'torch_extensions')
    cuda = 'cu' + torch.version.cuda.replace('.', '') if torch.version.cuda else 'cpu'
    torch_version = re.sub(r'[^0-9a-zA-Z.]', '_', torch.__version__.split('+')[0])
    return os.path.join(root, f'py{sys.version_info.major}{sys.version_info.minor}_torch{torch_version}_{cuda}')


def _nvidia_pip_include_dirs():
    """Include folders of the pip `nvidia-*` packages (they carry headers a bare toolkit may lack)."""
    dirs = []
    try:
        import nvidia  # Namespace package installed with the CUDA builds of torch.
        roots = list(nvidia.__path__)
    except ImportError:
        return dirs
    for root in roots:
        dirs += sorted(d for d in glob.glob(os.path.join(root, '*', 'include')) if os.path.isdir(d))
    return dirs


def _find_cuda_home():
    # PyTorch guesses CUDA_HOME from the location of nvcc, which fails for a wrapper script on the
    # PATH; the toolkit's standard location is the better guess. Must run before the first import
    # of cpp_extension, which reads CUDA_HOME once.
    if not os.environ.get('CUDA_HOME') and not os.environ.get('CUDA_PATH') and os.path.isfile('/usr/local/cuda/bin/nvcc'):
        os.environ['CUDA_HOME'] = '/usr/local/cuda'
    # Importing cpp_extension logs "No CUDA runtime is found" on machines without a GPU: true, and
    # irrelevant when compiling is all we want.
    logger = logging.getLogger('torch.utils.cpp_extension')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)
    return cpp_extension.CUDA_HOME


def _source_digest(module_name, paths, build_kwargs, is_cuda):
    md5 = hashlib.md5()
    md5.update(module_name.encode())
    for path in paths:
        md5.update(os.path.basename(path).encode())
        with open(path, 'rb') as f:
            md5.update(f.read())
    md5.update(repr(sorted(build_kwargs.items())).encode())
    if is_cuda:
        md5.update(os.environ.get('TORCH_CUDA_ARCH_LIST', '').encode())
    return md5.hexdigest()


def _import_built_module(name, so_path):
    spec = importlib.util.spec_from_file_location(name, so_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _built_library(build_dir, name):
    for path in glob.glob(os.path.join(build_dir, name + '*.so')) + glob.glob(os.path.join(build_dir, name + '*.pyd')):
        return path
    return None


def _explain_failure(error, is_cuda):
    """One-paragraph reason and remedy for a failed build."""
    text = str(error)
    if isinstance(error, subprocess.CalledProcessError) and error.output:
        text = error.output.decode(errors='replace') if isinstance(error.output, bytes) else str(error.output)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if 'error' in line.lower()]
    detail = (errors or lines or ['unknown error'])[-1].strip()[:300]
    if shutil.which('ninja') is None and 'ninja' in text.lower():
        remedy = 'install ninja (pip install ninja)'
    elif is_cuda and _find_cuda_home() is None:
        remedy = ('install the CUDA toolkit (nvcc) matching this PyTorch '
                  f'(CUDA {torch.version.cuda}) and set CUDA_HOME')
    elif shutil.which(os.environ.get('CXX', 'c++')) is None:
        remedy = 'install a C++ compiler (e.g. apt install g++) or set CXX'
    else:
        remedy = 'rerun with TORCH_UTILS_PLUGIN_VERBOSE=1 to see the full compiler log'
    return detail, remedy


def get_plugin(module_name, sources, headers=None, source_dir=None, **build_kwargs):
    """Builds (or loads from the cache) and imports an extension; returns None if it cannot be built.

    `sources` and `headers` are file names, relative to `source_dir` if given. Any `.cu` source
    makes it a CUDA extension. `build_kwargs` go to torch.utils.cpp_extension.load
    (extra_cflags, extra_cuda_cflags, extra_ldflags, extra_include_paths, ...).
    """
    assert verbosity in ('none', 'brief', 'full')
    if module_name in _cached_plugins:
        return _cached_plugins[module_name]

    headers = list(headers or [])
    if source_dir is not None:
        sources = [os.path.join(source_dir, s) for s in sources]
        headers = [os.path.join(source_dir, h) for h in headers]
    is_cuda = any(s.endswith('.cu') for s in sources)
    verbose = verbosity == 'full' or os.environ.get('TORCH_UTILS_PLUGIN_VERBOSE', '') not in ('', '0')

    try:
        module = _build_and_import(module_name, sources, headers, is_cuda, build_kwargs, verbose)
    except Exception as e:  # A build failure must never take the caller down.
        detail, remedy = _explain_failure(e, is_cuda)
        warnings.warn(f'Could not build the {"CUDA" if is_cuda else "C++"} plugin "{module_name}" ({detail}); '
                      f'falling back to the slower PyTorch implementation. To fix: {remedy}.',
                      PluginBuildWarning, stacklevel=2)
        module = None
    _cached_plugins[module_name] = module
    return module


def _build_and_import(module_name, sources, headers, is_cuda, build_kwargs, verbose):
    digest = _source_digest(module_name, sources + headers, build_kwargs, is_cuda)
    name = f'{module_name}_{digest[:12]}'
    build_dir = os.path.join(_extensions_root(), name)

    # Built before (by this or another process): load without touching the compiler.
    so_path = _built_library(build_dir, name)
    if so_path is not None and os.path.isfile(os.path.join(build_dir, 'BUILD_OK')):
        return _import_built_module(name, so_path)

    cuda_home = _find_cuda_home()
    from torch.utils import cpp_extension

    if is_cuda and cuda_home is None:
        raise RuntimeError('no CUDA toolkit found (nvcc / CUDA_HOME)')

    # Build in a private folder, then publish it with an atomic rename, so processes that build
    # at the same time (e.g. one per GPU) never see each other's half-written files.
    tmp_dir = f'{build_dir}.tmp-{uuid.uuid4().hex[:8]}'
    os.makedirs(tmp_dir)
    try:
        local_sources = []
        for path in sources + headers:
            dst = os.path.join(tmp_dir, os.path.basename(path))
            shutil.copyfile(path, dst)
            if path in sources:
                local_sources.append(dst)
        build_kwargs = dict(build_kwargs)
        if is_cuda:
            build_kwargs['extra_include_paths'] = list(build_kwargs.get('extra_include_paths', [])) + _nvidia_pip_include_dirs()
        if verbosity == 'brief' and not verbose:
            print(f'Building plugin "{module_name}" (first use; this takes a while)...', file=sys.stderr, flush=True)
        module = cpp_extension.load(name=name, sources=local_sources, build_directory=tmp_dir,
                                    verbose=verbose, with_cuda=is_cuda, **build_kwargs)
        with open(os.path.join(tmp_dir, 'BUILD_OK'), 'w') as f:
            f.write(module_name + '\n')
        try:
            os.rename(tmp_dir, build_dir)
        except OSError:
            pass  # Another process published the same build first; ours is identical.
        return module
    finally:
        if os.path.isdir(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)
