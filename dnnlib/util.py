"""Generic utilities: EasyDict, logging, URL download with caching, and name-based construction.

Network pickles refer to `dnnlib.util.EasyDict` by that dotted path, so it must live here.
"""

import contextlib
import hashlib
import importlib
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

# ----------------------------------------------------------------------------
# Attribute-style dictionary.


class EasyDict(dict):
    """A dict whose items can also be read and written as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

# ----------------------------------------------------------------------------
# Tee stdout/stderr to a log file.


class Logger:
    """While open, everything printed to stdout or stderr also goes to `file_name` (when given)."""

    def __init__(self, file_name=None, file_mode='w', should_flush=True):
        self.file = None if file_name is None else open(file_name, file_mode)
        self.should_flush = should_flush
        self.stdout, self.stderr = sys.stdout, sys.stderr  # The streams it stands in for, restored by close().
        sys.stdout = sys.stderr = self

    def __enter__(self):
        return self

    def __exit__(self, *_exc_info):
        self.close()

    def _targets(self):
        return [self.stdout] if self.file is None else [self.file, self.stdout]

    def write(self, text):
        text = text.decode() if isinstance(text, bytes) else text
        if not text:
            return
        for target in self._targets():
            target.write(text)
        if self.should_flush:
            self.flush()

    def flush(self):
        for target in self._targets():
            target.flush()

    def isatty(self):
        return False  # Progress bars should not draw into the log file.

    def close(self):
        self.flush()
        # A Logger opened after this one may have taken a stream over since; that one is left to it.
        sys.stdout = self.stdout if sys.stdout is self else sys.stdout
        sys.stderr = self.stderr if sys.stderr is self else sys.stderr
        log_file, self.file = self.file, None
        if log_file is not None:
            log_file.close()

# ----------------------------------------------------------------------------
# Formatting.


def format_time(seconds):
    """Human-readable duration, e.g. '1h 02m 03s'."""
    s = int(round(seconds))
    if s < 60:
        return f'{s}s'
    if s < 60 * 60:
        return f'{s // 60}m {s % 60:02d}s'
    if s < 24 * 60 * 60:
        return f'{s // (60 * 60)}h {(s // 60) % 60:02d}m {s % 60:02d}s'
    return f'{s // (24 * 60 * 60)}d {(s // (60 * 60)) % 24:02d}h {(s // 60) % 60:02d}m'


def format_time_brief(seconds):
    """Shorter form with two units at most, e.g. '1h 02m'."""
    s = int(round(seconds))
    if s < 60:
        return f'{s}s'
    if s < 60 * 60:
        return f'{s // 60}m {s % 60:02d}s'
    if s < 24 * 60 * 60:
        return f'{s // (60 * 60)}h {(s // 60) % 60:02d}m'
    return f'{s // (24 * 60 * 60)}d {(s // (60 * 60)) % 24:02d}h'

# ----------------------------------------------------------------------------
# Cache directory.


def make_cache_dir_path(*paths):
    """Path inside the download cache: $DNNLIB_CACHE_DIR, else $HOME/.cache/dnnlib (also honours
    USERPROFILE on Windows), else a temporary directory."""
    if 'DNNLIB_CACHE_DIR' in os.environ:
        return os.path.join(os.environ['DNNLIB_CACHE_DIR'], *paths)
    for var in ('HOME', 'USERPROFILE'):
        if os.environ.get(var):
            return os.path.join(os.environ[var], '.cache', 'dnnlib', *paths)
    return os.path.join(tempfile.gettempdir(), '.cache', 'dnnlib', *paths)

# ----------------------------------------------------------------------------
# Name-based object lookup and construction.


def _split_module_and_attr(obj_name):
    """Finds the longest importable module prefix of `obj_name`; returns (module, remaining attr path)."""
    parts = obj_name.split('.')
    errors = []
    for i in range(len(parts), 0, -1):
        module_name = '.'.join(parts[:i])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            # Only swallow the error if it is about this very module (or a parent); a missing
            # dependency inside an existing module is a real error.
            if e.name is not None and not module_name.startswith(e.name):
                raise
            errors.append(e)
            continue
        return module, '.'.join(parts[i:])
    if len(parts) == 1:
        # A bare name refers to something in __main__ (as the official helpers allow).
        return sys.modules['__main__'], obj_name
    raise ImportError(f'Cannot find a module for {obj_name!r}') from (errors[0] if errors else None)


def get_obj_from_module(module, obj_name):
    """Resolves a dotted attribute path inside a module."""
    obj = module
    if obj_name:
        for part in obj_name.split('.'):
            obj = getattr(obj, part)
    return obj


def get_obj_by_name(name):
    """Returns the Python object named by a fully qualified dotted name."""
    module, obj_name = _split_module_and_attr(name)
    try:
        return get_obj_from_module(module, obj_name)
    except AttributeError:
        raise AttributeError(f'Module {module.__name__!r} has no attribute {obj_name!r} (looking up {name!r})') from None


def call_func_by_name(*args, func_name=None, **kwargs):
    """Calls the function named by `func_name` with the given arguments."""
    assert func_name is not None
    func = get_obj_by_name(func_name)
    if not callable(func):
        raise TypeError(f'{func_name!r} is not callable')
    return func(*args, **kwargs)


def construct_class_by_name(*args, class_name=None, **kwargs):
    """Constructs an instance of the class named by `class_name` with the given arguments."""
    return call_func_by_name(*args, func_name=class_name, **kwargs)


def get_module_dir_by_obj_name(obj_name):
    """Directory of the module that defines the named object."""
    module, _ = _split_module_and_attr(obj_name)
    return os.path.dirname(os.path.abspath(module.__file__))


def get_top_level_function_name(obj):
    """Fully qualified name of a top-level function."""
    module = obj.__module__
    if module == '__main__':
        module = os.path.splitext(os.path.basename(sys.modules[module].__file__))[0]
    return module + '.' + obj.__name__


def is_url(obj, allow_file_urls=False):
    """True if `obj` is a string holding an http(s) URL (or file:// if allowed)."""
    if not isinstance(obj, str) or '://' not in obj:
        return False
    if allow_file_urls and obj.startswith('file://'):
        return True
    parsed = urllib.parse.urlparse(obj)
    return parsed.scheme in ('http', 'https') and bool(parsed.netloc)

# ----------------------------------------------------------------------------
# URL opening with download cache.


class DownloadError(IOError):
    """Raised when a URL cannot be fetched; the message says where to put the file by hand."""


def url_cache_path(url, cache_dir=None):
    """Where `open_url` caches `url`: <cache_dir>/downloads/<md5 of url>_<file name>."""
    if cache_dir is None:
        cache_dir = make_cache_dir_path('downloads')
    url_md5 = hashlib.md5(url.encode('utf-8')).hexdigest()
    file_name = os.path.basename(urllib.parse.urlparse(url).path) or 'download'
    file_name = re.sub(r'[^0-9a-zA-Z_.\-]', '_', file_name)
    return os.path.join(cache_dir, f'{url_md5}_{file_name}')


def _file_url_to_path(url):
    parsed = urllib.parse.urlparse(url)
    path = urllib.request.url2pathname(parsed.path)
    if parsed.netloc not in ('', 'localhost'):
        path = '//' + parsed.netloc + path  # UNC-style host path
    return path


def _download(url, num_attempts, verbose, timeout=60):
    """Fetches `url` into memory with retries; returns bytes or raises DownloadError."""
    import requests  # Imported lazily: only downloads need it.
    last_error = None
    for attempt in range(num_attempts):
        try:
            with requests.Session() as session:
                if verbose:
                    print(f'Downloading {url} ...', end='', flush=True, file=sys.stderr)
                with session.get(url, timeout=timeout) as res:
                    res.raise_for_status()
                    data = res.content
                    if len(data) == 0:
                        raise IOError('empty response')
                    # Google Drive's virus-scan interstitial is HTML, not the file.
                    if 'text/html' in res.headers.get('Content-Type', '') and b'Google Drive' in data[:4096]:
                        raise IOError('Google Drive returned a confirmation page instead of the file')
                if verbose:
                    print(' done', file=sys.stderr)
                return data
        except KeyboardInterrupt:
            raise
        except Exception as e:  # Network errors of every kind are retried.
            last_error = e
            if verbose:
                print(' failed', file=sys.stderr)
            # Client errors (404, 403, ...) will not improve by retrying, and a refused or
            # unresolvable connection (typically: offline) rarely does.
            status = getattr(getattr(e, 'response', None), 'status_code', None)
            if status is not None and 400 <= status < 500:
                break
            if isinstance(e, requests.ConnectionError) and attempt + 1 >= min(num_attempts, 3):
                break
            if attempt + 1 < num_attempts:
                time.sleep(min(2 ** attempt * 0.1, 5.0))
    raise DownloadError(f'Could not download {url} ({type(last_error).__name__}: {last_error}).') from last_error


# ----------------------------------------------------------------------------
# Atomic writes: a reader (or a later run after a kill) sees the old file or the complete new one.

_TEMPORARY_NAME = re.compile(r'\.tmp-\d+(-[0-9a-f]{8}(\.[^./]*)?)?$')  # Without the token: earlier versions' name.


def temporary_path(path, suffix=''):
    """A fresh name beside `path` for writing it atomically: `<path>.tmp-<pid>-<token><suffix>`."""
    return f'{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}'


@contextlib.contextmanager
def atomic_path(path, suffix=''):
    """Yields a temporary path beside `path` (ending in `suffix`, e.g. an extension a writer needs); the
    file written there replaces `path` when the block ends normally and is removed otherwise."""
    tmp_path = temporary_path(path, suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def write_atomically(path, write_fn, fsync=False):
    """Calls write_fn(binary file) on a temporary file beside `path`, then renames it over `path`;
    with `fsync`, the data reach the disk before the rename (for files a crash must not lose)."""
    with atomic_path(path) as tmp_path:
        with open(tmp_path, 'wb') as f:
            write_fn(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def is_temporary_file(path):
    """True for the temporary files of atomic_path(), which a killed process may leave behind."""
    return _TEMPORARY_NAME.search(os.path.basename(path)) is not None


def remove_stale_temporaries(path):
    """Deletes the temporary files or folders of `path` (temporary_path) whose writing process is gone,
    as a killed process leaves them; returns their names."""
    directory, name = os.path.split(os.path.abspath(path))
    pattern = re.compile(re.escape(name) + r'\.tmp-(\d+)(-[0-9a-f]{8}(\.[^./]*)?)?$')
    removed = []
    for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        match = pattern.match(entry)
        if match is None or _process_alive(int(match.group(1))):
            continue
        target = os.path.join(directory, entry)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(target)
        removed.append(entry)
    return removed


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # Exists, owned by someone else.
    return True


def remove_temporary_files(directory):
    """Deletes the temporary files that killed processes left in `directory`; returns their names."""
    removed = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        path = os.path.join(directory, name)
        if is_temporary_file(name) and os.path.isfile(path):
            os.remove(path)
            removed.append(name)
    return removed


def open_url(url, cache_dir=None, num_attempts=10, verbose=True, return_filename=False, cache=True):
    """Opens a local path, a file:// URL or an http(s):// URL as a binary file object.

    Downloads are cached (in `cache_dir`, default $DNNLIB_CACHE_DIR/downloads or
    ~/.cache/dnnlib/downloads) and written atomically. With `return_filename=True` the local
    file name is returned instead of an open file (requires `cache=True` for URLs).
    """
    assert num_attempts >= 1
    assert not (return_filename and not cache)

    # Local paths and file:// URLs.
    if not re.match(r'^[a-zA-Z][a-zA-Z0-9+.\-]*://', str(url)):
        path = os.fspath(url)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'No such file: {path}')
        return path if return_filename else open(path, 'rb')
    if url.startswith('file://'):
        path = _file_url_to_path(url)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'No such file: {path} (from {url})')
        return path if return_filename else open(path, 'rb')
    if not is_url(url):
        raise ValueError(f'Unsupported URL {url!r}: expected a local path, file://, http:// or https://')

    # Cached copy?
    cache_path = url_cache_path(url, cache_dir) if cache else None
    if cache and os.path.isfile(cache_path):
        return cache_path if return_filename else open(cache_path, 'rb')

    try:
        data = _download(url, num_attempts=num_attempts, verbose=verbose)
    except DownloadError as e:
        hint = (f' To use it offline, download it elsewhere and place it at {cache_path}, '
                f'or pass the local file path instead of the URL.') if cache else ''
        raise DownloadError(str(e) + hint) from e.__cause__

    if cache:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        write_atomically(cache_path, lambda f: f.write(data))
        return cache_path if return_filename else open(cache_path, 'rb')
    import io
    return io.BytesIO(data)

