"""Tests of the StyleGAN3 generator: fixture parity, ops parity, transforms, truncation, pickling."""

import copy
import inspect
import json
import os
import pickle

import numpy as np
import pytest
import scipy.signal
import torch

import torch_utils.ops
from helpers import FIXTURES_DIR
from helpers import run_python
from training import networks_stylegan3 as networks
from helpers import relative_error

FIXTURE = os.path.join(FIXTURES_DIR, 'sg3t-32-uncond')

#----------------------------------------------------------------------------
# Helpers.


def load_fixture():
    with open(FIXTURE + '.json') as f:
        meta = json.load(f)
    arrays = np.load(FIXTURE + '.npz')
    state = {key[len('G.'):]: torch.from_numpy(arrays[key]) for key in arrays.files if key.startswith('G.')}
    io = {key[len('io.'):]: torch.from_numpy(arrays[key]) for key in arrays.files if key.startswith('io.')}
    return meta, state, io


def tiny_generator_kwargs(config, img_resolution, c_dim, **overrides):
    """Few channels, layers and margin pixels, so that a forward pass takes milliseconds."""
    kwargs = dict(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=img_resolution, img_channels=3,
        channel_base=256, channel_max=8, num_layers=6, num_critical=2, margin_size=4, mapping_kwargs=dict(num_layers=2))
    if config == 'R':
        kwargs.update(conv_kernel=1, use_radial_filters=True, channel_base=512, channel_max=16)
    kwargs.update(overrides)
    return kwargs


def randomize_buffers(G, seed):
    """Non-default EMA buffers, so that the tests exercise them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(G.mapping.w_avg.shape, generator=gen))
        for name in G.synthesis.layer_names:
            getattr(G.synthesis, name).magnitude_ema.fill_(float(torch.rand([], generator=gen)) + 0.5)
    return G


def make_generator(seed=0, **kwargs):
    torch.manual_seed(seed)
    return randomize_buffers(networks.Generator(**kwargs).eval().requires_grad_(False), seed)


def random_inputs(G, batch_size, seed):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([batch_size, G.z_dim], generator=gen)
    c = torch.zeros([batch_size, G.c_dim])
    if G.c_dim > 0:
        c[torch.arange(batch_size), torch.randint(G.c_dim, [batch_size], generator=gen)] = 1
    return z, c

#----------------------------------------------------------------------------
# Parity with the official release.

def test_constructor_signatures_match_official():
    with open(os.path.join(FIXTURES_DIR, 'signatures.json')) as f:
        signatures = json.load(f)
    prefix = 'training.networks_stylegan3.'
    names = [key[len(prefix):] for key in signatures if key.startswith(prefix)]
    assert len(names) == 6
    for name in names:
        cls = getattr(networks, name)
        assert cls.__bases__[0].__name__ == name  # persistent_class wraps the class; read the original.
        params = list(inspect.signature(cls.__bases__[0].__init__).parameters.values())[1:]
        got = {p.name: None if p.default is inspect.Parameter.empty else repr(p.default) for p in params}
        assert list(got.items()) == list(signatures[prefix + name].items()), name


def test_state_dict_matches_fixture():
    meta, _state, _io = load_fixture()
    G = networks.Generator(**meta['G_init_kwargs'])
    shapes = {name: list(value.shape) for name, value in G.state_dict().items()}
    assert shapes == meta['G_state_dict']


def test_fixture_outputs():
    meta, state, io = load_fixture()
    G = networks.Generator(**meta['G_init_kwargs']).eval()
    G.load_state_dict(state, strict=True)
    z, c = io['z'], io['c']
    with torch.no_grad():
        outputs = dict(
            ws_psi1=G.mapping(z, c),
            ws_psi07=G.mapping(z, c, truncation_psi=0.7),
            ws_psi05_cutoff2=G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=2),
            img_const=G.synthesis(io['ws_psi1'], noise_mode='const', force_fp32=True),
            img_psi07_const=G(z, c, truncation_psi=0.7, noise_mode='const', force_fp32=True),
            img_none=G.synthesis(io['ws_psi1'], noise_mode='none', force_fp32=True),
        )
    for name, out in outputs.items():
        assert out.shape == io[name].shape, name
        assert relative_error(out, io[name]) < 1e-4, name


def test_designed_filters_match_fixture():
    meta, state, _io = load_fixture()
    G = networks.Generator(**meta['G_init_kwargs'])
    filters = {name: value for name, value in G.state_dict().items() if name.endswith('_filter')}
    assert len(filters) == 2 * (G.synthesis.num_layers)  # ToRGB has no filters.
    for name, value in filters.items():
        assert torch.allclose(value, state[name], rtol=0, atol=1e-7), name


def test_layer_names_of_official_1024_configs():
    # Names of the official FFHQ 1024x1024 StyleGAN3 pickles (config T, then config R).
    t_names = ['L0_36_512', 'L1_36_512', 'L2_52_512', 'L3_52_512', 'L4_84_512', 'L5_148_512', 'L6_148_512',
        'L7_276_323', 'L8_276_203', 'L9_532_128', 'L10_1044_81', 'L11_1044_51', 'L12_1044_32', 'L13_1024_32', 'L14_1024_3']
    r_names = ['L0_36_1024', 'L1_36_1024', 'L2_52_1024', 'L3_52_1024', 'L4_84_1024', 'L5_148_1024', 'L6_148_1024',
        'L7_276_645', 'L8_276_406', 'L9_532_256', 'L10_1044_161', 'L11_1044_102', 'L12_1044_64', 'L13_1024_64', 'L14_1024_3']
    schedule_t = networks.synthesis_schedule(img_resolution=1024, img_channels=3, channel_base=32768, channel_max=512,
        num_layers=14, num_critical=2, first_cutoff=2, first_stopband=2**2.1, last_stopband_rel=2**0.3, margin_size=10)
    schedule_r = dict(schedule_t, channels=networks.synthesis_schedule(img_resolution=1024, img_channels=3,
        channel_base=65536, channel_max=1024, num_layers=14, num_critical=2, first_cutoff=2, first_stopband=2**2.1,
        last_stopband_rel=2**0.3, margin_size=10)['channels'])
    for names, schedule in [(t_names, schedule_t), (r_names, schedule_r)]:
        got = [f'L{idx}_{int(size)}_{int(ch)}' for idx, (size, ch) in enumerate(zip(schedule['sizes'], schedule['channels']))]
        assert got == names

#----------------------------------------------------------------------------
# Building blocks.

def grouped_modulated_conv2d(x, w, s, demodulate, padding, input_gain):
    """The textbook formulation: one modulated weight tensor per sample, grouped convolution."""
    batch_size = x.shape[0]
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    w = w.unsqueeze(0) * s[:, None, :, None, None]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    w = w * input_gain
    y = torch.nn.functional.conv2d(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, *w.shape[2:]),
        padding=padding, groups=batch_size)
    return y.reshape(batch_size, -1, *y.shape[2:])


@pytest.mark.parametrize('kernel', [1, 3])
@pytest.mark.parametrize('demodulate', [True, False])
@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_modulated_conv2d_matches_grouped_formulation(kernel, demodulate, memory_format):
    """Also channels-last, the layout the synthesis network runs in on the CPU (which it keeps)."""
    gen = torch.Generator().manual_seed(kernel + 10 * demodulate)
    x = torch.randn([3, 5, 7, 6], generator=gen, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    w = torch.randn([4, 5, kernel, kernel], generator=gen, dtype=torch.float64, requires_grad=True)
    s = torch.randn([3, 5], generator=gen, dtype=torch.float64, requires_grad=True)
    gain = torch.tensor(0.7, dtype=torch.float64)
    out = networks.modulated_conv2d(x=x, w=w, s=s, demodulate=demodulate, padding=kernel - 1, input_gain=gain)
    ref = grouped_modulated_conv2d(x, w, s, demodulate=demodulate, padding=kernel - 1, input_gain=gain)
    assert out.shape == ref.shape
    assert out.is_contiguous(memory_format=memory_format)
    assert relative_error(out, ref) < 1e-10
    grad_out = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    grads = torch.autograd.grad(out, [x, w, s], grad_out)
    grads_ref = torch.autograd.grad(ref, [x, w, s], grad_out)
    for g, g_ref in zip(grads, grads_ref):
        assert relative_error(g, g_ref) < 1e-10


def test_separable_filter_is_kaiser_firwin():
    taps = networks.design_lowpass_filter(numtaps=12, cutoff=3, width=4, fs=16)
    # Kaiser design by hand: ideal sinc lowpass times a Kaiser window, unit DC gain.
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(12, 4 / 8))
    t = np.arange(12) - 5.5
    ref = np.sinc(2 * 3 / 16 * t) * np.kaiser(12, beta)
    ref /= ref.sum()
    assert taps.dtype == torch.float32 and taps.shape == (12,)
    assert np.allclose(taps.numpy(), ref, atol=1e-7)
    assert networks.design_lowpass_filter(numtaps=1, cutoff=3, width=4, fs=16) is None


def frequency_response(taps, fs, fx, fy):
    """|H(fx, fy)| of a centred filter; a 1-D filter is applied along both axes."""
    n = taps.shape[0]
    if taps.ndim == 1:
        taps = np.outer(taps, taps)
    coords = (np.arange(n) - (n - 1) / 2) / fs
    phase = np.exp(-2j * np.pi * (fx * coords[None, :] + fy * coords[:, None]))
    return float(np.abs((taps * phase).sum()))


def response_on_circle(taps, fs, radius):
    angles = np.linspace(0, np.pi / 2, 7)
    return np.array([frequency_response(taps, fs, radius * np.cos(a), radius * np.sin(a)) for a in angles])


@pytest.mark.parametrize('numtaps', [12, 13])
def test_radial_filter(numtaps):
    cutoff, half_width, fs = 4, 3, 32
    taps = networks.design_lowpass_filter(numtaps=numtaps, cutoff=cutoff, width=half_width * 2, fs=fs, radial=True).numpy()
    separable = networks.design_lowpass_filter(numtaps=numtaps, cutoff=cutoff, width=half_width * 2, fs=fs).numpy()
    assert taps.shape == (numtaps, numtaps) and np.isfinite(taps).all()
    assert abs(taps.sum() - 1) < 1e-6
    assert np.allclose(taps, taps.T, atol=1e-8) and np.allclose(taps, taps[::-1], atol=1e-8)
    assert response_on_circle(taps, fs, 1).min() > 0.95  # Passband.
    assert response_on_circle(taps, fs, 0.5 * cutoff).min() > 0.8
    assert response_on_circle(taps, fs, cutoff + 2 * half_width).max() < 0.01  # Stopband.
    # Much more nearly rotation invariant than the separable filter with the same specification.
    for radius in [3, 4, 5, 6]:
        radial_spread = np.ptp(response_on_circle(taps, fs, radius))
        separable_spread = np.ptp(response_on_circle(separable, fs, radius))
        assert radial_spread < 0.025
        assert radial_spread < 0.5 * separable_spread

#----------------------------------------------------------------------------
# Ops parity: default (fast) ops against the reference ops, in the whole network.

def forward_and_grads(G, z, c, **synthesis_kwargs):
    G = copy.deepcopy(G).requires_grad_(True)
    img = G(z, c, truncation_psi=0.8, **synthesis_kwargs)
    weight = torch.randn(img.shape, generator=torch.Generator().manual_seed(1))
    (img * weight).sum().backward()
    grads = {name: p.grad.clone() for name, p in G.named_parameters() if p.grad is not None}
    return img.detach(), grads


@pytest.mark.parametrize('config,img_resolution,c_dim', [
    ('T', 16, 0), ('T', 32, 4), ('R', 16, 3), ('R', 32, 0),
])
def test_default_ops_match_reference_ops(monkeypatch, config, img_resolution, c_dim):
    G = make_generator(seed=img_resolution + c_dim, **tiny_generator_kwargs(config, img_resolution, c_dim, num_fp16_res=2))
    z, c = random_inputs(G, batch_size=2, seed=3)
    img, grads = forward_and_grads(G, z, c, force_fp32=True)
    monkeypatch.setattr(torch_utils.ops, 'force_impl', 'ref')
    img_ref, grads_ref = forward_and_grads(G, z, c, force_fp32=True)
    assert img.shape == (2, 3, img_resolution, img_resolution)
    assert relative_error(img, img_ref) < 1e-4
    assert grads.keys() == grads_ref.keys() and len(grads) > 0
    for name in grads_ref:
        assert relative_error(grads[name], grads_ref[name]) < 1e-4, name


@pytest.mark.parametrize('config', ['T', 'R'])
def test_synthesis_runs_channels_last_on_cpu_and_returns_contiguous_image(config):
    G = make_generator(seed=5, **tiny_generator_kwargs(config, 16, 0))
    layouts = []
    hooks = [getattr(G.synthesis, name).register_forward_pre_hook(
                 lambda module, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
             for name in G.synthesis.layer_names]
    z, c = random_inputs(G, batch_size=2, seed=6)
    with torch.no_grad():
        img = G(z, c)
    for hook in hooks:
        hook.remove()
    assert layouts == [True] * len(G.synthesis.layer_names)
    assert img.is_contiguous()


@pytest.mark.parametrize('config', ['T', 'R'])
def test_update_emas(config):
    G = make_generator(seed=5, **tiny_generator_kwargs(config, 16, 0))
    z, c = random_inputs(G, batch_size=2, seed=6)
    before = {name: buf.clone() for name, buf in G.named_buffers()}
    G(z, c)
    assert all(torch.equal(before[name], buf) for name, buf in G.named_buffers())
    G(z, c, update_emas=True)
    changed = {name for name, buf in G.named_buffers() if not torch.equal(before[name], buf)}
    expected = {'mapping.w_avg'} | {f'synthesis.{name}.magnitude_ema' for name in G.synthesis.layer_names}
    assert changed == expected

#----------------------------------------------------------------------------
# The user transform of the input, and truncation.

def input_features(G, w, transform):
    with torch.no_grad():
        G.synthesis.input.transform.copy_(torch.as_tensor(transform, dtype=torch.float32))
        return G.synthesis.input(w)


def test_input_transform_moves_fourier_grid_exactly():
    G = make_generator(seed=7, **tiny_generator_kwargs('T', 16, 0))
    w = G.mapping(*random_inputs(G, batch_size=2, seed=8))[:, 0]
    sampling_rate = G.synthesis.input.sampling_rate
    base = input_features(G, w, np.eye(3))

    # The output at p is the untransformed features at transform @ p: a translation by k input
    # pixels shifts the features by k pixels.
    shift = np.eye(3)
    shift[0, 2] = 3 / sampling_rate
    shift[1, 2] = -2 / sampling_rate
    shifted = input_features(G, w, shift)
    assert torch.allclose(shifted[:, :, 2:, :-3], base[:, :, :-2, 3:], atol=1e-5)

    # A quarter turn maps the (centred) pixel grid onto itself.
    quarter_turn = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)
    rotated = input_features(G, w, quarter_turn)
    assert torch.allclose(rotated, base.transpose(2, 3).flip(2), atol=1e-5)
    assert not torch.allclose(rotated, base, atol=1e-2)


def test_input_transform_translates_image():
    # A translation by a whole number of samples at every layer's sampling rate (here 2 output pixels,
    # one sample of the 16-rate layers) commutes with every layer of StyleGAN3-T, so away from the
    # borders the image moves by exactly as much (content moves by +t when the transform maps p to p - t).
    G = make_generator(seed=9, **tiny_generator_kwargs('T', 32, 0, margin_size=10))
    ws = G.mapping(*random_inputs(G, batch_size=2, seed=10))
    res = G.synthesis.img_resolution
    with torch.no_grad():
        base = G.synthesis(ws)
        G.synthesis.input.transform.copy_(torch.tensor([[1, 0, -2 / res], [0, 1, 0], [0, 0, 1]], dtype=torch.float32))
        moved = G.synthesis(ws)
    interior = slice(4, -4)
    assert relative_error(moved[:, :, interior, 6:-4], base[:, :, interior, 4:-6]) < 1e-4
    assert relative_error(moved[:, :, interior, 6:-4], base[:, :, interior, 6:-4]) > 0.1


def test_truncation():
    G = make_generator(seed=11, **tiny_generator_kwargs('T', 16, 5))
    z, c = random_inputs(G, batch_size=3, seed=12)
    w_avg = G.mapping.w_avg
    ws = G.mapping(z, c)
    assert ws.shape == (3, G.num_ws, G.w_dim)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))
    assert not torch.allclose(G.mapping(z, c.roll(1, dims=1)), ws, atol=1e-3)  # The label matters.
    ws_zero = G.mapping(z, c, truncation_psi=0)
    assert torch.allclose(ws_zero, w_avg.expand_as(ws_zero))
    ws_half = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=3)
    assert torch.allclose(ws_half[:, :3], w_avg + 0.5 * (ws[:, :3] - w_avg), atol=1e-6)
    assert torch.equal(ws_half[:, 3:], ws[:, 3:])
    img_avg = G(z, c, truncation_psi=0)
    assert torch.allclose(img_avg, img_avg[:1].expand_as(img_avg), atol=1e-6)

#----------------------------------------------------------------------------
# Pickling.

PICKLE_SCRIPT = r'''
import pickle, sys, torch
with open(sys.argv[1], 'rb') as f:
    data = pickle.load(f)
assert 'training.networks_stylegan3' not in sys.modules  # The embedded source was used.
G = data['G']
with torch.no_grad():
    img = G(data['z'], data['c'], truncation_psi=0.7, noise_mode='const', force_fp32=True)
torch.save(img, sys.argv[2])
'''


def test_pickle_round_trip_in_fresh_interpreter(tmp_path):
    G = make_generator(seed=13, **tiny_generator_kwargs('R', 16, 2))
    z, c = random_inputs(G, batch_size=2, seed=14)
    with torch.no_grad():
        img = G(z, c, truncation_psi=0.7, noise_mode='const', force_fp32=True)
    with open(tmp_path / 'G.pkl', 'wb') as f:
        pickle.dump(dict(G=G, z=z, c=c), f)
    result = run_python(['-c', PICKLE_SCRIPT, str(tmp_path / 'G.pkl'), str(tmp_path / 'img.pt')], cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert torch.equal(torch.load(tmp_path / 'img.pt'), img)

#----------------------------------------------------------------------------
# CUDA: FP16 layers.

@pytest.mark.cuda
def test_fp16_on_cuda_close_to_fp32():
    G = make_generator(seed=15, **tiny_generator_kwargs('T', 32, 0, num_fp16_res=4)).cuda()
    z, c = random_inputs(G, batch_size=2, seed=16)
    z, c = z.cuda(), c.cuda()
    img16 = G(z, c)
    img32 = G(z, c, force_fp32=True)
    assert img16.dtype == torch.float32
    assert relative_error(img16.cpu(), img32.cpu()) < 2e-2
    assert not torch.equal(img16, img32)

#----------------------------------------------------------------------------
