import importlib.util
import os
import pickle
import sys
import textwrap

import pytest
import torch

import dnnlib
from torch_utils import persistence
from helpers import run_python

# A module written the way the official network modules are: it imports misc, persistence and
# the ops, and decorates its classes.
OFFICIAL_STYLE_SRC = textwrap.dedent('''
    import numpy as np
    import torch
    from torch_utils import misc
    from torch_utils import persistence
    from torch_utils.ops import bias_act
    from torch_utils.ops import upfirdn2d
    from torch_utils.ops import conv2d_resample
    from torch_utils.ops import conv2d_gradfix
    from torch_utils.ops import filtered_lrelu
    from torch_utils.ops import fma

    @misc.profiled_function
    def blur(x, f):
        return upfirdn2d.filter2d(x, f)

    @persistence.persistent_class
    class TinyNet(torch.nn.Module):
        def __init__(self, channels, gain=1.0):
            super().__init__()
            self.channels = channels
            self.gain = gain
            self.weight = torch.nn.Parameter(torch.randn([channels, channels, 3, 3]))
            self.bias = torch.nn.Parameter(torch.randn([channels]))
            self.register_buffer('filter', upfirdn2d.setup_filter([1, 3, 3, 1]))

        def forward(self, x):
            misc.assert_shape(x, [None, self.channels, None, None])
            x = conv2d_resample.conv2d_resample(x, self.weight, f=self.filter, up=2, padding=1)
            x = bias_act.bias_act(x, self.bias, act='lrelu', gain=self.gain)
            x = filtered_lrelu.filtered_lrelu(x, fu=self.filter, fd=self.filter, up=2, down=2, padding=3)
            return fma.fma(blur(x, self.filter), 2.0, 1.0)
''')


def _meta_pickle(module_src, class_name, state, version=6):
    meta = dict(type='class', version=version, module_src=module_src, class_name=class_name, state=state)

    class HandMade:
        def __reduce__(self):
            return (persistence._reconstruct_persistent_obj, (meta,))
    return pickle.dumps(HandMade())


def _import_src(tmp_path, module_name, src):
    """Imports `src` as a real module (the decorator needs a module with source on disk)."""
    path = tmp_path / f'{module_name}.py'
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def test_hand_built_official_style_pickle_loads_and_runs(tmp_path):
    torch.manual_seed(0)
    reference = _import_src(tmp_path, 'official_style_net', OFFICIAL_STYLE_SRC).TinyNet(4, gain=0.5)
    data = _meta_pickle(OFFICIAL_STYLE_SRC, 'TinyNet', dict(reference.__dict__))
    net = pickle.loads(data)
    assert persistence.is_persistent(net)
    assert type(net).__name__ == 'TinyNet'
    x = torch.randn([2, 4, 8, 8])
    assert torch.equal(net(x), reference(x))
    assert net(x).shape == (2, 4, 16, 16)

    # The same source text executes once per process: a second load reuses the module.
    net2 = pickle.loads(data)
    assert type(net2).__module__ == type(net).__module__


def test_round_trip_in_fresh_interpreter(tmp_path):
    mod_dir = tmp_path / 'mods'
    mod_dir.mkdir()
    (mod_dir / 'my_tiny_net.py').write_text(OFFICIAL_STYLE_SRC)
    pkl = tmp_path / 'net.pkl'
    out1 = tmp_path / 'out1.pt'
    out2 = tmp_path / 'out2.pt'
    writer = textwrap.dedent(f'''
        import sys, pickle, torch
        sys.path.insert(0, {str(mod_dir)!r})
        import my_tiny_net
        torch.manual_seed(1)
        net = my_tiny_net.TinyNet(3, gain=2.0)
        assert net.init_args == (3,) and net.init_kwargs == dict(gain=2.0)
        torch.manual_seed(2)
        x = torch.randn([1, 3, 6, 6])
        torch.save((x, net(x)), {str(out1)!r})
        with open({str(pkl)!r}, 'wb') as f:
            pickle.dump(dict(G=net), f)
    ''')
    r = run_python(['-c', writer])
    assert r.returncode == 0, r.stderr
    os.remove(mod_dir / 'my_tiny_net.py')  # The pickle must not need the original file.

    reader = textwrap.dedent(f'''
        import pickle, torch
        from torch_utils import persistence
        with open({str(pkl)!r}, 'rb') as f:
            net = pickle.load(f)['G']
        assert persistence.is_persistent(net)
        assert net.init_kwargs.gain == 2.0
        x, _ = torch.load({str(out1)!r})
        torch.save(net(x), {str(out2)!r})
    ''')
    r = run_python(['-c', reader])
    assert r.returncode == 0, r.stderr
    _, y1 = torch.load(out1)
    assert torch.equal(y1, torch.load(out2))


def test_import_hook_can_rewrite_source(tmp_path):
    src = textwrap.dedent('''
        import torch
        from torch_utils import persistence
        @persistence.persistent_class
        class Scale(torch.nn.Module):
            def __init__(self):
                super().__init__()
            def forward(self, x):
                return x * 2
    ''')
    scale = _import_src(tmp_path, 'scale_net', src).Scale()
    data = _meta_pickle(src, 'Scale', dict(scale.__dict__))

    def hook(meta):
        assert isinstance(meta, dnnlib.EasyDict) and meta.class_name == 'Scale'
        meta.module_src = meta.module_src.replace('x * 2', 'x * 3')
        return meta
    persistence.import_hook(hook)
    try:
        net = pickle.loads(data)
    finally:
        persistence._import_hooks.remove(hook)
    assert net(torch.ones([1])).item() == 3


def test_unknown_version_is_a_clear_error():
    data = _meta_pickle('x = 1', 'Nothing', {}, version=7)
    with pytest.raises(persistence.PersistenceError, match='version 7'):
        pickle.loads(data)


def test_missing_class_is_a_clear_error():
    data = _meta_pickle('x = 1', 'Nothing', {})
    with pytest.raises(persistence.PersistenceError, match='Nothing'):
        pickle.loads(data)


@persistence.persistent_class
class Holder(torch.nn.Module):
    def __init__(self, value, **kwargs):
        super().__init__()
        self.value = value


def test_decorated_class_records_arguments_and_rejects_unpickleable():
    assert persistence.is_persistent(Holder)
    kwargs = dict(items=[1, 2])
    h = Holder(5, **kwargs)
    kwargs['items'].append(3)  # The recorded copy must not change.
    assert h.init_kwargs == dict(items=[1, 2])
    assert h.init_args == (5,)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        Holder(lambda: None)
    assert persistence.persistent_class(Holder) is Holder
