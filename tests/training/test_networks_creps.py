"""Tests of training/networks_creps.py: parity with the public CREPS release (fixture), with the op-by-op
formulation of tests/creps_reference.py, any-resolution rendering, and pickles of either code base."""

import importlib.util
import inspect
import json
import math
import os
import pickle

import pytest
import torch
import torch.nn.functional as F

import creps_reference
from creps_networks import fixture_generator
from creps_networks import load_fixture
import torch_utils.ops
from helpers import FIXTURES_DIR
from helpers import REPO_ROOT
from helpers import run_python
from training import networks_creps as creps
from helpers import relative_error

# ----------------------------------------------------------------------------
# Helpers.


def tiny_generator_kwargs(**overrides):
    kwargs = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=128, channel_max=16,
                  biline_channels=8, mapping_kwargs=dict(num_layers=2))
    kwargs.update(overrides)
    return kwargs


def make_generator(seed=0, **overrides):
    """A tiny generator whose biases and w_avg are random too, so that every one of them matters."""
    torch.manual_seed(seed)
    G = creps.Generator(**tiny_generator_kwargs(**overrides)).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith('bias'):
                param.add_(torch.randn(param.shape, generator=gen) * 0.2)
        G.mapping.w_avg.copy_(torch.randn(G.mapping.w_avg.shape, generator=gen))
    return G


def make_inputs(G, batch_size=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([batch_size, G.z_dim], generator=gen)
    c = torch.zeros([batch_size, G.c_dim])
    if G.c_dim > 0:
        c[torch.arange(batch_size), torch.randint(G.c_dim, [batch_size], generator=gen)] = 1
    ws = torch.randn([batch_size, G.num_ws, G.w_dim], generator=gen)  # A different w for every layer.
    return z, c, ws


@pytest.fixture(scope='module')
def fixture_network():
    return fixture_generator()


def fixture_outputs(G, io):
    """Every `io` output of the fixture, computed as its `io_calls` say."""
    z, c, ws = io['z'], io['c'], io['ws_psi1']
    with torch.no_grad():
        outputs = dict(
            ws_psi1=G.mapping(z, c),
            ws_psi07=G.mapping(z, c, truncation_psi=0.7),
            img_const=G.synthesis(ws, noise_mode='const', force_fp32=True),
            img_psi07_const=G(z, c, truncation_psi=0.7, noise_mode='const', force_fp32=True),
        )
        for scale in [2, 0.5]:
            with creps.rendering_scale(G, scale):
                outputs[f'img_scale{scale}'] = G.synthesis(ws)
    return outputs

# ----------------------------------------------------------------------------
# Parity with the public release.


def test_constructor_signatures_match_official():
    from torch_utils import persistence
    with open(os.path.join(FIXTURES_DIR, 'signatures.json')) as f:
        signatures = json.load(f)
    prefix = 'training.networks_creps.'
    names = [key[len(prefix):] for key in signatures if key.startswith(prefix)]
    assert len(names) == 8
    for name in names:
        cls = getattr(creps, name)
        if persistence.is_persistent(cls):
            cls = cls.__bases__[0]  # persistent_class wraps the class; read the original.
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        got = {p.name: None if p.default is inspect.Parameter.empty else repr(p.default) for p in params}
        assert list(got.items()) == list(signatures[prefix + name].items()), name


def test_persistent_classes_are_those_of_the_release():
    # SynthesisInput is the one network class the public release does not decorate (see its docstring).
    from torch_utils import persistence
    for name in ['FullyConnectedLayer', 'MappingNetwork', 'SynthesisLayer', 'ToResLayer', 'SynthesisBlock',
                 'SynthesisNetwork', 'Generator']:
        assert persistence.is_persistent(getattr(creps, name)), name
    assert not persistence.is_persistent(creps.SynthesisInput)


def test_state_dict_matches_fixture():
    meta, _state, _io = load_fixture()
    G = creps.Generator(**meta['G_init_kwargs'])
    shapes = {name: list(value.shape) for name, value in G.state_dict().items()}
    assert list(shapes.items()) == list(meta['G_state_dict'].items())  # Names, order and shapes.
    assert G.num_ws == 9


@pytest.mark.parametrize('name', ['ws_psi1', 'ws_psi07', 'img_const', 'img_psi07_const', 'img_scale2', 'img_scale0.5'])
def test_fixture_parity(fixture_network, name):
    G, io = fixture_network
    out = fixture_outputs(G, io)[name]
    assert out.shape == io[name].shape
    assert relative_error(out, io[name]) < 1e-4


def test_fixture_parity_with_reference_ops(fixture_network, monkeypatch):
    monkeypatch.setattr(torch_utils.ops, 'force_impl', 'ref')
    G, io = fixture_network
    for name, out in fixture_outputs(G, io).items():
        assert relative_error(out, io[name]) < 1e-4, name


def test_reference_formulation_reproduces_fixture(fixture_network):
    # The oracle of the tests below is itself checked against the public release.
    G, io = fixture_network
    with torch.no_grad():
        assert relative_error(creps_reference.mapping(G, io['z'], io['c'], truncation_psi=0.7), io['ws_psi07']) < 1e-4
        assert relative_error(creps_reference.synthesis(G, io['ws_psi1']), io['img_const']) < 1e-4
        assert relative_error(creps_reference.synthesis(G, io['ws_psi1'], num_points=64), io['img_scale2']) < 1e-4

# ----------------------------------------------------------------------------
# Parity with the op-by-op formulation, forward and backward.


def forward_and_grads(G, fn, ws):
    G.zero_grad(set_to_none=True)
    ws = ws.detach().requires_grad_(True)
    img = fn(ws)
    weight = torch.randn(img.shape, generator=torch.Generator().manual_seed(5))
    (img * weight).sum().backward()
    grads = {name: param.grad.clone() for name, param in G.named_parameters() if param.grad is not None}
    return img.detach(), ws.grad.clone(), grads


@pytest.mark.parametrize('img_resolution, c_dim, overrides', [
    (4, 0, {}),
    (8, 3, {}),
    (16, 0, dict(architecture='orig')),
    (16, 2, dict(fc_clamp=0.5)),  # Clamping active in the line stage.
    (32, 0, dict(channel_max=32, biline_channels=16)),
])
def test_matches_reference_formulation(img_resolution, c_dim, overrides):
    G = make_generator(seed=img_resolution + c_dim, img_resolution=img_resolution, c_dim=c_dim, **overrides)
    G.requires_grad_(True)
    z, c, ws = make_inputs(G, batch_size=3, seed=img_resolution)
    for psi, cutoff in [(1, None), (0.6, 2)]:
        with torch.no_grad():
            assert relative_error(G.mapping(z, c, truncation_psi=psi, truncation_cutoff=cutoff),
                             creps_reference.mapping(G, z, c, truncation_psi=psi, truncation_cutoff=cutoff)) < 1e-5

    img, ws_grad, grads = forward_and_grads(G, G.synthesis, ws)
    img_ref, ws_grad_ref, grads_ref = forward_and_grads(G, lambda w: creps_reference.synthesis(G, w), ws)
    assert img.shape == (3, 3, img_resolution, img_resolution)
    assert relative_error(img, img_ref) < 1e-4
    assert relative_error(ws_grad, ws_grad_ref) < 1e-4
    assert grads.keys() == grads_ref.keys()
    for name in grads_ref:
        assert relative_error(grads[name], grads_ref[name]) < 1e-4, name


@pytest.mark.parametrize('scale', [0.5, 0.75, 1.5, 3])
def test_rendering_scale_matches_reference_grid(scale):
    G = make_generator(seed=3).requires_grad_(False)
    _z, _c, ws = make_inputs(G, seed=4)
    num_points = int(16 * scale)
    with creps.rendering_scale(G, scale):
        img = G.synthesis(ws)
    assert img.shape == (2, 3, num_points, num_points)
    assert creps.rendering_resolution(G, scale) == num_points
    assert relative_error(img, creps_reference.synthesis(G, ws, num_points=num_points)) < 1e-4


def test_pixel_bands_give_the_same_image(fixture_network, monkeypatch):
    # Without autograd, the pixel stage runs on bands of rows; a band size that does not divide the image
    # changes nothing but the rounding of the matrix products.
    G, io = fixture_network
    default_band_bytes = creps._BAND_BYTES
    ws = io['ws_psi1']
    with torch.no_grad():
        monkeypatch.setattr(creps, '_BAND_BYTES', 10 ** 12)
        whole = G.synthesis(ws)
        monkeypatch.setattr(creps, '_BAND_BYTES', 3 * 32 * 5 * 128 * 4)  # 5 rows of 3 images, 128 channels: 7 bands, the last of 2 rows.
        banded = G.synthesis(ws)
        with creps.rendering_scale(G, 2):
            banded2 = G.synthesis(ws)
    assert relative_error(banded, whole) < 1e-6
    assert relative_error(banded, io['img_const']) < 1e-4 and relative_error(banded2, io['img_scale2']) < 1e-4

    # Images whose pixel stage fits the default band (the fixture's does) run in one piece: forward hooks
    # see whole feature maps, once per forward pass. (viz.renderer.LayerCapture puts bands together.)
    monkeypatch.setattr(creps, '_BAND_BYTES', default_band_bytes)
    shapes = []
    handle = G.synthesis.block0.register_forward_hook(lambda _module, _inputs, output: shapes.append(output[0].shape))
    try:
        with torch.no_grad():
            hooked = G.synthesis(ws)
    finally:
        handle.remove()
    assert shapes == [(3, 128, 32, 32)] and torch.equal(hooked, whole)


def test_parameters_unused_by_the_release_get_no_gradient():
    # The release's forward never reads the first block's ToRes (unless that block is the last) nor the
    # decoder of the second block (the first bi-line product starts the sum); they stay in the state dict.
    for img_resolution, unused_prefixes in [(16, ('synthesis.b4.tores.', 'synthesis.decoder_8.')), (4, ())]:
        G = make_generator(img_resolution=img_resolution).requires_grad_(True)
        _z, _c, ws = make_inputs(G)
        _img, _ws_grad, grads = forward_and_grads(G, G.synthesis, ws)
        unused = {name for name, _param in G.synthesis.named_parameters(prefix='synthesis')} - set(grads) \
            - {name for name, _param in G.mapping.named_parameters(prefix='mapping')}
        assert unused == {name for name, _ in G.named_parameters() if name.startswith(unused_prefixes)}
        assert all(float(grads[name].abs().max()) > 0 for name in grads if name.startswith('synthesis.'))


@pytest.mark.parametrize('demodulate', [True, False])
def test_modulated_fc_matches_per_sample_weights(demodulate):
    gen = torch.Generator().manual_seed(int(demodulate))
    x = torch.randn([3, 5, 4, 6], generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn([7, 5], generator=gen, dtype=torch.float64, requires_grad=True)
    styles = torch.randn([3, 5], generator=gen, dtype=torch.float64, requires_grad=True)
    out = creps.modulated_fc(x, weight, styles, demodulate=demodulate)
    w = weight.unsqueeze(0) * styles.unsqueeze(1)
    if demodulate:
        w = w / (w.square().sum(dim=2, keepdim=True) + 1e-8).sqrt()
    ref = torch.einsum('niab,noi->noab', x, w)
    assert relative_error(out, ref) < 1e-12
    grad_out = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    for g, g_ref in zip(torch.autograd.grad(out, [x, weight, styles], grad_out),
                        torch.autograd.grad(ref, [x, weight, styles], grad_out)):
        assert relative_error(g, g_ref) < 1e-12


def test_biline_product_and_per_pixel_layer():
    gen = torch.Generator().manual_seed(0)
    lines = torch.randn([2, 3, 5, 8], generator=gen, dtype=torch.float64)
    expected = torch.einsum('nchk,ncwk->nchw', lines[..., :4], lines[..., 4:]) / 2
    assert relative_error(creps.biline_product(lines), expected) < 1e-12

    layer = creps.FullyConnectedLayer(6, 4, activation='lrelu', lr_multiplier=0.5, bias_init=0.3).double()
    x = torch.randn([2, 6, 3, 5], generator=gen, dtype=torch.float64)
    rows = layer(x.permute(0, 2, 3, 1).reshape(-1, 6)).reshape(2, 3, 5, 4).permute(0, 3, 1, 2)
    assert relative_error(creps.fully_connected_per_pixel(layer, x), rows) < 1e-12

# ----------------------------------------------------------------------------
# Behaviour.


def test_update_emas_tracks_w_avg_only_when_asked():
    G = make_generator(seed=6).train()
    z, c, _ws = make_inputs(G, batch_size=4)
    before = {name: buf.clone() for name, buf in G.named_buffers()}
    G(z, c)
    assert all(torch.equal(before[name], buf) for name, buf in G.named_buffers())
    G(z, c, update_emas=True)
    changed = {name for name, buf in G.named_buffers() if not torch.equal(before[name], buf)}
    assert changed == {'mapping.w_avg'}
    w = creps_reference.mapping(G, z, c)[:, 0]
    assert torch.allclose(G.mapping.w_avg, w.mean(dim=0).lerp(before['mapping.w_avg'], 0.998), atol=1e-6)


def test_noise_modes_change_nothing_and_float32_on_cpu():
    G = make_generator(seed=7)
    _z, _c, ws = make_inputs(G)
    img = G.synthesis(ws)
    assert img.dtype == torch.float32
    for kwargs in [dict(noise_mode='const'), dict(noise_mode='none'), dict(force_fp32=True)]:
        assert torch.equal(G.synthesis(ws, **kwargs), img)  # block0/block1 use FP16 on CUDA only.
    with pytest.raises(AssertionError):
        G.synthesis(ws, noise_mode='bogus')
    assert G.synthesis(ws[:0]).shape == (0, 3, 16, 16)  # An empty batch, as with any torch module.


def test_channels_last_weights_are_refused():
    with pytest.raises(ValueError, match='channels_last'):
        creps.SynthesisBlock(8, 8, w_dim=4, resolution=8, is_last=True, res_channels=4, use_fp16=True,
                             fp16_channels_last=True)

# ----------------------------------------------------------------------------
# Any-resolution rendering.


def test_rendering_scale_swaps_and_restores_the_grid():
    G = make_generator(seed=8)
    _z, _c, ws = make_inputs(G)
    coords = G.synthesis.b4.input.coords
    img = G.synthesis(ws)
    with creps.rendering_scale(G, 2) as scaled:
        assert scaled is G
        assert G.synthesis.b4.input.coords.shape == (1, 32, 2, 1)
        assert G.synthesis(ws).shape == (2, 3, 32, 32)
        with creps.rendering_scale(G.synthesis, 0.5):  # Relative to the training resolution, not compounded.
            assert G.synthesis(ws).shape == (2, 3, 8, 8)
        assert G.synthesis(ws).shape == (2, 3, 32, 32)
    assert G.synthesis.b4.input.coords is coords
    with pytest.raises(RuntimeError, match='inside'):
        with creps.rendering_scale(G, 3):
            raise RuntimeError('inside')
    assert G.synthesis.b4.input.coords is coords
    with creps.rendering_scale(G, 1):
        assert G.synthesis.b4.input.coords is coords
    assert torch.equal(G.synthesis(ws), img)
    assert list(G.state_dict()) == list(make_generator(seed=8).state_dict())


def test_rendering_scale_rejects_what_it_cannot_render():
    from training import networks_stylegan2
    sg2 = networks_stylegan2.Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=8, img_channels=3,
                                       channel_base=32, channel_max=8, mapping_kwargs=dict(num_layers=1))
    G = make_generator(seed=9)
    assert creps.is_creps(G) and creps.is_creps(G.synthesis) and creps.is_creps(G.synthesis.b4)
    assert not creps.is_creps(sg2) and not creps.is_creps(None) and not creps.is_creps(G.mapping)

    with creps.rendering_scale(sg2, 1):  # Scale 1 is every network's own rendering.
        pass
    assert creps.rendering_resolution(sg2, 1) == 8
    with pytest.raises(ValueError, match='not a CREPS network'):
        with creps.rendering_scale(sg2, 2):
            pass
    with pytest.raises(ValueError, match='smallest scale for this network is 0.0625'):
        with creps.rendering_scale(G, 0.05):
            pass
    for bad in [0, -1, math.inf, math.nan, True, '2', None]:
        with pytest.raises(ValueError, match='scale must be'):
            with creps.rendering_scale(G, bad):
                pass
    assert creps.rendering_resolution(G, 1 / 16) == 1
    with creps.rendering_scale(G, 1 / 16):
        assert G.synthesis(make_inputs(G)[2]).shape == (2, 3, 1, 1)


def test_scale_consistency(fixture_network):
    """The 2x rendering, resampled to the 1x grid, is the 1x rendering up to the interpolation error.

    The network is a function of the two coordinates of a pixel, so the 2x image samples the same
    continuous image as the 1x image, on a grid twice as dense; both grids span [0, 1], so the 1x
    points sit at positions j * (2L - 1) / (L - 1) of the 2x grid, which bilinear resampling with
    align_corners=True reads exactly. What remains is the error of linear interpolation between 2x
    pixels: at most h^2 |f''| t (1 - t) / 2 <= |second difference| / 8 per axis. The bound asserted is
    that Taylor estimate measured on the 2x image itself (0.033 for the fixture network, which gives
    0.028); sampling the 2x image a quarter of a 2x pixel off gives 0.040, so the bound catches a
    misregistered grid, while unrelated images differ by more than 1.
    """
    G, io = fixture_network
    ws = io['ws_psi1']
    with torch.no_grad():
        img = G.synthesis(ws)
        with creps.rendering_scale(G, 2):
            img2 = G.synthesis(ws)
    resampled = F.interpolate(img2, size=img.shape[2:], mode='bilinear', align_corners=True)
    second_x = img2[..., 2:] - 2 * img2[..., 1:-1] + img2[..., :-2]
    second_y = img2[..., 2:, :] - 2 * img2[..., 1:-1, :] + img2[..., :-2, :]
    bound = float(second_x.norm() + second_y.norm()) / 8 / float(img2.norm())
    error = relative_error(resampled, img)
    assert error < bound < 0.1
    assert relative_error(img.roll(1, dims=0), img) > 1

    # A grid of 2L - 1 points contains the L points of the 1x grid exactly (every other point).
    with torch.no_grad(), creps.rendering_scale(G, 63 / 32):
        img63 = G.synthesis(ws)
    assert relative_error(img63[:, :, ::2, ::2], img) < 1e-6

# ----------------------------------------------------------------------------
# Pickles of this project and of the public release.

OFFICIAL_INPUT_LAYOUT = dict(attributes={'channels', 'w_dim', 'resolution', 'rank', 'bandwidth'},
                             parameters=['weight'], buffers=['freqs', 'coords'], modules=['affine'])


def test_synthesis_input_has_the_attribute_layout_of_the_release():
    layer = creps.SynthesisInput(channels=8, w_dim=4, resolution=6, rank=3, bandwidth=2)
    attributes = {key for key in vars(layer) if not key.startswith('_') and key != 'training'}
    assert attributes == OFFICIAL_INPUT_LAYOUT['attributes']
    assert list(layer._parameters) == OFFICIAL_INPUT_LAYOUT['parameters']
    assert list(layer._buffers) == OFFICIAL_INPUT_LAYOUT['buffers']
    assert list(layer._modules) == OFFICIAL_INPUT_LAYOUT['modules']
    assert layer.coords.shape == (1, 6, 2, 1) and layer.freqs.shape == (1, 12)


UNPICKLE_INPUT_SCRIPT = r'''
import pickle, sys, torch
sys.path.insert(0, sys.argv[3])
with open(sys.argv[1], 'rb') as f:
    data = pickle.load(f)
from training import networks_creps
layer = data['layer']
assert type(layer) is networks_creps.SynthesisInput
container = torch.nn.Sequential(layer)
assert networks_creps.is_creps(container)
with torch.no_grad():
    out = layer(data['w'])
    with networks_creps.rendering_scale(container, 2):
        out2 = layer(data['w'])
torch.save(dict(out=out, out2=out2), sys.argv[2])
'''


def test_synthesis_input_unpickles_from_the_release_layout(tmp_path):
    """A SynthesisInput of a public-release pickle is stored by reference with that code's attribute dict.

    The state here is built by hand with exactly the release's attributes (no constructor of ours runs),
    with a foreign FullyConnectedLayer as its affine, and is loaded in a fresh interpreter.
    """
    from training import networks_stylegan2
    gen = torch.Generator().manual_seed(0)
    state = dict(vars(torch.nn.Module()))
    state.update(channels=8, w_dim=4, resolution=6, rank=3, bandwidth=2)
    state['_parameters'] = {'weight': torch.nn.Parameter(torch.randn([1, 8, 1, 6], generator=gen))}
    state['_buffers'] = {'freqs': torch.randn([1, 12], generator=gen) * 2,
                         'coords': torch.linspace(0, 1, 6).reshape(1, -1, 1, 1).repeat(1, 1, 2, 1)}
    state['_modules'] = {'affine': networks_stylegan2.FullyConnectedLayer(4, 48, bias_init=1)}
    layer = creps.SynthesisInput.__new__(creps.SynthesisInput)
    layer.__setstate__(state)
    w = torch.randn([2, 4], generator=gen)
    data = pickle.dumps(dict(layer=layer, w=w))
    assert b'training.networks_creps' in data and b'SynthesisInput' in data
    (tmp_path / 'input.pkl').write_bytes(data)

    result = run_python(['-c', UNPICKLE_INPUT_SCRIPT, str(tmp_path / 'input.pkl'), str(tmp_path / 'out.pt'), REPO_ROOT],
                        cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = torch.load(tmp_path / 'out.pt')
    with torch.no_grad():
        assert relative_error(out['out'], creps_reference._fourier_input(layer, w, 6)) < 1e-5
        assert relative_error(out['out2'], creps_reference._fourier_input(layer, w, 12)) < 1e-5


UNPICKLE_GENERATOR_SCRIPT = r'''
import sys, torch
import legacy
from torch_utils import persistence
from training import networks_creps

# Make the embedded source differ from this checkout's file, as in a pickle of another code base or
# version: the persistent classes then come from a module executed from the pickle.
def as_foreign_source(meta):
    meta.module_src += '\n# A different version of the source.\n'
    return meta
persistence.import_hook(as_foreign_source)

with open(sys.argv[1], 'rb') as f:
    data = legacy.load_network_pkl(f, trust_pickle=True)  # Run the embedded (foreign) source, as the release does.
G = data['G_ema']
assert type(G).__module__.startswith('_imported_module_'), type(G).__module__
assert type(G.synthesis.b4.input) is networks_creps.SynthesisInput  # Stored by reference.
assert networks_creps.is_creps(G)
with torch.no_grad():
    img = G(data['z'], data['c'], truncation_psi=0.7)
    with networks_creps.rendering_scale(G, 1.5):
        img15 = G(data['z'], data['c'], truncation_psi=0.7)

    # Built by the embedded source: its SynthesisInput is that module's class; still recognised.
    rebuilt = type(G)(*G.init_args, **G.init_kwargs).eval()
    rebuilt.load_state_dict(G.state_dict())
    assert type(rebuilt.synthesis.b4.input) is not networks_creps.SynthesisInput
    with networks_creps.rendering_scale(rebuilt, 1.5):
        assert torch.equal(rebuilt(data['z'], data['c'], truncation_psi=0.7), img15)
torch.save(dict(img=img, img15=img15), sys.argv[2])
'''


def test_pickle_round_trip_in_fresh_interpreter(tmp_path):
    G = make_generator(seed=10, c_dim=2)
    z, c, _ws = make_inputs(G)
    with torch.no_grad():
        img = G(z, c, truncation_psi=0.7)
        with creps.rendering_scale(G, 1.5):
            img15 = G(z, c, truncation_psi=0.7)
    with open(tmp_path / 'net.pkl', 'wb') as f:
        pickle.dump(dict(G=G, G_ema=G, D=None, augment_pipe=None, training_set_kwargs=None, z=z, c=c), f)
    result = run_python(['-c', UNPICKLE_GENERATOR_SCRIPT, str(tmp_path / 'net.pkl'), str(tmp_path / 'img.pt')])
    assert result.returncode == 0, result.stderr
    out = torch.load(tmp_path / 'img.pt')
    assert torch.equal(out['img'], img)
    assert out['img15'].shape == (2, 3, 24, 24) and torch.equal(out['img15'], img15)


def test_module_stays_within_the_pickle_surface():
    path = os.path.join(REPO_ROOT, 'tests', 'training', 'test_pickle_surface.py')
    spec = importlib.util.spec_from_file_location('pickle_surface_for_creps', path)
    surface = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(surface)
    module_path = os.path.join(REPO_ROOT, 'training', 'networks_creps.py')
    assert module_path in [str(p) for p in surface._persisted_module_paths()]
    with open(module_path) as f:
        assert surface.surface_violations(f.read()) == []

# ----------------------------------------------------------------------------
# CUDA: FP16 per-pixel blocks.


@pytest.mark.cuda
def test_fp16_on_cuda_close_to_fp32():
    G = make_generator(seed=11, num_fp16_res=2).cuda()
    _z, _c, ws = make_inputs(G)
    ws = ws.cuda()
    img16 = G.synthesis(ws)
    img32 = G.synthesis(ws, force_fp32=True)
    assert img16.dtype == torch.float32
    assert not torch.equal(img16, img32)
    assert relative_error(img16.cpu(), img32.cpu()) < 2e-2
    assert relative_error(img32.cpu(), creps_reference.synthesis(G.cpu(), ws.cpu())) < 1e-4

# ----------------------------------------------------------------------------
