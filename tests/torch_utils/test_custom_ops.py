import os
import textwrap

import pytest

from helpers import run_python

# Plain pybind11 rather than torch/extension.h: the build machinery is the same, and each build takes seconds
# instead of most of a minute.
GOOD_SRC = textwrap.dedent('''
    #include <pybind11/pybind11.h>
    #include "scale.h"
    double scaled(double x) { return x * SCALE; }
    PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("scaled", &scaled); }
''')
BROKEN_SRC = GOOD_SRC.replace('return x * SCALE;', 'return x * ;')

LOAD_SCRIPT = textwrap.dedent('''
    import sys, warnings, torch
    from torch_utils import custom_ops
    warnings.simplefilter('always')
    plugin = custom_ops.get_plugin('tiny_test_plugin', sources=[sys.argv[2]], headers=['scale.h'], source_dir=sys.argv[1],
                                   extra_cflags=['-O2'])
    if plugin is None:
        y = torch.ones(3) * 3  # The caller's fallback path.
        print('FALLBACK', y.sum().item())
    else:
        print('PLUGIN', plugin.scaled(3.0))
    assert custom_ops.get_plugin('tiny_test_plugin', sources=[sys.argv[2]], headers=['scale.h'],
                                 source_dir=sys.argv[1], extra_cflags=['-O2']) is plugin  # Cached per process.
''')


@pytest.fixture
def plugin_env(tmp_path):
    src_dir = tmp_path / 'src'
    src_dir.mkdir()
    (src_dir / 'good.cpp').write_text(GOOD_SRC)
    (src_dir / 'broken.cpp').write_text(BROKEN_SRC)
    (src_dir / 'scale.h').write_text('#define SCALE 3\n')
    ext_dir = tmp_path / 'extensions'
    return src_dir, ext_dir, dict(TORCH_EXTENSIONS_DIR=str(ext_dir))


def _built_libraries(ext_dir):
    return sorted(p for p in ext_dir.rglob('*.so'))


def test_builds_loads_and_reuses_without_rebuilding(plugin_env):
    src_dir, ext_dir, env = plugin_env
    first = run_python(['-c', LOAD_SCRIPT, str(src_dir), 'good.cpp'], env=env)
    assert first.returncode == 0, first.stderr
    assert 'PLUGIN 9.0' in first.stdout
    assert 'Building plugin "tiny_test_plugin"' in first.stderr
    libs = _built_libraries(ext_dir)
    assert len(libs) == 1
    mtime = os.stat(libs[0]).st_mtime_ns

    second = run_python(['-c', LOAD_SCRIPT, str(src_dir), 'good.cpp'], env=env)
    assert second.returncode == 0, second.stderr
    assert 'PLUGIN 9.0' in second.stdout
    assert 'Building plugin' not in second.stderr
    assert _built_libraries(ext_dir) == libs and os.stat(libs[0]).st_mtime_ns == mtime

    # Editing a header changes the hash: a new build, with the new behaviour.
    (src_dir / 'scale.h').write_text('#define SCALE 4\n')
    third = run_python(['-c', LOAD_SCRIPT, str(src_dir), 'good.cpp'], env=env)
    assert third.returncode == 0, third.stderr
    assert 'PLUGIN 12.0' in third.stdout
    assert len(_built_libraries(ext_dir)) == 2
    assert not any('.tmp-' in p.name for p in ext_dir.rglob('*'))  # No half-built folders left.


def test_broken_source_warns_once_and_falls_back(plugin_env):
    src_dir, ext_dir, env = plugin_env
    result = run_python(['-c', LOAD_SCRIPT, str(src_dir), 'broken.cpp'], env=env)
    assert result.returncode == 0, result.stderr
    assert 'FALLBACK 9.0' in result.stdout
    assert result.stderr.count('PluginBuildWarning') == 1
    assert 'tiny_test_plugin' in result.stderr and 'falling back' in result.stderr
    assert 'Traceback' not in result.stderr
    assert _built_libraries(ext_dir) == []
