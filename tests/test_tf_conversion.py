"""TensorFlow-era network pickles (StyleGAN2, StyleGAN2-ADA): converted networks against a NumPy reference of the
TensorFlow graphs, legacy.py's command line, gen_images.py on such a pickle, and damaged or unsupported ones."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

import legacy
import tf_pickles
from helpers import run_python
from torch_utils import safe_pickle

RES = 16
LATENT = 8


def _load(states, **kwargs):
    data = tf_pickles.pickle_bytes(tuple(tf_pickles.to_network(state) for state in states))
    return legacy.load_network_pkl(io.BytesIO(data), **kwargs)


def _labels(num, label_size):
    if label_size == 0:
        return np.zeros([num, 0], dtype=np.float32)
    return np.eye(label_size, dtype=np.float32)[np.arange(num) % label_size]


def _close(ours, reference):
    scale = max(np.abs(reference).max(), 1.0)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-5 * scale)


@pytest.mark.parametrize('architecture,label_size', [('skip', 0), ('skip', 3), ('resnet', 0), ('orig', 2)])
def test_converted_networks_match_the_tensorflow_arithmetic(architecture, label_size):
    states = tf_pickles.make_states(seed=3, resolution=RES, label_size=label_size, g_architecture=architecture,
                                    d_architecture='orig' if architecture == 'orig' else 'resnet')
    nets = _load(states)
    rng = np.random.default_rng(0)
    z = rng.standard_normal([3, LATENT]).astype(np.float32)
    c = _labels(3, label_size)
    for key, state in (('G_ema', states[2]), ('G', states[0])):
        G = nets[key]
        tf_vars = tf_pickles.variables(state)
        for psi, cutoff in ((1.0, None), (0.6, 2)):
            ws = tf_pickles.reference_mapping(tf_vars, z, c, G.num_ws, mapping_layers=2, psi=psi, cutoff=cutoff)
            reference = tf_pickles.reference_synthesis(tf_vars, ws, RES, architecture=architecture)
            with torch.no_grad():
                ours = G(torch.from_numpy(z), torch.from_numpy(c), truncation_psi=psi, truncation_cutoff=cutoff,
                         noise_mode='const')
            assert ours.shape == (3, 3, RES, RES)
            _close(ours.numpy(), reference)
    assert not torch.equal(nets['G'].mapping.fc0.weight, nets['G_ema'].mapping.fc0.weight)

    img = rng.standard_normal([4, 3, RES, RES]).astype(np.float32)
    c = _labels(4, label_size)
    reference = tf_pickles.reference_discriminator(tf_pickles.variables(states[1]), img, c, RES,
                                                   architecture='orig' if architecture == 'orig' else 'resnet',
                                                   mbstd_group_size=2)
    with torch.no_grad():
        ours = nets['D'](torch.from_numpy(img), torch.from_numpy(c))
    _close(ours.numpy(), reference)
    assert nets['augment_pipe'] is None and nets['training_set_kwargs'] is None


def test_stylegan2_release_networks_convert():
    """networks_stylegan2.py of the StyleGAN2 release: a 'lod' variable in G, D's minibatch groups of 4 unless
    recorded otherwise."""
    states = tf_pickles.make_states(seed=5, resolution=8, flavour='sg2', mbstd_group_size=None)
    assert 'lod' in dict(states[0]['variables'])
    nets = _load(states)
    tf_vars = tf_pickles.variables(states[2])
    z = np.random.default_rng(1).standard_normal([2, LATENT]).astype(np.float32)
    reference = tf_pickles.reference_synthesis(
        tf_vars, tf_pickles.reference_mapping(tf_vars, z, None, nets['G_ema'].num_ws, mapping_layers=2), 8)
    _close(nets['G_ema'](torch.from_numpy(z), None, noise_mode='const').detach().numpy(), reference)
    img = np.random.default_rng(2).standard_normal([8, 3, 8, 8]).astype(np.float32)
    reference = tf_pickles.reference_discriminator(tf_pickles.variables(states[1]), img, None, 8, mbstd_group_size=4)
    _close(nets['D'](torch.from_numpy(img), None).detach().numpy(), reference)


@pytest.mark.parametrize('protocol', [2, 4])
def test_pickle_protocols(protocol):
    states = tf_pickles.make_states(resolution=8)
    data = tf_pickles.pickle_bytes(tuple(tf_pickles.to_network(state) for state in states), protocol=protocol)
    nets = legacy.load_network_pkl(io.BytesIO(data))
    assert nets['G_ema'].img_resolution == 8


def test_build_source_never_runs(tmp_path):
    """The graph-building source a TensorFlow pickle carries is kept as text, also when pickles are trusted."""
    states = tf_pickles.make_states(resolution=8)
    marker = tmp_path / 'ran'
    for state in states:
        state['build_module_src'] = f'open({str(marker)!r}, "w").close()\n'
    for trust in (False, True):
        assert _load(states, trust_pickle=trust)['G_ema'] is not None
    assert not marker.exists()


def test_force_fp16_keeps_weights():
    nets = _load(tf_pickles.make_states(resolution=8), force_fp16=True)
    G = nets['G_ema']
    assert G.synthesis.num_fp16_res == 4 and G.synthesis.b8.conv1.conv_clamp == 256
    plain = _load(tf_pickles.make_states(resolution=8))['G_ema']
    assert torch.equal(G.synthesis.b8.conv1.weight, plain.synthesis.b8.conv1.weight)

# ----------------------------------------------------------------------------
# Command lines.


@pytest.fixture(scope='module')
def tf_pickle(tmp_path_factory):
    path = tmp_path_factory.mktemp('tf_pickle') / 'stylegan2-tiny-config-f.pkl'
    return tf_pickles.write_pickle(path, tf_pickles.make_states(seed=7, resolution=RES, label_size=0))


@pytest.mark.parametrize('fp16_args,expect_fp16', [([], 0), (['--force-fp16'], 4), (['--force-fp16=True'], 4),
                                                   (['--force-fp16', 'false'], 0)])
def test_cli_converts_into_a_safe_pytorch_pickle(tf_pickle, tmp_path, fp16_args, expect_fp16):
    dest = tmp_path / 'new folder' / 'converted.pkl'
    result = run_python(['legacy.py', f'--source={tf_pickle}', f'--dest={dest}'] + fp16_args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f'Loading "{tf_pickle}"...', f'Saving "{dest}"...', 'Done.']
    with open(dest, 'rb') as f:
        converted = legacy.load_network_pkl(f)  # Safe loading: our own classes, rebuilt without running code.
    with open(tf_pickle, 'rb') as f:
        direct = legacy.load_network_pkl(f)
    assert converted['G_ema'].synthesis.num_fp16_res == expect_fp16
    for key in ('G', 'D', 'G_ema'):
        theirs = dict(direct[key].named_parameters())
        for name, value in converted[key].named_parameters():
            assert torch.equal(value, theirs[name]), (key, name)
    assert [p.name for p in dest.parent.iterdir()] == ['converted.pkl']


def test_gen_images_reads_tf_pickles_directly(tf_pickle, tmp_path):
    converted = tmp_path / 'converted.pkl'
    assert run_python(['legacy.py', f'--source={tf_pickle}', f'--dest={converted}']).returncode == 0
    for name, network in (('tf', tf_pickle), ('pt', converted)):
        result = run_python(['gen_images.py', f'--network={network}', '--seeds=0-1', '--trunc=0.7',
                             f'--outdir={tmp_path / name}'])
        assert result.returncode == 0, result.stderr
    for seed in range(2):
        tf_image = np.asarray(Image.open(tmp_path / 'tf' / f'seed{seed:04d}.png'))
        pt_image = np.asarray(Image.open(tmp_path / 'pt' / f'seed{seed:04d}.png'))
        assert tf_image.shape == (RES, RES, 3) and np.array_equal(tf_image, pt_image)

# ----------------------------------------------------------------------------
# Damaged and unsupported pickles.


def _edit(edit):
    states = tf_pickles.make_states(resolution=8)
    edit(states)
    return states


def _set_kwarg(key, value, index=0):
    return lambda states: states[index]['static_kwargs'].__setitem__(key, value)


def _drop_variable(name, component='synthesis'):
    def edit(states):
        variables = states[2]['components'][component]['variables']
        variables[:] = [(key, value) for key, value in variables if key != name]
    return edit


def _reshape_variable(name):
    def edit(states):
        variables = states[2]['components']['synthesis']['variables']
        variables[:] = [(key, value[..., :-1] if key == name else value) for key, value in variables]
    return edit


def _sg2_conditional(states):
    mapping = states[0]['components']['mapping']
    mapping['variables'].append(('LabelConcat/weight', np.ones([2, LATENT], dtype=np.float32)))


@pytest.mark.parametrize('edit,message', [
    (lambda states: states[0].__setitem__('version', 3), 'format version 3, from before StyleGAN2'),
    (_set_kwarg('fmap_decay', 0.5), 'fmap_decay=0.5'),
    (_set_kwarg('some_new_switch', True), 'some_new_switch=True, which this converter does not know'),
    (_set_kwarg('use_pagan', True, index=1), 'use_pagan=True'),
    (_drop_variable('8x8/Conv1/weight'), "no variable 'synthesis/8x8/Conv1/weight'"),
    (_reshape_variable('8x8/Conv1/weight'), 'shape .* for synthesis.b8.conv1.weight'),
    (_sg2_conditional, 'conditioned the StyleGAN2 way'),
    (lambda states: states[1].__setitem__('build_func_name', 'D_stylegan'), "built by 'D_stylegan'"),
    (lambda states: states[2]['components'].__setitem__('synthesis', [1]), 'is a list, not a network'),
])
def test_unconvertible_networks_get_one_line(edit, message):
    states = _edit(edit)
    with pytest.raises(legacy.NetworkPickleError, match=message) as info:
        _load(states)
    assert '\n' not in str(info.value)


def test_crafted_records_are_refused():
    """A network that contains itself, a variable holding Python objects."""
    network = tf_pickles.to_network(tf_pickles.make_states(resolution=8)[0])
    network._state['components']['mapping']._state['components']['loop'] = network
    with pytest.raises(legacy.NetworkPickleError, match='contains itself'):
        legacy.load_network_pkl(io.BytesIO(tf_pickles.pickle_bytes((network, network, network))))
    states = tf_pickles.make_states(resolution=8)
    states[2]['variables'] = [('dlatent_avg', np.array(['a', None], dtype=object))]
    with pytest.raises(legacy.NetworkPickleError, match='not an array of numbers'):
        _load(states)


def test_state_that_is_not_a_dict_is_refused():
    network = tf_pickles.to_network(tf_pickles.make_states(resolution=8)[0])
    network._state = ['not', 'a', 'state']
    with pytest.raises(legacy.NetworkPickleError, match='instead of its state'):
        legacy.load_network_pkl(io.BytesIO(tf_pickles.pickle_bytes((network, network, network))))


def test_cli_refuses_damaged_pickles_without_writing(tf_pickle, tmp_path):
    truncated = tmp_path / 'truncated.pkl'
    truncated.write_bytes(tf_pickle.read_bytes()[:5000])
    dest = tmp_path / 'out.pkl'
    for source, message in ((truncated, 'not a readable pickle'), (tmp_path / 'missing.pkl', 'no such file')):
        result = run_python(['legacy.py', f'--source={source}', f'--dest={dest}'])
        assert result.returncode == 1
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert 'Traceback' not in result.stderr
    assert list(tmp_path.iterdir()) == [truncated]


def test_record_is_data_only():
    """What the restricted unpickler makes of a TensorFlow network: its state and nothing callable from it."""
    states = tf_pickles.make_states(resolution=8)
    data = safe_pickle.loads(tf_pickles.pickle_bytes(tuple(tf_pickles.to_network(state) for state in states)))
    assert all(isinstance(net, safe_pickle.TFNetworkRecord) for net in data)
    assert data[0].state['build_func_name'] == 'G_main'
    assert isinstance(data[0].state['build_module_src'], str)
    assert [name for name in vars(data[0])] == ['state']
