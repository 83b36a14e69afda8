import http.server
import os
import pickle
import threading

import pytest

import dnnlib
from dnnlib import util


def test_easydict_is_one_class():
    assert dnnlib.EasyDict is util.EasyDict
    d = dnnlib.EasyDict(a=1)
    d.b = 2
    assert d == {'a': 1, 'b': 2} and d.a == 1
    del d.a
    assert 'a' not in d
    with pytest.raises(AttributeError):
        _ = d.missing
    with pytest.raises(AttributeError):
        del d.missing
    restored = pickle.loads(pickle.dumps(d))
    assert type(restored) is util.EasyDict and restored == d
    assert b'dnnlib.util' in pickle.dumps(d)  # Pickles name the class by this path.


def test_format_time():
    assert util.format_time(5) == '5s'
    assert util.format_time(65) == '1m 05s'
    assert util.format_time(3 * 3600 + 2 * 60 + 1) == '3h 02m 01s'
    assert util.format_time(2 * 86400 + 3600) == '2d 01h 00m'


def test_construct_and_call_by_name():
    od = util.construct_class_by_name(class_name='collections.OrderedDict', a=1)
    assert type(od).__name__ == 'OrderedDict' and od['a'] == 1
    assert util.call_func_by_name(4, func_name='math.sqrt') == 2
    assert util.get_obj_by_name('os.path.join') is os.path.join
    with pytest.raises(AttributeError, match='no attribute'):
        util.get_obj_by_name('os.path.no_such_function')
    with pytest.raises(ImportError):
        util.get_obj_by_name('no_such_module_xyz.thing')


def test_make_cache_dir_path(monkeypatch, tmp_path):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path))
    assert util.make_cache_dir_path('a', 'b') == os.path.join(str(tmp_path), 'a', 'b')
    monkeypatch.delenv('DNNLIB_CACHE_DIR')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert util.make_cache_dir_path('x') == os.path.join(str(tmp_path / 'home'), '.cache', 'dnnlib', 'x')


def test_logger_tees_to_file(tmp_path, capsys):
    log = tmp_path / 'log.txt'
    with util.Logger(file_name=str(log), file_mode='a'):
        print('hello log')
    print('after')
    assert log.read_text() == 'hello log\n'
    assert 'hello log' in capsys.readouterr().out

# ----------------------------------------------------------------------------
# open_url


def test_open_url_local_path_and_file_url(tmp_path):
    path = tmp_path / 'data.bin'
    path.write_bytes(b'abc')
    with util.open_url(str(path)) as f:
        assert f.read() == b'abc'
    with util.open_url(path.as_uri()) as f:
        assert f.read() == b'abc'
    assert util.open_url(path.as_uri(), return_filename=True) == str(path)
    with pytest.raises(FileNotFoundError):
        util.open_url(str(tmp_path / 'missing.bin'))


class _Server:
    """A local HTTP server over a folder, counting the requests it serves."""

    def __init__(self, root):
        self.requests = 0
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                server.requests += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_open_url_http_download_then_cache_then_offline(tmp_path):
    served = tmp_path / 'served'
    served.mkdir()
    (served / 'weights.pkl').write_bytes(b'network bytes')
    cache_dir = tmp_path / 'cache'
    server = _Server(served)
    url = f'{server.url}/weights.pkl'
    try:
        with util.open_url(url, cache_dir=str(cache_dir), verbose=False) as f:
            assert f.read() == b'network bytes'
        assert server.requests == 1
        # No temporary files are left beside the cached copy.
        assert [p.name for p in cache_dir.iterdir()] == [os.path.basename(util.url_cache_path(url, str(cache_dir)))]
        # Uncached read goes to the server again.
        with util.open_url(url, cache=False, verbose=False) as f:
            assert f.read() == b'network bytes'
        assert server.requests == 2
    finally:
        server.stop()

    # Server gone: the cached copy is still served.
    with util.open_url(url, cache_dir=str(cache_dir), verbose=False) as f:
        assert f.read() == b'network bytes'
    assert util.open_url(url, cache_dir=str(cache_dir), return_filename=True) == util.url_cache_path(url, str(cache_dir))

    # Offline and not cached: a clear error naming the URL and where to put the file.
    missing = url.replace('weights.pkl', 'other.pkl')
    with pytest.raises(util.DownloadError) as excinfo:
        util.open_url(missing, cache_dir=str(cache_dir), num_attempts=2, verbose=False)
    message = str(excinfo.value)
    assert missing in message
    assert util.url_cache_path(missing, str(cache_dir)) in message


def test_open_url_http_404_is_not_cached(tmp_path):
    served = tmp_path / 'served'
    served.mkdir()
    server = _Server(served)
    try:
        with pytest.raises(util.DownloadError, match='404'):
            util.open_url(f'{server.url}/nothing.pkl', cache_dir=str(tmp_path / 'cache'), num_attempts=3, verbose=False)
        assert server.requests == 1  # Client errors are not retried.
    finally:
        server.stop()
    assert not (tmp_path / 'cache').exists() or not any((tmp_path / 'cache').iterdir())


def test_open_url_default_cache_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'envcache'))
    served = tmp_path / 'served'
    served.mkdir()
    (served / 'f.txt').write_bytes(b'x')
    server = _Server(served)
    try:
        path = util.open_url(f'{server.url}/f.txt', return_filename=True, verbose=False)
    finally:
        server.stop()
    assert path.startswith(str(tmp_path / 'envcache' / 'downloads'))


def test_is_url():
    assert util.is_url('https://example.com/a.pkl')
    assert not util.is_url('/tmp/a.pkl')
    assert not util.is_url('file:///tmp/a.pkl')
    assert util.is_url('file:///tmp/a.pkl', allow_file_urls=True)
