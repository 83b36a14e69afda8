"""End-to-end tests of avg_spectra.py on tiny datasets and a tiny network, plots saved to files."""

import io
import json
import re
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

import avg_spectra
from helpers import run_python
from tool_networks import save_network_pkl, tiny_generator


def _write_zip(path, images):
    with zipfile.ZipFile(path, 'w') as zf:
        for idx, image in enumerate(images):
            buf = io.BytesIO()
            PIL.Image.fromarray(image).save(buf, format='png')
            zf.writestr(f'00000/img{idx:08d}.png', buf.getvalue())
        zf.writestr('dataset.json', json.dumps({'labels': None}))
    return str(path)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('avg_spectra')
    noise = np.random.RandomState(0).randint(0, 256, size=[32, 16, 16, 3]).astype(np.uint8)
    x = np.arange(16)
    stripes = np.round(127.5 + 100 * np.cos(2 * np.pi * 3 * x / 16)).astype(np.uint8)  # 3 cycles per image, horizontally.
    stripes = np.broadcast_to(stripes[np.newaxis, :, np.newaxis], [16, 16, 3])
    return dict(root=root, noise_zip=_write_zip(root / 'noise.zip', noise), noise=noise,
                stripes_zip=_write_zip(root / 'stripes.zip', [stripes] * 4),
                net_pkl=save_network_pkl(tiny_generator(img_resolution=16), root / 'net.pkl'))


def _spectra(*args):
    return run_python(['avg_spectra.py'] + [str(a) for a in args], env=dict(MPLBACKEND='Agg'))


def test_end_to_end_dataset_and_network(workspace):
    root = workspace['root']
    r = _spectra('stats', f'--source={workspace["noise_zip"]}', '--workers=0')
    assert r.returncode == 0, r.stderr
    match = re.search(r'--mean=(\S+) --std=(\S+)', r.stdout)
    values = workspace['noise'].astype(np.float64)
    assert match and np.isclose(float(match.group(1)), values.mean(), rtol=1e-4)
    assert np.isclose(float(match.group(2)), values.std(), rtol=1e-4)
    mean_std = [f'--mean={match.group(1)}', f'--std={match.group(2)}']

    r = _spectra('calc', f'--source={workspace["noise_zip"]}', f'--dest={root / "data.npz"}', '--workers=0', *mean_std)
    assert r.returncode == 0, r.stderr
    r = _spectra('calc', f'--source={workspace["net_pkl"]}', f'--dest={root / "net.npz"}', '--num=8', '--interp=2', *mean_std)
    assert r.returncode == 0, r.stderr

    # White noise normalised to unit variance, with a unit-energy window: a flat spectrum at 0 dB.
    with np.load(root / 'data.npz') as data:
        spectrum, image_size = data['spectrum'], int(data['image_size'])
    assert spectrum.shape == (64, 64) and image_size == 16
    assert abs(np.median(spectrum) - 1) < 0.1
    with np.load(root / 'net.npz') as data:
        assert data['spectrum'].shape == (32, 32) and np.all(np.isfinite(data['spectrum']))

    for command, inputs in (('heatmap', ['data.npz']), ('slices', ['data.npz', 'net.npz'])):
        plot = root / f'{command}.png'
        r = _spectra(command, *[root / name for name in inputs], f'--save={plot}')
        assert r.returncode == 0, r.stderr
        image = np.array(PIL.Image.open(plot).convert('RGB'))
        assert image.shape[0] > 200 and image.shape[1] > 200
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # Not a blank canvas.


def test_errors(workspace):
    root = workspace['root']
    checks = [
        (['heatmap', root / 'missing.npz', f'--save={root / "x.png"}'], 'cannot read spectrum file'),
        (['calc', f'--source={workspace["net_pkl"]}', f'--dest={root / "x.npz"}', '--mean=0', '--std=1'], '--num is required'),
        (['stats', f'--source={root / "nothing.zip"}'], 'no such dataset'),
    ]
    np.savez(root / 'ok.npz', spectrum=np.ones([8, 8]), image_size=np.int64(4))
    checks.append((['heatmap', root / 'ok.npz'], '--save'))  # No display (MPLBACKEND=Agg): say how to save instead.
    for args, message in checks:
        r = _spectra(*args)
        errors = [line for line in r.stderr.splitlines() if line.startswith('Error:')]
        assert r.returncode != 0 and 'Traceback' not in r.stderr
        assert len(errors) == 1 and message in errors[0], r.stderr


def test_spectrum_orientation_and_slices(workspace):
    """Horizontal stripes at 3 cycles per image peak at horizontal frequency 3 (column 3 * interp, row 0)."""
    num, image_size, batches = avg_spectra.open_source(workspace['stripes_zip'], None, 0, torch.device('cpu'))
    assert (num, image_size) == (4, 16)
    spectrum = avg_spectra.average_spectrum(batches, image_size, mean=127.5, std=70.0, beta=8, interp=4, device=torch.device('cpu'))
    (hf, hdb), (df, ddb) = avg_spectra.spectrum_slices(spectrum, image_size)
    assert hf[-1] == 8 and np.isclose(df[-1], 8 * np.sqrt(2))  # From DC to Nyquist (image_size / 2).
    assert hf[np.argmax(hdb)] == 3
    assert np.unravel_index(np.argmax(spectrum), spectrum.shape) in [(0, 12), (0, 64 - 12)]
    assert ddb[df > 4.5].max() < hdb.max() - 40  # Nothing along the diagonal beyond the window's main lobe.


def test_plot_options_of_the_official_tool(tmp_path):
    """heatmap --dpi/--smooth and slices --dpi/--smooth as in the official tool; the file format follows the
    extension; missing folders are created."""
    rnd = np.random.RandomState(0)
    np.savez(tmp_path / 'a.npz', spectrum=rnd.rand(32, 32) + 0.5, image_size=np.int64(8))
    sizes = {}
    for dpi in (50, 100):
        plot = tmp_path / f'dpi{dpi}' / 'heatmap.png'
        r = _spectra('heatmap', tmp_path / 'a.npz', f'--save={plot}', f'--dpi={dpi}', '--smooth=2')
        assert r.returncode == 0, r.stderr
        sizes[dpi] = PIL.Image.open(plot).size
    assert sizes[100] == (2 * sizes[50][0], 2 * sizes[50][1])  # The official figure is 6 x 4.8 inches.
    r = _spectra('slices', tmp_path / 'a.npz', tmp_path / 'a.npz', f'--save={tmp_path / "new" / "slices.pdf"}',
                 '--dpi=300', '--smooth=1')
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'new' / 'slices.pdf').read_bytes().startswith(b'%PDF')


def test_smoothing_and_closing_of_the_plotted_spectrum():
    spectrum = np.full([16, 16], 1e-3)
    spectrum[0, 0] = 1e3  # DC: +30 dB against -30 dB elsewhere.
    db = avg_spectra.centred_decibels(spectrum, image_size=4, smooth=0)
    assert db.shape == (17, 17) and db[8, 8] == pytest.approx(30)
    np.testing.assert_array_equal(db[-1], db[0])  # Both Nyquist edges shown.
    smoothed = avg_spectra.centred_decibels(spectrum, image_size=4, smooth=1)
    assert smoothed[8, 8] < 30 and smoothed[8, 9] > -30 and smoothed.sum() == pytest.approx(db.sum(), rel=0.05)
