"""The visualizer's renderer, without a window: images, latents, mixing, layers, FFT, transforms, errors."""

import copy
import pickle
import sys

import numpy as np
import pytest
import torch

import gen_images
from tool_networks import fixture_generator, images_to_uint8, save_network_pkl, tiny_generator
from viz import renderer as viz_renderer
from viz.renderer import Renderer, RenderRequest, seed_weights

CPU = torch.device('cpu')


@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp('renderer')
    sg2, _ = fixture_generator('sg2-32-uncond')
    sg3, _ = fixture_generator('sg3t-32-uncond')
    cond = tiny_generator(c_dim=3)
    noisy = copy.deepcopy(sg2)  # The fixture's noise strengths are 0: noise would change nothing.
    for module in noisy.synthesis.modules():
        if hasattr(module, 'noise_strength'):
            module.noise_strength.fill_(0.5)
    with open(root / 'not_a_network.pkl', 'wb') as f:
        pickle.dump({'weights': [1, 2, 3]}, f)
    return dict(root=root, sg2=sg2, sg3=sg3, cond=cond, sg2_pkl=save_network_pkl(sg2, root / 'sg2.pkl'),
                sg3_pkl=save_network_pkl(sg3, root / 'sg3.pkl'), cond_pkl=save_network_pkl(cond, root / 'cond.pkl'),
                noisy_pkl=save_network_pkl(noisy, root / 'noisy.pkl'))


@pytest.fixture
def renderer():
    return Renderer(device=CPU)


def _z(seed, G):
    return torch.from_numpy(gen_images.seed_to_z(seed, G.z_dim))


def _ws(G, seed, psi=1.0, cutoff=None, c=None):
    c = torch.zeros([1, G.c_dim]) if c is None else c
    return G.mapping(_z(seed, G), c, truncation_psi=psi, truncation_cutoff=cutoff)


def _synth(G, ws, **kwargs):
    kwargs.setdefault('noise_mode', 'const')
    with torch.no_grad():
        return images_to_uint8(G.synthesis(ws, force_fp32=True, **kwargs))[0]


def _render_ok(renderer, **kwargs):
    result = renderer.render(RenderRequest(**kwargs))
    assert result.error is None, result.error
    return result


def _set_transform(G, matrix):
    G.synthesis.input.transform.copy_(torch.from_numpy(np.asarray(matrix, dtype=np.float64)))


@pytest.mark.parametrize('net', ['sg2', 'sg3'])
def test_output_image_is_the_generators(nets, renderer, net):
    G = nets[net]
    result = _render_ok(renderer, pkl=nets[f'{net}_pkl'], seed=3, psi=0.7)
    if net == 'sg3':
        _set_transform(G, np.eye(3))  # What gen_images.py sets without --translate/--rotate.
    with torch.no_grad():
        expected = images_to_uint8(G(_z(3, G), torch.zeros([1, 0]), truncation_psi=0.7, noise_mode='const',
                                     force_fp32=True))[0]
    np.testing.assert_array_equal(result.image, expected)
    assert result.network.kind == {'sg2': 'StyleGAN2', 'sg3': 'StyleGAN3'}[net]
    assert result.network.has_input_transform == (net == 'sg3')
    assert result.network.num_ws == G.num_ws and not result.network.is_creps


def test_seed_weights():
    assert seed_weights(3) == [(3, 1.0)]
    assert seed_weights(3.25) == [(3, 0.75), (4, 0.25)]
    assert seed_weights(gen_images.MAX_SEED) == [(gen_images.MAX_SEED, 1.0)]
    with pytest.raises(viz_renderer.RenderError, match='out of range'):
        seed_weights(-0.5)


def test_fractional_seed_blends_w(nets, renderer):
    G, pkl = nets['sg2'], nets['sg2_pkl']
    blended = _render_ok(renderer, pkl=pkl, seed=3.25).image
    np.testing.assert_array_equal(blended, _synth(G, 0.75 * _ws(G, 3) + 0.25 * _ws(G, 4)))
    three = _render_ok(renderer, pkl=pkl, seed=3.0).image
    np.testing.assert_array_equal(three, _synth(G, _ws(G, 3)))
    four = _render_ok(renderer, pkl=pkl, seed=4).image
    assert not np.array_equal(blended, three) and not np.array_equal(blended, four)


def test_style_mixing_takes_the_range_from_the_mix_seed(nets, renderer):
    G, pkl = nets['sg2'], nets['sg2_pkl']
    mixed = _render_ok(renderer, pkl=pkl, seed=3, psi=0.7, mix_seed=9, mix_range=(4, 8)).image
    ws = _ws(G, 3, psi=0.7)
    ws[:, 4:8] = _ws(G, 9, psi=0.7)[:, 4:8]
    np.testing.assert_array_equal(mixed, _synth(G, ws))
    plain = _render_ok(renderer, pkl=pkl, seed=3, psi=0.7).image
    assert not np.array_equal(mixed, plain)
    np.testing.assert_array_equal(_render_ok(renderer, pkl=pkl, seed=3, psi=0.7, mix_seed=9, mix_range=(5, 5)).image,
                                  plain)
    np.testing.assert_array_equal(_render_ok(renderer, pkl=pkl, seed=3, psi=0.7, mix_seed=3, mix_range=(0, 8)).image,
                                  plain)


def test_truncation_cutoff(nets, renderer):
    G, pkl = nets['sg2'], nets['sg2_pkl']
    cut = _render_ok(renderer, pkl=pkl, seed=5, psi=0.2, cutoff=2).image
    np.testing.assert_array_equal(cut, _synth(G, _ws(G, 5, psi=0.2, cutoff=2)))
    assert not np.array_equal(cut, _render_ok(renderer, pkl=pkl, seed=5, psi=0.2).image)


def test_noise_modes_and_repeatable_random_noise(nets, renderer):
    pkl = nets['noisy_pkl']
    rng_state = torch.get_rng_state()
    first = _render_ok(renderer, pkl=pkl, seed=1, noise_mode='random', noise_seed=1).image
    assert torch.equal(torch.get_rng_state(), rng_state)  # The global generator is left alone.
    np.testing.assert_array_equal(first, _render_ok(renderer, pkl=pkl, seed=1, noise_mode='random', noise_seed=1).image)
    assert not np.array_equal(first, _render_ok(renderer, pkl=pkl, seed=1, noise_mode='random', noise_seed=2).image)
    const = _render_ok(renderer, pkl=pkl, seed=1, noise_mode='const').image
    assert not np.array_equal(const, _render_ok(renderer, pkl=pkl, seed=1, noise_mode='none').image)
    assert 'noise mode' in renderer.render(RenderRequest(pkl=pkl, noise_mode='loud')).error


def test_layer_list_in_forward_order(nets, renderer):
    sg2 = _render_ok(renderer, pkl=nets['sg2_pkl'])
    names = [layer.name for layer in sg2.layers]
    assert names[:3] == ['b4.conv1', 'b4.torgb', 'b8.conv0']
    assert 'b8[1]' in names and 'b4[1]' not in names  # b4's image is its ToRGB output, listed once.
    assert dict((layer.name, layer.shape) for layer in sg2.layers)['b16.conv1'] == (64, 16, 16)

    sg3 = _render_ok(renderer, pkl=nets['sg3_pkl'])
    names = [layer.name for layer in sg3.layers]
    assert names == ['input'] + list(nets['sg3'].synthesis.layer_names)


@pytest.mark.parametrize('net, layer', [('sg2', 'b16.conv1'), ('sg3', 'L5_52_64')])
def test_layer_view_channels_and_normalisation(nets, renderer, net, layer):
    G, pkl = nets[net], nets[f'{net}_pkl']
    captured = {}
    module = dict(G.synthesis.named_modules())[layer]
    handle = module.register_forward_hook(lambda _m, _i, out: captured.setdefault('x', out.detach()))
    try:
        if net == 'sg3':
            _set_transform(G, np.eye(3))
        _synth(G, _ws(G, 2))
    finally:
        handle.remove()
    x = captured['x'][0]

    rgb = _render_ok(renderer, pkl=pkl, seed=2, layer=layer, base_channel=4, num_channels=3, normalize=True)
    expected = x[4:7] / x[4:7].abs().amax(dim=(1, 2), keepdim=True)
    np.testing.assert_array_equal(rgb.image, images_to_uint8(expected.unsqueeze(0))[0])
    assert rgb.channels == (4, 3, x.shape[0])

    grey = _render_ok(renderer, pkl=pkl, seed=2, layer=layer, base_channel=10 ** 6, num_channels=1, normalize=False,
                      brightness_db=20)
    assert grey.channels == (x.shape[0] - 1, 1, x.shape[0]) and grey.image.shape == (x.shape[1], x.shape[2], 1)
    np.testing.assert_array_equal(grey.image, images_to_uint8((x[-1:] * 10).unsqueeze(0))[0])

    stopped = _render_ok(renderer, pkl=pkl, seed=2, layer=layer, base_channel=4, stop_at_layer=True)
    np.testing.assert_array_equal(stopped.image, rgb.image)
    assert len(stopped.layers) < len(rgb.layers)  # The layers after the shown one did not run.


def test_fft_magnitude_of_a_sinusoid():
    size, freq = 32, 5
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    wave = torch.cos(2 * np.pi * freq * x / size).to(torch.float32)[None] + 3  # The mean must not matter.
    spectrum = viz_renderer.fft_magnitude(wave, range_db=40, window=False)[0]
    assert spectrum.shape == (size, size) and float(spectrum.min()) >= 0 and float(spectrum.max()) == 1
    peaks = {tuple(p) for p in (spectrum == 1).nonzero().tolist()}
    assert peaks == {(size // 2, size // 2 + freq), (size // 2, size // 2 - freq)}
    assert float(spectrum[size // 2, size // 2]) == 0  # No DC: the mean is removed.
    windowed = viz_renderer.fft_magnitude(wave, range_db=40, window=True)[0]
    assert float(windowed[size // 2, size // 2 + freq]) == 1 and float(windowed[0, 0]) < 0.5


@pytest.mark.parametrize('net', ['sg2', 'sg3'])
def test_fft_view_renders(nets, renderer, net):
    layer = {'sg2': 'b32.conv0', 'sg3': 'L3_36_64'}[net]
    for name in ('', layer):
        result = _render_ok(renderer, pkl=nets[f'{net}_pkl'], seed=1, layer=name, fft=True, fft_range_db=60)
        assert result.image.dtype == np.uint8 and result.image.max() == 255 and result.image.min() < 128


def test_stylegan3_translate_rotate_and_untransform(nets, renderer):
    G, pkl = nets['sg3'], nets['sg3_pkl']
    moved = _render_ok(renderer, pkl=pkl, seed=3, translate=(0.25, -0.1), rotate=30).image
    _set_transform(G, np.linalg.inv(gen_images.make_transform((0.25, -0.1), 30)))
    np.testing.assert_array_equal(moved, _synth(G, _ws(G, 3)))

    # Moving by a quarter of the image (8 pixels): untransforming brings the content back.
    base = _render_ok(renderer, pkl=pkl, seed=3).image.astype(int)
    shifted = _render_ok(renderer, pkl=pkl, seed=3, translate=(0.25, 0)).image.astype(int)
    back = _render_ok(renderer, pkl=pkl, seed=3, translate=(0.25, 0), untransform=True).image.astype(int)
    centre = (slice(10, 22), slice(10, 22))
    moved_error = np.abs(shifted - base)[centre].mean()
    assert moved_error > 1
    assert np.abs(back - base)[centre].mean() < moved_error / 20


@pytest.mark.parametrize('translate, rotate, moved_at, expected_at', [
    ((0.25, 0), 0, (40, 32), (40, 16)),     # A quarter of 64 pixels to the right, then back.
    ((0, 0), 90, (15, 40), (40, 48)),       # make_transform rotates (16.5, 8.5) from the centre to (8.5, -16.5).
])
def test_untransform_image_moves_content_back(translate, rotate, moved_at, expected_at):
    """A dot where make_transform(translate, rotate) takes it (as the StyleGAN3 input transform does) goes back."""
    img = torch.zeros([1, 1, 64, 64])
    img[0, 0, moved_at[0], moved_at[1]] = 1
    back = viz_renderer.untransform_image(img, translate=translate, rotate=rotate)[0, 0]
    assert tuple((back == back.max()).nonzero()[0].tolist()) == expected_at and float(back.max()) > 0.99


def test_translate_on_stylegan2_is_an_error(nets, renderer):
    result = renderer.render(RenderRequest(pkl=nets['sg2_pkl'], translate=(0.1, 0)))
    assert result.image is None and 'StyleGAN3' in result.error and 'Equivariance panel' in result.error


@pytest.mark.parametrize('case', ['empty', 'missing', 'not_a_network', 'unreachable_url', 'class_out_of_range',
                                  'negative_seed', 'scale_stylegan2'])
def test_errors_are_one_line(nets, renderer, case):
    root = nets['root']
    request, expected = {
        'empty': (RenderRequest(pkl=''), 'No network loaded'),
        'missing': (RenderRequest(pkl=str(root / 'missing.pkl')), 'no such file'),
        'not_a_network': (RenderRequest(pkl=str(root / 'not_a_network.pkl')), 'not a network pickle'),
        'unreachable_url': (RenderRequest(pkl='http://127.0.0.1:9/network.pkl'), 'Could not download'),
        'class_out_of_range': (RenderRequest(pkl=nets['cond_pkl'], class_idx=3), 'Class 3 is out of range'),
        'negative_seed': (RenderRequest(pkl=nets['sg2_pkl'], seed=-1), 'out of range'),
        'scale_stylegan2': (RenderRequest(pkl=nets['sg2_pkl'], scale=2), 'CREPS'),
    }[case]
    result = renderer.render(request)
    assert result.image is None and expected in result.error and '\n' not in result.error


def test_conditional_class(nets, renderer):
    C = nets['cond']
    result = _render_ok(renderer, pkl=nets['cond_pkl'], seed=4, class_idx=2)
    np.testing.assert_array_equal(result.image, _synth(C, _ws(C, 4, c=torch.tensor([[0.0, 0.0, 1.0]]))))
    assert result.network.c_dim == 3


def test_missing_layer_falls_back_to_the_output(nets, renderer):
    result = _render_ok(renderer, pkl=nets['sg2_pkl'], seed=1, layer='L3_36_64')
    np.testing.assert_array_equal(result.image, _render_ok(renderer, pkl=nets['sg2_pkl'], seed=1).image)
    assert any('no layer' in note for note in result.notes)


def test_keeps_the_last_networks(nets):
    renderer = Renderer(device=CPU, max_cached_networks=2)
    for key in ('sg2_pkl', 'sg3_pkl', 'sg2_pkl', 'cond_pkl'):
        _render_ok(renderer, pkl=nets[key])
    assert list(renderer._networks) == [nets['sg2_pkl'], nets['cond_pkl']]


def test_works_without_the_creps_module(nets, renderer, monkeypatch):
    monkeypatch.setitem(sys.modules, 'training.networks_creps', None)  # Importing it now fails.
    assert viz_renderer.creps_api() is None
    result = _render_ok(renderer, pkl=nets['sg2_pkl'], seed=1)
    assert not result.network.is_creps


def test_creps_scale(tmp_path, renderer):
    networks_creps = pytest.importorskip('training.networks_creps')
    from creps_networks import tiny_generator as tiny_creps
    G = tiny_creps(img_resolution=16)
    pkl = save_network_pkl(G, tmp_path / 'creps.pkl')
    native = _render_ok(renderer, pkl=pkl, seed=2)
    assert native.network.is_creps and native.network.kind == 'CREPS' and native.image.shape == (16, 16, 3)
    np.testing.assert_array_equal(native.image, _synth(G, _ws(G, 2)))
    double = _render_ok(renderer, pkl=pkl, seed=2, scale=2)
    assert double.image.shape == (32, 32, 3)
    with networks_creps.rendering_scale(G, 2):
        np.testing.assert_array_equal(double.image, _synth(G, _ws(G, 2)))
    # The network is back at its own scale afterwards.
    np.testing.assert_array_equal(_render_ok(renderer, pkl=pkl, seed=2).image, native.image)
    assert 'Scale:' in renderer.render(RenderRequest(pkl=pkl, scale=0.001)).error


def test_creps_layers_rendered_in_row_bands_are_shown_whole(tmp_path, renderer, monkeypatch):
    pytest.importorskip('training.networks_creps')
    from creps_networks import tiny_generator as tiny_creps
    pkl = save_network_pkl(tiny_creps(img_resolution=16), tmp_path / 'creps.pkl')
    whole = _render_ok(renderer, pkl=pkl, seed=2, layer='block0[0]', stop_at_layer=True)
    G, _info = renderer._networks[pkl]
    monkeypatch.setattr(sys.modules[type(G.synthesis).__module__], '_BAND_BYTES', 1)  # One row per band.
    banded = _render_ok(renderer, pkl=pkl, seed=2, layer='block0[0]', stop_at_layer=True)
    assert [layer.shape for layer in banded.layers] == [layer.shape for layer in whole.layers]
    np.testing.assert_array_equal(banded.image, whole.image)
