"""Tests of the ADA augmentation pipeline (training/augment.py)."""

import inspect
import json
import os
import pickle

import numpy as np
import pytest
import torch

from helpers import FIXTURES_DIR, run_python
from training import augment
from training.augment import AugmentPipe

OPS = ['xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac', 'brightness', 'contrast',
       'lumaflip', 'hue', 'saturation', 'imgfilter', 'noise', 'cutout']


def make_pipe(p=1.0, **kwargs):
    pipe = AugmentPipe(**kwargs)
    pipe.p.fill_(p)
    return pipe


def random_images(batch_size=4, channels=3, height=8, width=8, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn([batch_size, channels, height, width], generator=generator, dtype=dtype)


def ramp_images(height, width, slope_x, slope_y, dtype=torch.float64):
    """One-channel image whose value is slope_x * x + slope_y * y in centred pixel coordinates."""
    y = torch.arange(height, dtype=dtype) - (height - 1) / 2
    x = torch.arange(width, dtype=dtype) - (width - 1) / 2
    return (slope_x * x[None, :] + slope_y * y[:, None])[None, None]


def normal_at(percentile, std):
    return std * np.sqrt(2) * float(torch.erfinv(torch.tensor(2 * percentile - 1, dtype=torch.float64)))

# ----------------------------------------------------------------------------
# Interface.


def test_constructor_matches_official_signature():
    with open(os.path.join(FIXTURES_DIR, 'signatures.json')) as f:
        expected = json.load(f)['training.augment.AugmentPipe']
    params = inspect.signature(AugmentPipe.__bases__[0].__init__).parameters  # Skip the persistence wrapper.
    actual = {name: repr(param.default) for name, param in params.items() if name != 'self'}
    assert list(actual) == list(expected)
    for name, default in expected.items():
        assert actual[name] == default, name


def test_p_is_a_zero_buffer():
    pipe = AugmentPipe(**augment.PRESETS['bgc'])
    assert 'p' in dict(pipe.named_buffers())
    assert pipe.p.shape == torch.Size([]) and float(pipe.p) == 0
    pipe.p.copy_(torch.as_tensor(0.3))
    assert float(pipe.p) == pytest.approx(0.3)


def test_presets():
    presets = augment.PRESETS
    assert set(presets) == {'blit', 'geom', 'color', 'filter', 'noise', 'cutout', 'bg', 'bgc', 'bgcf', 'bgcfn', 'bgcfnc'}
    assert presets['blit'] == dict(xflip=1, rotate90=1, xint=1)
    assert presets['bgcfnc'] == dict(**presets['bgcfn'], cutout=1)
    assert set(presets['bgcfnc']) == set(OPS)
    for kwargs in presets.values():
        AugmentPipe(**kwargs)


def test_rejects_bad_arguments():
    with pytest.raises(AssertionError):
        make_pipe(xflip=1)(random_images(), debug_percentile=1.5)
    with pytest.raises(AssertionError):
        AugmentPipe(imgfilter=1, imgfilter_bands=[1, 1, 1])
    with pytest.raises(ValueError):
        make_pipe(hue=1)(random_images(channels=2))

# ----------------------------------------------------------------------------
# Every operation.


@pytest.mark.parametrize('preset', sorted(augment.PRESETS))
def test_p_zero_is_exact_identity(preset):
    images = random_images(batch_size=3, height=8, width=6)
    torch.manual_seed(1)
    assert torch.equal(make_pipe(p=0, **augment.PRESETS[preset])(images), images)


@pytest.mark.parametrize('op', OPS)
def test_each_op_changes_images(op):
    images = random_images(batch_size=8, height=8, width=8)
    torch.manual_seed(2)
    out = make_pipe(**{op: 1})(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.isfinite(out).all()
    assert not torch.allclose(out, images, atol=1e-3)


@pytest.mark.parametrize('op', OPS)
@pytest.mark.parametrize('percentile', [0, 0.3, 1])
def test_debug_percentile_is_deterministic(op, percentile):
    images = random_images(batch_size=2, height=8, width=8)
    pipe = make_pipe(p=0, **{op: 1})  # Debug mode applies every enabled operation whatever p is.
    torch.manual_seed(3)
    first = pipe(images, debug_percentile=percentile)
    torch.manual_seed(4)
    second = pipe(images, debug_percentile=percentile)
    assert torch.isfinite(first).all()
    if op == 'noise':  # The noise pixels stay random; only their strength is fixed.
        assert torch.allclose((first - images).std(), (second - images).std(), rtol=0.5)
    else:
        assert torch.equal(first, second)


def test_seed_determinism():
    images = random_images(batch_size=4, height=8, width=8)
    pipe = make_pipe(p=0.8, **augment.PRESETS['bgcfnc'])
    torch.manual_seed(5)
    first = pipe(images)
    torch.manual_seed(5)
    second = pipe(images)
    torch.manual_seed(6)
    third = pipe(images)
    assert torch.equal(first, second)
    assert not torch.allclose(first, third)


@pytest.mark.parametrize('op, expected_fraction', [('xflip', 0.5 * 0.6), ('brightness', 0.6), ('cutout', 0.6)])
def test_probability_is_strength_times_p(op, expected_fraction):
    images = random_images(batch_size=2000, channels=3, height=2, width=2)
    torch.manual_seed(7)
    out = make_pipe(p=0.6, **{op: 1})(images)
    changed = (out != images).flatten(1).any(dim=1).float().mean().item()
    assert changed == pytest.approx(expected_fraction, abs=0.04)


def test_rotation_probability_counts_either_rotation():
    images = random_images(batch_size=2000, channels=1, height=4, width=4)
    torch.manual_seed(8)
    out = make_pipe(p=0.5, rotate=1)(images)
    changed = (out - images).abs().flatten(1).amax(dim=1) > 1e-4
    assert changed.float().mean().item() == pytest.approx(0.5, abs=0.04)

# ----------------------------------------------------------------------------
# Geometric operations.


@pytest.mark.parametrize('height, width', [(8, 8), (6, 10)])
def test_xflip_is_flip(height, width):
    images = random_images(height=height, width=width)
    pipe = make_pipe(xflip=1)
    assert torch.equal(pipe(images, debug_percentile=0.75), images.flip(3))
    assert torch.equal(pipe(images, debug_percentile=0.25), images)


@pytest.mark.parametrize('percentile, quarter_turns', [(0.1, 0), (0.3, 1), (0.6, 2), (0.9, 3), (1.0, 3)])
def test_rotate90_is_rot90(percentile, quarter_turns):
    images = random_images(height=8, width=8)
    out = make_pipe(rotate90=1)(images, debug_percentile=percentile)
    assert torch.equal(out, torch.rot90(images, quarter_turns, dims=(2, 3)))


def test_rotate90_of_non_square_images_is_resampled():
    # With one odd and one even side, a quarter turn about the centre lands between pixels.
    images = ramp_images(16, 21, 0.5, 0.25).repeat(2, 1, 1, 1)
    G = augment.rotate2d_quarter_turns(torch.tensor([-1.0]))
    assert not augment.is_pixel_blit(G, 21, 16).any()
    out = make_pipe(rotate90=1)(images, debug_percentile=0.3)  # 90 degrees counter-clockwise.
    # A ramp turned by 90 degrees: input x = -output y, input y = output x (interior only: the
    # border reads reflected pixels).
    expected = ramp_images(16, 21, 0.25, -0.5)
    assert torch.allclose(out[:, :, 4:-4, 8:-8], expected[:, :, 4:-4, 8:-8].expand(2, -1, -1, -1), atol=1e-4)


@pytest.mark.parametrize('height, width', [(5, 7), (2, 2), (1, 4), (3, 1)])
@pytest.mark.parametrize('pads', [(0, 0, 0, 0), (3, 1, 0, 4), (20, 2, 13, 0), (0, 17, 1, 30)])
def test_reflect_pad_matches_numpy(height, width, pads):
    images = random_images(batch_size=1, channels=2, height=height, width=width)
    left, right, top, bottom = pads
    expected = np.pad(images.numpy(), [(0, 0), (0, 0), (top, bottom), (left, right)], mode='reflect')
    assert np.array_equal(augment.reflect_pad(images, left, right, top, bottom).numpy(), expected)


def reflect_shift(images, shift_x, shift_y):
    """Moves the content by whole pixels, filling in by mirroring about the edge pixels."""
    pad = max(abs(shift_x), abs(shift_y))
    padded = np.pad(images.numpy(), [(0, 0), (0, 0), (pad, pad), (pad, pad)], mode='reflect')
    height, width = images.shape[2:]
    return torch.from_numpy(padded[:, :, pad - shift_y:pad - shift_y + height, pad - shift_x:pad - shift_x + width])


@pytest.mark.parametrize('percentile, shift', [(1.0, 2), (0.0, -2), (0.5, 0), (0.8, 1)])
def test_xint_is_reflected_shift(percentile, shift):
    images = random_images(height=16, width=16)
    out = make_pipe(xint=1)(images, debug_percentile=percentile)
    # Shift = round(uniform(-xint_max, xint_max) * size) with the uniform at `percentile`.
    assert shift == round((2 * percentile - 1) * 0.125 * 16)
    assert torch.equal(out, reflect_shift(images, shift, shift))


def test_resampling_integer_translation_matches_blit():
    images = random_images(batch_size=2, height=12, width=10, dtype=torch.float64)
    G = augment.translate2d(torch.tensor([-3.0, 2.0], dtype=torch.float64), torch.tensor([1.0, -4.0], dtype=torch.float64))
    resampled = augment.resample(images, G, augment.SYM6_LOWPASS)
    # Perfect reconstruction of the orthogonal wavelet: 2x up, exact sampling, 2x down is lossless.
    assert torch.allclose(resampled, augment.blit(images, G), atol=1e-5)
    identity = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1)
    assert torch.allclose(augment.resample(images, identity, augment.SYM6_LOWPASS), images, atol=1e-5)


@pytest.mark.parametrize('percentile', [0.2, 0.9])
def test_scale_of_ramp(percentile):
    images = ramp_images(32, 32, 0.1, -0.05)
    out = make_pipe(scale=1)(images, debug_percentile=percentile)
    s = 2 ** normal_at(percentile, 0.2)  # The image is magnified by s: out(u) = in(u / s).
    expected = ramp_images(32, 32, 0.1 / s, -0.05 / s)
    assert torch.allclose(out[:, :, 8:-8, 8:-8], expected[:, :, 8:-8, 8:-8], atol=1e-4)


def test_aniso_of_ramp():
    images = ramp_images(32, 32, 0.1, -0.05)
    out = make_pipe(aniso=1)(images, debug_percentile=0.8)
    s = 2 ** normal_at(0.8, 0.2)  # x is stretched by s, y by 1 / s.
    expected = ramp_images(32, 32, 0.1 / s, -0.05 * s)
    assert torch.allclose(out[:, :, 8:-8, 8:-8], expected[:, :, 8:-8, 8:-8], atol=1e-4)


def test_rotate_of_ramp():
    images = ramp_images(32, 32, 0.1, 0.0)
    out = make_pipe(rotate=1)(images, debug_percentile=0.55)
    # Both rotations fire in debug mode: the total angle is twice (2 * 0.55 - 1) * pi,
    # counter-clockwise as displayed (y points down): input x = cos(theta) * x - sin(theta) * y.
    theta = 2 * (2 * 0.55 - 1) * np.pi
    expected = ramp_images(32, 32, 0.1 * np.cos(theta), -0.1 * np.sin(theta))
    assert torch.allclose(out[:, :, 8:-8, 8:-8], expected[:, :, 8:-8, 8:-8], atol=1e-4)


def test_xfrac_of_ramp():
    images = ramp_images(32, 32, 0.1, 0.2)
    out = make_pipe(xfrac=1)(images, debug_percentile=0.7)
    t = normal_at(0.7, 0.125) * 32  # Content moves by t pixels right and down.
    expected = images - 0.1 * t - 0.2 * t
    assert torch.allclose(out[:, :, 8:-8, 8:-8], expected[:, :, 8:-8, 8:-8], atol=1e-4)


def test_geometric_gradcheck():
    images = random_images(batch_size=1, channels=1, height=4, width=5, dtype=torch.float64).requires_grad_(True)
    pipe = make_pipe(xflip=1, scale=1, rotate=1, xfrac=1)
    assert torch.autograd.gradcheck(lambda x: pipe(x, debug_percentile=0.7), [images])

@pytest.mark.parametrize('gradfix', [False, True])
def test_second_order_gradcheck(gradfix, monkeypatch):
    # The R1 penalty differentiates twice; the training loop enables conv2d_gradfix.
    monkeypatch.setattr(augment.conv2d_gradfix, 'enabled', gradfix)
    images = random_images(batch_size=1, channels=1, height=3, width=4, dtype=torch.float64).requires_grad_(True)
    pipe = make_pipe(scale=1, rotate=1, imgfilter=1)
    assert torch.autograd.gradgradcheck(lambda x: pipe(x, debug_percentile=0.8), [images], fast_mode=True)


# ----------------------------------------------------------------------------
# Color operations.


def luma(images):
    return images.mean(dim=1)


@pytest.mark.parametrize('percentile', [None, 0.1, 0.8])
def test_hue_preserves_luma(percentile):
    images = random_images(batch_size=4, height=8, width=8, dtype=torch.float64)
    torch.manual_seed(9)
    out = make_pipe(hue=1)(images, debug_percentile=percentile)
    assert not torch.allclose(out, images)
    assert torch.allclose(luma(out), luma(images), atol=1e-6)
    assert torch.allclose(out.square().sum(dim=1), images.square().sum(dim=1), atol=1e-6)  # A rotation.


def test_brightness_shifts_every_pixel():
    images = random_images(dtype=torch.float64)
    out = make_pipe(brightness=1)(images, debug_percentile=0.9)
    assert torch.allclose(out - images, torch.full_like(images, normal_at(0.9, 0.2)), atol=1e-6)
    assert (out.mean() - images.mean()).item() == pytest.approx(normal_at(0.9, 0.2), abs=1e-6)


def test_contrast_scales():
    images = random_images(dtype=torch.float64)
    out = make_pipe(contrast=1)(images, debug_percentile=0.2)
    assert torch.allclose(out, images * 2 ** normal_at(0.2, 0.5), atol=1e-6)


def test_lumaflip_negates_luma_and_keeps_chroma():
    images = random_images(dtype=torch.float64)
    out = make_pipe(lumaflip=1)(images, debug_percentile=0.75)
    assert torch.allclose(luma(out), -luma(images), atol=1e-6)
    assert torch.allclose(out - luma(out)[:, None], images - luma(images)[:, None], atol=1e-6)


def test_saturation_scales_chroma():
    images = random_images(dtype=torch.float64)
    out = make_pipe(saturation=1)(images, debug_percentile=0.3)
    s = 2 ** normal_at(0.3, 1.0)
    assert torch.allclose(luma(out), luma(images), atol=1e-6)
    assert torch.allclose(out - luma(out)[:, None], s * (images - luma(images)[:, None]), atol=1e-6)


def test_color_on_grayscale():
    images = random_images(channels=1, dtype=torch.float64)
    out = make_pipe(brightness=1, hue=1, saturation=1)(images, debug_percentile=0.9)
    # Gray stays gray under hue and saturation; only the brightness offset remains.
    assert torch.allclose(out, images + normal_at(0.9, 0.2), atol=1e-6)
    out = make_pipe(lumaflip=1, contrast=1)(images, debug_percentile=0.9)
    assert torch.allclose(out, -images * 2 ** normal_at(0.9, 0.5), atol=1e-6)

# ----------------------------------------------------------------------------
# Filtering and corruptions.


def test_octave_bands_partition_the_spectrum():
    bands = augment.OCTAVE_BANDS
    num_bands, length = bands.shape
    assert num_bands == 4 and length % 2 == 1
    impulse = np.zeros(length)
    impulse[length // 2] = 1
    assert np.allclose(bands.sum(axis=0), impulse)
    assert np.allclose(bands, bands[:, ::-1])  # Zero phase.
    freqs = np.linspace(0, np.pi, 257)
    response = np.real(np.exp(-1j * np.outer(freqs, np.arange(length) - length // 2)) @ bands.T)  # [F, 4]
    centres = [np.pi / 16, 3 * np.pi / 16, 3 * np.pi / 8, 3 * np.pi / 4]  # Middle of each octave.
    for band, centre in enumerate(centres):
        at_centre = response[np.argmin(np.abs(freqs - centre))]
        assert np.argmax(at_centre) == band
        assert at_centre[band] > 0.6
    assert response[0, 0] == pytest.approx(1) and response[-1, -1] == pytest.approx(1)


def test_imgfilter_gain_normalization():
    images = torch.full([2, 3, 8, 8], 0.7, dtype=torch.float64)
    # Only the top band is amplified; a constant image lies in the bottom band, which keeps gain 1
    # before normalization, so it is scaled by the power normalization alone (once per axis).
    out = make_pipe(imgfilter=1, imgfilter_bands=[0, 0, 0, 1])(images, debug_percentile=0.9)
    g = 2 ** normal_at(0.9, 1.0)
    expected_power = np.array([10, 1, 1, 1]) / 13
    norm = np.sqrt(expected_power @ np.array([1, 1, 1, g * g]))
    assert torch.allclose(out, images / norm ** 2, atol=1e-6)


def test_imgfilter_amplifies_high_frequencies():
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1  # Nyquist pattern.
    images = checker.to(torch.float64)[None, None].repeat(1, 3, 1, 1)
    out = make_pipe(imgfilter=1, imgfilter_bands=[0, 0, 0, 1])(images, debug_percentile=0.9)
    g = 2 ** normal_at(0.9, 1.0)
    norm = np.sqrt(np.array([10, 1, 1, 1]) @ np.array([1, 1, 1, g * g]) / 13)
    # Filtered along both axes: the gain applies once per axis.
    assert torch.allclose(out, images * (g / norm) ** 2, rtol=1e-3)


def test_noise_strength():
    images = torch.zeros([1, 3, 64, 64])
    out = make_pipe(noise=1)(images, debug_percentile=1.0)
    sigma = abs(normal_at(1 - augment.DEBUG_GAUSSIAN_PERCENTILE_CLIP, 0.1))
    assert out.std().item() == pytest.approx(sigma, rel=0.05)
    assert torch.equal(make_pipe(noise=1)(images, debug_percentile=0.5), images)


def test_cutout_square():
    images = random_images(batch_size=2, height=8, width=8)
    out = make_pipe(cutout=1)(images, debug_percentile=0.5)
    inside = torch.zeros([8, 8], dtype=torch.bool)
    inside[2:6, 2:6] = True  # Centre 0.5, size 0.5: pixel centres within 0.25 of the middle.
    assert (out[:, :, inside] == 0).all()
    assert torch.equal(out[:, :, ~inside], images[:, :, ~inside])

# ----------------------------------------------------------------------------
# Differentiability and persistence.


@pytest.mark.parametrize('preset', ['bg', 'bgcfnc'])
def test_gradients_flow(preset):
    images = random_images(batch_size=4, height=8, width=8).requires_grad_(True)
    torch.manual_seed(10)
    out = make_pipe(**augment.PRESETS[preset])(images)
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(images.grad).all()
    assert images.grad.abs().sum() > 0


def test_second_order_gradients():
    # The R1 penalty differentiates the discriminator's gradient with respect to augmented images.
    images = random_images(batch_size=2, height=8, width=8).requires_grad_(True)
    weight = torch.randn([1, 3, 3, 3], requires_grad=True)
    torch.manual_seed(11)
    out = make_pipe(**augment.PRESETS['bgcfnc'])(images)
    score = torch.nn.functional.conv2d(out, weight).square().sum()
    (grad,) = torch.autograd.grad(score, images, create_graph=True)
    grad.square().sum().backward()
    assert torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0


def test_pickle_roundtrip_in_fresh_interpreter(tmp_path):
    pipe = make_pipe(p=0.4, **augment.PRESETS['bgcfnc'], hue_max=0.5)
    images = random_images(batch_size=2, height=8, width=8)
    torch.manual_seed(12)  # The noise pixels stay random in debug mode.
    expected = pipe(images, debug_percentile=0.7)
    path = tmp_path / 'pipe.pkl'
    with open(path, 'wb') as f:
        pickle.dump(dict(augment_pipe=pipe, images=images, expected=expected), f)
    reader = f'''
import pickle, sys, torch
sys.modules.pop('training.augment', None)
with open({str(path)!r}, 'rb') as f:
    data = pickle.load(f)
pipe = data['augment_pipe']
assert 'training.augment' not in sys.modules, 'the pickle must not import the project module'
assert type(pipe).__module__ != 'training.augment'
assert abs(float(pipe.p) - 0.4) < 1e-6 and pipe.hue_max == 0.5
torch.manual_seed(12)
assert torch.equal(pipe(data['images'], debug_percentile=0.7), data['expected'])
print('ok')
'''
    result = run_python(['-c', reader])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'ok'


def test_module_source_uses_only_pickle_surface():
    # The surface checker lives in test_pickle_surface.py, beside this file.
    import importlib.util
    checker_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'test_pickle_surface.py')
    spec = importlib.util.spec_from_file_location('pickle_surface_checker', checker_path)
    checker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checker)
    source_path = inspect.getsourcefile(augment)
    assert source_path in [str(path) for path in checker._persisted_module_paths()]
    with open(source_path) as f:
        assert checker.surface_violations(f.read()) == []
