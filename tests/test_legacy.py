import io
import pickle
import textwrap

import pytest
import torch

import legacy
from helpers import run_python

NET_SRC = textwrap.dedent('''
    import torch
    from torch_utils import persistence

    @persistence.persistent_class
    class Net(torch.nn.Module):
        def __init__(self, channels, num_fp16_res=0, conv_clamp=None):
            super().__init__()
            self.num_fp16_res = num_fp16_res
            self.conv_clamp = conv_clamp
            self.weight = torch.nn.Parameter(torch.randn([channels]))

        def forward(self, x):
            return x * self.weight
''')


def _write_network_pickle(tmp_path, extra=None):
    (tmp_path / 'legacy_test_net.py').write_text(NET_SRC)
    script = textwrap.dedent(f'''
        import sys, pickle, dnnlib
        sys.path.insert(0, {str(tmp_path)!r})
        import legacy_test_net
        G = legacy_test_net.Net(3)
        data = dict(G=G, D=legacy_test_net.Net(3), G_ema=G, augment_pipe=None,
                    training_set_kwargs=dnnlib.EasyDict(path='x.zip'))
        {extra or ''}
        with open({str(tmp_path / 'net.pkl')!r}, 'wb') as f:
            pickle.dump(data, f)
    ''')
    r = run_python(['-c', script])
    assert r.returncode == 0, r.stderr
    (tmp_path / 'legacy_test_net.py').unlink()
    return tmp_path / 'net.pkl'


def test_custom_network_classes_need_trust(tmp_path):
    path = _write_network_pickle(tmp_path)
    with open(path, 'rb') as f:
        with pytest.raises(legacy.NetworkPickleError, match='G is a Net, which is not a class of this project.*--trust-pickle'):
            legacy.load_network_pkl(f)


def test_load_network_pkl_round_trip(tmp_path):
    path = _write_network_pickle(tmp_path)
    with open(path, 'rb') as f:
        data = legacy.load_network_pkl(f, trust_pickle=True)
    assert set(data) >= {'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}
    assert data['training_set_kwargs'].path == 'x.zip'
    x = torch.ones([3])
    assert torch.equal(data['G_ema'](x), data['G'].weight.detach())


def test_missing_keys_become_none(tmp_path):
    path = _write_network_pickle(tmp_path, extra="del data['D'], data['augment_pipe'], data['training_set_kwargs']")
    with open(path, 'rb') as f:
        data = legacy.load_network_pkl(f, trust_pickle=True)
    assert data['D'] is None and data['augment_pipe'] is None and data['training_set_kwargs'] is None


def test_force_fp16_rebuilds_with_same_weights(tmp_path):
    path = _write_network_pickle(tmp_path)
    with open(path, 'rb') as f:
        data = legacy.load_network_pkl(f, force_fp16=True, trust_pickle=True)
    G = data['G_ema']
    assert G.num_fp16_res == 4 and G.conv_clamp == 256
    with open(path, 'rb') as f:
        plain = legacy.load_network_pkl(f, trust_pickle=True)
    assert torch.equal(G.weight, plain['G_ema'].weight)


@pytest.mark.parametrize('payload', [b'not a pickle at all', pickle.dumps([1, 2, 3]), pickle.dumps(dict(G=5)), b''])
def test_not_a_network_pickle_is_a_clear_error(payload):
    f = io.BytesIO(payload)
    with pytest.raises(legacy.NetworkPickleError):
        legacy.load_network_pkl(f)


def test_force_fp16_rebuilds_creps_with_fc_clamp(tmp_path):
    from training import networks_creps
    torch.manual_seed(0)
    G = networks_creps.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=128,
                                 channel_max=16, biline_channels=8, mapping_kwargs=dict(num_layers=2),
                                 fc_clamp=None).eval()
    path = tmp_path / 'creps.pkl'
    with open(path, 'wb') as f:
        pickle.dump(dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=None), f)
    with open(path, 'rb') as f:
        data = legacy.load_network_pkl(f, force_fp16=True)
    rebuilt = data['G_ema']
    assert rebuilt.init_kwargs.fc_clamp == 256 and rebuilt.init_kwargs.num_fp16_res == 4
    assert 'conv_clamp' not in rebuilt.init_kwargs
    z = torch.randn([2, G.z_dim])
    c = torch.zeros([2, 0])
    # The CPU runs in float32, and a clamp of 256 does not touch images of this small network.
    torch.testing.assert_close(rebuilt(z, c, noise_mode='const'), G(z, c, noise_mode='const'))
