"""Tests of training/networks_stylegan2.py: parity with the official networks (fixture), parity between
op implementations, pickling, truncation, style mixing, noise modes and conditioning."""

import json
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import torch_utils.ops
from torch_utils import persistence
from training import networks_stylegan2 as sg2
from helpers import relative_error

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE_DIR = REPO_ROOT / 'tests' / 'fixtures'


def tiny_generator_kwargs(**overrides):
    kwargs = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=128, channel_max=16,
                  mapping_kwargs=dict(num_layers=2))
    kwargs.update(overrides)
    return kwargs


def tiny_discriminator_kwargs(**overrides):
    kwargs = dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=128, channel_max=16)
    kwargs.update(overrides)
    return kwargs


def randomize_non_default_state(module, seed=0):
    """Gives the parameters and buffers that start at constants (biases, noise strengths, w_avg) random
    values, so that every one of them affects the outputs under test."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.named_parameters():
            if name.endswith('bias') or name.endswith('noise_strength'):
                tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.2)
        for name, tensor in module.named_buffers():
            if name.endswith('w_avg'):
                tensor.copy_(torch.randn(tensor.shape, generator=gen))
    return module


def make_generator(seed=0, **overrides):
    torch.manual_seed(seed)
    return randomize_non_default_state(sg2.Generator(**tiny_generator_kwargs(**overrides)).eval(), seed)


def make_discriminator(seed=0, **overrides):
    torch.manual_seed(seed)
    return randomize_non_default_state(sg2.Discriminator(**tiny_discriminator_kwargs(**overrides)).eval(), seed)


def make_inputs(G, batch_size=4, seed=1):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([batch_size, G.z_dim], generator=gen)
    c = torch.zeros([batch_size, G.c_dim])
    if G.c_dim > 0:
        c[torch.arange(batch_size), torch.randint(G.c_dim, [batch_size], generator=gen)] = 1
    return z, c

# ----------------------------------------------------------------------------
# Parity with the official networks.


@pytest.fixture(scope='module')
def fixture_sg2():
    meta = json.loads((FIXTURE_DIR / 'sg2-32-uncond.json').read_text())
    arrays = np.load(FIXTURE_DIR / 'sg2-32-uncond.npz')
    arrays = {key: torch.from_numpy(arrays[key]) for key in arrays.files}
    G = sg2.Generator(**meta['G_init_kwargs']).eval()
    D = sg2.Discriminator(**meta['D_init_kwargs']).eval()
    G.load_state_dict({k[2:]: v for k, v in arrays.items() if k.startswith('G.')}, strict=True)
    D.load_state_dict({k[2:]: v for k, v in arrays.items() if k.startswith('D.')}, strict=True)
    io = {k[3:]: v for k, v in arrays.items() if k.startswith('io.')}
    return meta, G, D, io


def test_state_dict_layout_matches_official(fixture_sg2):
    meta, G, D, _io = fixture_sg2
    for net, ref in [(G, meta['G_state_dict']), (D, meta['D_state_dict'])]:
        shapes = {name: list(tensor.shape) for name, tensor in net.state_dict().items()}
        assert shapes == ref


def test_fixture_parity(fixture_sg2):
    meta, G, D, io = fixture_sg2
    z, c = io['z'], io['c']
    with torch.no_grad():
        outputs = {
            'ws_psi1': G.mapping(z, c),
            'ws_psi07': G.mapping(z, c, truncation_psi=0.7),
            'ws_psi05_cutoff2': G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=2),
            'img_const': G.synthesis(io['ws_psi1'], noise_mode='const', force_fp32=True),
            'img_psi07_const': G(z, c, truncation_psi=0.7, noise_mode='const', force_fp32=True),
            'img_none': G.synthesis(io['ws_psi1'], noise_mode='none', force_fp32=True),
            'd_logits_reals': D(io['d_input'], c),
            'd_logits_fakes': D(io['img_const'], c),
        }
    assert set(outputs) == set(meta['io_calls'])
    for name, out in outputs.items():
        assert list(out.shape) == meta['io'][name]
        assert relative_error(out, io[name]) < 1e-4, name
    # Guard against a vacuous comparison. (The fixture's noise strengths are all zero, so img_none equals
    # img_const there; test_noise_modes covers the noise inputs.)
    assert relative_error(io['ws_psi07'], io['ws_psi1']) > 1e-3
    assert relative_error(io['img_psi07_const'], io['img_const']) > 1e-3
    assert relative_error(io['d_logits_fakes'], io['d_logits_reals']) > 1e-3


def test_fixture_parity_with_reference_ops(fixture_sg2, monkeypatch):
    _meta, G, D, io = fixture_sg2
    monkeypatch.setattr(torch_utils.ops, 'force_impl', 'ref')
    with torch.no_grad():
        img = G.synthesis(io['ws_psi1'], noise_mode='const', force_fp32=True)
        logits = D(io['d_input'], io['c'])
    assert relative_error(img, io['img_const']) < 1e-4
    assert relative_error(logits, io['d_logits_reals']) < 1e-4


def test_constructor_defaults_match_official_signatures():
    import inspect
    signatures = json.loads((FIXTURE_DIR / 'signatures.json').read_text())
    prefix = 'training.networks_stylegan2.'
    checked = 0
    for key, params in signatures.items():
        if not key.startswith(prefix):
            continue
        cls = getattr(sg2, key[len(prefix):])
        assert persistence.is_persistent(cls), key
        ours = inspect.signature(cls.__bases__[0].__init__).parameters  # Skip the persistence wrapper.
        for name, default in params.items():
            assert name in ours, f'{key}: missing argument {name}'
            expected = inspect.Parameter.empty if default is None else eval(default)  # pylint: disable=eval-used
            assert ours[name].default == expected, f'{key}.{name}'
        checked += 1
    assert checked == 12

# ----------------------------------------------------------------------------
# Parity between op implementations ('ref' oracle vs the default path).


def run_generator_and_discriminator(G, D, z, c):
    """Image, logits and the gradients of a G+D step, including an R1-style double backward."""
    G.zero_grad(set_to_none=True)
    D.zero_grad(set_to_none=True)
    img = G(z, c, noise_mode='const', force_fp32=True)
    img_for_d = img.detach().requires_grad_(True)
    logits = D(img_for_d, c)
    (r1_grads,) = torch.autograd.grad(logits.sum(), img_for_d, create_graph=True)
    (logits.square().sum() + r1_grads.square().sum()).backward()
    D(img, c).sum().backward()
    outputs = {'img': img.detach(), 'logits': logits.detach(), 'r1_grads': r1_grads.detach()}
    for prefix, net in [('G.', G), ('D.', D)]:
        for name, param in net.named_parameters():
            if param.grad is not None:
                outputs[prefix + name] = param.grad.clone()
    return outputs


@pytest.mark.parametrize('c_dim, resolution, architecture, num_fp16_res', [
    (0, 16, 'skip', 0),
    (0, 8, 'orig', 1),
    (4, 16, 'resnet', 2),
    (4, 32, 'skip', 4),
])
def test_reference_ops_parity(monkeypatch, c_dim, resolution, architecture, num_fp16_res):
    G = make_generator(c_dim=c_dim, img_resolution=resolution, architecture=architecture, num_fp16_res=num_fp16_res)
    D = make_discriminator(c_dim=c_dim, img_resolution=resolution, architecture=architecture,
                           num_fp16_res=num_fp16_res)
    z, c = make_inputs(G)
    default = run_generator_and_discriminator(G, D, z, c)
    monkeypatch.setattr(torch_utils.ops, 'force_impl', 'ref')
    reference = run_generator_and_discriminator(G, D, z, c)
    assert set(default) == set(reference)
    assert len(default) > 10
    for name in reference:
        assert relative_error(default[name], reference[name]) < 1e-4, name


def test_ops_allow_inplace_updates_of_official_network_code():
    """The official network code embedded in existing pickles adds in place to op outputs: img.add_()
    after upsample2d and y.add_() after a linear bias_act (resnet skips); training through it needs
    the ops to allow that under autograd."""
    f = sg2.upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn([2, 3, 4, 4], requires_grad=True)
    img = sg2.upfirdn2d.upsample2d(x, f)
    img.add_(torch.ones_like(img))
    img.square().sum().backward()
    expected_grad = torch.autograd.grad(sg2.upfirdn2d.upsample2d(x, f, impl='ref').add(1).square().sum(), x)[0]
    assert torch.allclose(x.grad, expected_grad, atol=1e-5)

    x = torch.randn([2, 3, 4, 4], requires_grad=True)
    y = sg2.bias_act.bias_act(x, torch.ones(3), gain=0.5)
    y.add_(x * 2)
    y.square().sum().backward()
    assert torch.allclose(x.grad, 2 * (x * 2.5 + 0.5) * 2.5, atol=1e-5)


@pytest.mark.parametrize('kernel_size, up, demodulate, with_noise', [
    (3, 1, True, True), (3, 2, True, False), (3, 1, False, False), (1, 1, False, False), (1, 1, True, True)])
def test_modulated_conv2d_layouts_agree(kernel_size, up, demodulate, with_noise):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([3, 5, 6, 6], generator=gen)
    weight = torch.randn([7, 5, kernel_size, kernel_size], generator=gen)
    styles = torch.randn([3, 5], generator=gen)
    noise = torch.randn([3, 1, 6 * up, 6 * up], generator=gen) if with_noise else None
    f = sg2.upfirdn2d.setup_filter([1, 3, 3, 1])
    kwargs = dict(x=x, weight=weight, styles=styles, noise=noise, up=up, padding=kernel_size // 2, resample_filter=f,
                  demodulate=demodulate, flip_weight=(up == 1))
    grouped = sg2.modulated_conv2d(**kwargs, fused_modconv=True)
    shared = sg2.modulated_conv2d(**kwargs, fused_modconv=False)
    assert grouped.shape == (3, 7, 6 * up, 6 * up)
    assert relative_error(shared, grouped) < 1e-5
    # Independent check: the convolution of each sample with its own modulated (and demodulated) weight.
    for n in range(3):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        expected = sg2.conv2d_resample.conv2d_resample(x[n:n + 1], w, f=f, up=up, padding=kernel_size // 2,
                                                       flip_weight=(up == 1))
        if noise is not None:
            expected = expected + noise[n:n + 1]
        assert relative_error(shared[n:n + 1], expected) < 1e-5
    if demodulate:  # Demodulation makes the output invariant to the scale of each sample's styles.
        scaled = sg2.modulated_conv2d(**dict(kwargs, styles=styles * 3, noise=None), fused_modconv=False)
        unscaled = sg2.modulated_conv2d(**dict(kwargs, noise=None), fused_modconv=False)
        assert relative_error(scaled, unscaled) < 1e-5


def test_num_fp16_res_is_float32_on_cpu():
    G32 = make_generator(num_fp16_res=0)
    G16 = sg2.Generator(**tiny_generator_kwargs(num_fp16_res=4)).eval()
    G16.load_state_dict(G32.state_dict())
    z, c = make_inputs(G32)
    with torch.no_grad():
        img32 = G32(z, c, noise_mode='const')
        img16 = G16(z, c, noise_mode='const')
        img16_forced = G16(z, c, noise_mode='const', force_fp32=True, fused_modconv=True)
    assert img16.dtype == torch.float32
    assert torch.equal(img16, img32)
    assert relative_error(img16_forced, img32) < 1e-5

# ----------------------------------------------------------------------------
# Pickling.

PICKLE_LOADER = r'''
import pickle, sys
import numpy as np, torch
pkl_path, inputs_path, out_path, mode = sys.argv[1:]
import legacy
with open(pkl_path, 'rb') as f:
    data = legacy.load_network_pkl(f, trust_pickle=(mode == 'trusted'))
G, D = data['G_ema'], data['D']
# Safe loading rebuilds the networks from this project's classes; a trusted pickle runs its own source.
from_project = type(G).__module__ == 'training.networks_stylegan2'
assert from_project == (mode == 'safe'), type(G).__module__
inputs = np.load(inputs_path)
z, c = torch.from_numpy(inputs['z']), torch.from_numpy(inputs['c'])
with torch.no_grad():
    img = G(z, c, truncation_psi=0.8, noise_mode='const')
    logits = D(img, c)
np.savez(out_path, img=img.numpy(), logits=logits.numpy(), num_ws=G.num_ws, w_avg=G.mapping.w_avg.numpy())
'''


def test_pickle_round_trip_in_fresh_interpreter(tmp_path):
    G = make_generator(c_dim=3)
    D = make_discriminator(c_dim=3)
    z, c = make_inputs(G)
    with torch.no_grad():
        img = G(z, c, truncation_psi=0.8, noise_mode='const')
        logits = D(img, c)
    with open(tmp_path / 'network.pkl', 'wb') as f:
        pickle.dump(dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=None), f)
    np.savez(tmp_path / 'inputs.npz', z=z.numpy(), c=c.numpy())

    env = {k: v for k, v in os.environ.items() if k != 'TORCH_UTILS_OPS_IMPL'}
    env['PYTHONPATH'] = str(REPO_ROOT)
    for mode in ('safe', 'trusted'):
        result = subprocess.run([sys.executable, '-c', PICKLE_LOADER, str(tmp_path / 'network.pkl'),
                                 str(tmp_path / 'inputs.npz'), str(tmp_path / 'out.npz'), mode],
                                cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        out = np.load(tmp_path / 'out.npz')
        assert int(out['num_ws']) == G.num_ws
        np.testing.assert_array_equal(out['w_avg'], G.mapping.w_avg.numpy())
        np.testing.assert_allclose(out['img'], img.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(out['logits'], logits.numpy(), rtol=0, atol=1e-6)


def test_pickle_records_constructor_arguments():
    G = make_generator()
    assert G.init_kwargs.img_resolution == 16
    G2 = pickle.loads(pickle.dumps(G))
    for (name, a), (_, b) in zip(G.state_dict().items(), G2.state_dict().items()):
        assert torch.equal(a, b), name
    assert G2.init_kwargs == G.init_kwargs

# ----------------------------------------------------------------------------
# Mapping network: truncation and w_avg.


def test_truncation():
    G = make_generator()
    z, c = make_inputs(G)
    w_avg = G.mapping.w_avg
    with torch.no_grad():
        ws = G.mapping(z, c)
        assert ws.shape == (4, G.num_ws, G.w_dim)
        assert torch.equal(ws, ws[:, :1].expand_as(ws))  # The same w is broadcast to every layer.
        assert torch.equal(G.mapping(z, c, truncation_psi=1, truncation_cutoff=2), ws)
        assert torch.allclose(G.mapping(z, c, truncation_psi=0), w_avg.expand_as(ws))
        ws_07 = G.mapping(z, c, truncation_psi=0.7)
        assert torch.allclose(ws_07, w_avg + 0.7 * (ws - w_avg), atol=1e-6)
        ws_cut = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=2)
        assert torch.allclose(ws_cut[:, :2], w_avg + 0.5 * (ws[:, :2] - w_avg), atol=1e-6)
        assert torch.equal(ws_cut[:, 2:], ws[:, 2:])
        assert torch.equal(G(z, c, truncation_psi=0.5, truncation_cutoff=2, noise_mode='const'),
                           G.synthesis(ws_cut, noise_mode='const'))


def test_update_emas_tracks_w_avg():
    G = make_generator()
    z, c = make_inputs(G)
    beta = G.mapping.w_avg_beta
    w_avg_before = G.mapping.w_avg.clone()
    with torch.no_grad():
        ws = G.mapping(z, c)
        assert torch.equal(G.mapping.w_avg, w_avg_before)  # No update unless asked for.
        G(z, c, update_emas=True)
    expected = ws[:, 0].mean(dim=0) * (1 - beta) + w_avg_before * beta
    assert torch.allclose(G.mapping.w_avg, expected, atol=1e-6)


def test_mapping_normalizes_z_and_embeds_label():
    G = make_generator(c_dim=3)
    z, c = make_inputs(G)
    with torch.no_grad():
        assert torch.allclose(G.mapping(z * 5, c), G.mapping(z, c), atol=1e-5)  # 2nd-moment normalisation.
        assert not torch.allclose(G.mapping(z, c), G.mapping(z, c.roll(1, dims=1)))
    assert G.mapping.embed.weight.shape == (G.w_dim, 3)
    assert G.mapping.fc0.weight.shape == (G.w_dim, G.z_dim + G.w_dim)


def test_label_only_mapping():
    mapping = sg2.MappingNetwork(z_dim=0, c_dim=5, w_dim=6, num_ws=None, w_avg_beta=None, num_layers=3)
    c = torch.eye(5)[:4]
    out = mapping(None, c)
    assert out.shape == (4, 6)
    assert not hasattr(mapping, 'w_avg')
    with pytest.raises(AssertionError):
        mapping(None, c, truncation_psi=0.5)

# ----------------------------------------------------------------------------
# Synthesis: style mixing through ws, noise modes.


def test_style_mixing_through_ws():
    G = make_generator()
    z, c = make_inputs(G, batch_size=2)
    with torch.no_grad():
        ws_a = G.mapping(z[:1], c[:1])
        ws_b = G.mapping(z[1:], c[1:])
        img_a = G.synthesis(ws_a, noise_mode='const')
        img_b = G.synthesis(ws_b, noise_mode='const')
        # Each of the num_ws latents drives a different layer.
        for idx in range(G.num_ws):
            mixed = ws_a.clone()
            mixed[:, idx] = ws_b[:, idx]
            assert relative_error(G.synthesis(mixed, noise_mode='const'), img_a) > 1e-4, idx
        # Coarse styles from a, fine styles from b.
        cutoff = 2
        mixed = torch.cat([ws_a[:, :cutoff], ws_b[:, cutoff:]], dim=1)
        img_mixed = G.synthesis(mixed, noise_mode='const')
        assert relative_error(img_mixed, img_a) > 1e-3 and relative_error(img_mixed, img_b) > 1e-3
        assert torch.equal(G.synthesis(torch.cat([ws_a[:, :0], ws_b], dim=1), noise_mode='const'), img_b)
    with pytest.raises(AssertionError):
        G.synthesis(ws_a[:, 1:])


def test_noise_modes():
    G = make_generator()
    z, c = make_inputs(G)
    with torch.no_grad():
        const_a = G(z, c, noise_mode='const')
        const_b = G(z, c, noise_mode='const')
        random_a = G(z, c, noise_mode='random')
        random_b = G(z, c, noise_mode='random')
        none = G(z, c, noise_mode='none')
        assert torch.equal(const_a, const_b)
        assert relative_error(random_a, random_b) > 1e-4
        assert relative_error(none, const_a) > 1e-4
        for layer in [m for m in G.modules() if isinstance(m, sg2.SynthesisLayer)]:
            layer.noise_strength.zero_()
        assert torch.equal(G(z, c, noise_mode='const'), none)
        assert torch.equal(G(z, c, noise_mode='random'), none)
    with pytest.raises(AssertionError):
        G(z, c, noise_mode='bogus')


def test_use_noise_false_has_no_noise_state():
    G = sg2.Generator(**tiny_generator_kwargs(use_noise=False))
    assert not any('noise' in name for name in G.state_dict())
    z, c = make_inputs(G)
    with torch.no_grad():
        assert torch.equal(G(z, c, noise_mode='random'), G(z, c, noise_mode='none'))


@pytest.mark.parametrize('architecture', ['orig', 'skip', 'resnet'])
def test_architectures_state_dict(architecture):
    G = sg2.Generator(**tiny_generator_kwargs(architecture=architecture))
    D = sg2.Discriminator(**tiny_discriminator_kwargs(architecture=architecture))
    g_names = set(G.state_dict())
    d_names = set(D.state_dict())
    assert ('synthesis.b8.torgb.weight' in g_names) == (architecture == 'skip')
    assert 'synthesis.b16.torgb.weight' in g_names
    assert ('synthesis.b8.skip.weight' in g_names) == (architecture == 'resnet')
    assert ('b8.fromrgb.weight' in d_names) == (architecture == 'skip')
    assert ('b4.fromrgb.weight' in d_names) == (architecture == 'skip')
    assert ('b16.skip.weight' in d_names) == (architecture == 'resnet')
    z, c = make_inputs(G)
    with torch.no_grad():
        img = G(z, c)
        assert img.shape == (4, 3, 16, 16) and torch.isfinite(img).all()
        assert D(img, c).shape == (4, 1)


def test_conv_clamp_limits_activations():
    G = make_generator(conv_clamp=0.05)
    z, c = make_inputs(G)
    with torch.no_grad():
        img = G(z, c, noise_mode='const')
    # The last ToRGB is clamped to +-0.05 and the upsampled skip image (a weighted average) to the sum of the others.
    assert img.abs().max() <= 0.05 * 3 + 1e-6
    assert img.abs().max() > 0.01

# ----------------------------------------------------------------------------
# Initialisation and equalised learning rate.


def test_initialization():
    torch.manual_seed(0)
    G = sg2.Generator(**tiny_generator_kwargs(w_dim=64, z_dim=64, channel_base=512, channel_max=64))
    sd = G.state_dict()
    assert abs(sd['mapping.fc0.weight'].std().item() - 100) < 5  # randn / lr_multiplier (0.01).
    assert torch.equal(sd['mapping.fc0.bias'], torch.zeros(64))
    assert torch.equal(sd['mapping.w_avg'], torch.zeros(64))
    assert torch.equal(sd['synthesis.b8.conv0.affine.bias'], torch.ones(64))  # Styles start at 1.
    assert abs(sd['synthesis.b8.conv0.affine.weight'].std().item() - 1) < 0.1
    assert abs(sd['synthesis.b8.conv0.weight'].std().item() - 1) < 0.1
    assert abs(sd['synthesis.b4.const'].std().item() - 1) < 0.1
    assert abs(sd['synthesis.b16.conv1.noise_const'].std().item() - 1) < 0.25
    assert torch.equal(sd['synthesis.b8.conv0.noise_strength'], torch.zeros([]))
    assert torch.equal(sd['synthesis.b8.conv0.bias'], torch.zeros(64))
    f = torch.tensor([1., 3, 3, 1])
    assert torch.allclose(sd['synthesis.b8.conv0.resample_filter'], f.outer(f) / 64)


@pytest.mark.parametrize('lr_multiplier', [1, 0.01])
def test_equalized_learning_rate(lr_multiplier):
    torch.manual_seed(0)
    layer = sg2.FullyConnectedLayer(256, 256, lr_multiplier=lr_multiplier, bias_init=0.5)
    x = torch.randn([64, 256])
    y = layer(x)
    with torch.no_grad():
        assert torch.allclose(layer(torch.zeros([1, 256])), torch.full([1, 256], 0.5 * lr_multiplier))
    assert abs((y - y.mean(dim=0)).std().item() - 1) < 0.1  # Unit gain whatever the multiplier.
    y.sum().backward()
    # The gradient of the stored weight scales with lr_multiplier / sqrt(in_features).
    expected = torch.ones(256, 1) * x.sum(dim=0, keepdim=True) * (lr_multiplier / np.sqrt(256))
    assert torch.allclose(layer.weight.grad, expected, rtol=1e-4, atol=1e-6)
    assert torch.allclose(layer.bias.grad, torch.full([256], 64.0 * lr_multiplier))

# ----------------------------------------------------------------------------
# Discriminator.


def test_conditional_discriminator_projection():
    D = make_discriminator(c_dim=3)
    assert D.b4.cmap_dim == 16  # Default: channels at 4x4.
    img = torch.randn([4, 3, 16, 16])
    c = torch.eye(3)[[0, 1, 2, 0]]
    captured = {}
    D.b4.out.register_forward_hook(lambda _m, _i, out: captured.update(out=out))
    D.mapping.register_forward_hook(lambda _m, _i, out: captured.update(cmap=out))
    with torch.no_grad():
        logits = D(img, c)
    assert captured['out'].shape == (4, 16) and captured['cmap'].shape == (4, 16)
    expected = (captured['out'] * captured['cmap']).sum(dim=1, keepdim=True) / np.sqrt(16)
    assert logits.shape == (4, 1)
    assert torch.allclose(logits, expected, atol=1e-6)
    with torch.no_grad():
        assert not torch.allclose(D(img, c.roll(1, dims=1)), logits)


def test_discriminator_cmap_dim_and_freeze():
    D = sg2.Discriminator(**tiny_discriminator_kwargs(c_dim=2, cmap_dim=5, block_kwargs=dict(freeze_layers=2)))
    assert D.b4.out.weight.shape == (5, 16)
    assert D.mapping.fc7.weight.shape == (5, 5)
    frozen = {'b16.fromrgb.weight', 'b16.fromrgb.bias', 'b16.conv0.weight', 'b16.conv0.bias'}
    params = {name for name, _ in D.named_parameters()}
    buffers = {name for name, _ in D.named_buffers()}
    assert frozen <= buffers and not (frozen & params)
    assert 'b16.conv1.weight' in params
    reference = sg2.Discriminator(**tiny_discriminator_kwargs(c_dim=2, cmap_dim=5))
    assert set(D.state_dict()) == set(reference.state_dict())


def test_minibatch_std_groups():
    x = torch.randn([6, 4, 2, 3])
    layer = sg2.MinibatchStdLayer(group_size=2, num_channels=2)
    out = layer(x)
    assert out.shape == (6, 6, 2, 3)
    assert torch.equal(out[:, :4], x)
    # Sample n belongs to group n % (N // G); each of the F channel groups gets its own statistic.
    for n in range(6):
        group = x[[n % 3, n % 3 + 3]]
        for f in range(2):
            std = group[:, 2 * f:2 * f + 2].std(dim=0, unbiased=False)
            expected = (std.square() + 1e-8).sqrt().mean()
            assert torch.allclose(out[n, 4 + f], expected.expand(2, 3), atol=1e-6)
    whole_batch = sg2.MinibatchStdLayer(group_size=None)(x)
    assert torch.allclose(whole_batch[:, 4], whole_batch[0, 4].expand(6, 2, 3))

# ----------------------------------------------------------------------------
# CUDA: float16 blocks and the grouped convolution.


@pytest.mark.cuda
def test_float16_blocks_on_cuda():
    G = make_generator(num_fp16_res=2, img_resolution=32).cuda()
    D = make_discriminator(num_fp16_res=2, img_resolution=32).cuda()
    z, c = [t.cuda() for t in make_inputs(G)]
    with torch.no_grad():
        img16 = G(z, c, noise_mode='const')
        img32 = G(z, c, noise_mode='const', force_fp32=True)
        img_unfused = G(z, c, noise_mode='const', force_fp32=True, fused_modconv=False)
        logits16 = D(img32, c)
        logits32 = D(img32, c, force_fp32=True)
    assert img16.dtype == torch.float32
    assert relative_error(img16.cpu(), img32.cpu()) < 2e-2
    assert relative_error(img_unfused.cpu(), img32.cpu()) < 1e-4
    assert relative_error(logits16.cpu(), logits32.cpu()) < 2e-2
    G_cpu = make_generator(num_fp16_res=2, img_resolution=32)
    with torch.no_grad():
        assert relative_error(img32.cpu(), G_cpu(z.cpu(), c.cpu(), noise_mode='const')) < 1e-4
