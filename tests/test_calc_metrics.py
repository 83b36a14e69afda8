"""End-to-end tests of calc_metrics.py with small stand-in detectors that keep the real call conventions."""

import json
import pickle
import io
import socket
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from helpers import run_python
from metric_standins import write_standin_detectors


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('metrics')
    # Detectors: a TorchScript archive and a pickled persistent module.
    write_standin_detectors(root)

    # Dataset: 24 random 16x16 images in a zip.
    rnd = np.random.RandomState(0)
    with zipfile.ZipFile(root / 'data.zip', 'w') as zf:
        for i in range(24):
            img = (rnd.rand(16, 16, 3) * 255).astype(np.uint8)
            buf = io.BytesIO()
            PIL.Image.fromarray(img).save(buf, format='png')
            zf.writestr(f'00000/img{i:08d}.png', buf.getvalue())
        zf.writestr('dataset.json', json.dumps({'labels': None}))

    # Network pickle: a tiny StyleGAN2 generator.
    from training.networks_stylegan2 import Generator
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
                  channel_base=64, channel_max=16).eval()
    with open(root / 'net.pkl', 'wb') as f:
        pickle.dump(dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=None), f)
    return root


def _calc(workspace, *args, env=None):
    cmd = ['calc_metrics.py', f'--inception={workspace / "inception.pt"}', f'--vgg16={workspace / "vgg16.pt"}',
           '--workers=0'] + list(args)
    return run_python(cmd, env=dict(env or {}, DNNLIB_CACHE_DIR=str(workspace / 'cache')))


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _printed(stdout):
    """The JSON result lines calc_metrics.py prints, by metric name (the last of each)."""
    return {record['metric']: record for record in map(json.loads, [line for line in stdout.splitlines()
                                                                      if line.startswith('{"results"')])}


def test_metrics_end_to_end_with_cache_and_two_processes(workspace):
    net, data = workspace / 'net.pkl', workspace / 'data.zip'
    first = _calc(workspace, f'--network={net}', f'--data={data}', '--metrics=fid20_full,kid20_full,pr1k3_full,is40')
    assert first.returncode == 0, first.stderr
    assert first.stdout.count('dataset features') == 3  # FID, KID and PR each extract (two detectors)...
    lines = _printed(first.stdout)
    fid = lines['fid20_full']['results']['fid20_full']
    kid = lines['kid20_full']['results']['kid20_full']
    pr = lines['pr1k3_full']['results']
    assert np.isfinite(fid) and fid > 0 and np.isfinite(kid)
    assert 0 <= pr['pr1k3_full_precision'] <= 1 and 0 <= pr['pr1k3_full_recall'] <= 1
    assert lines['is40']['results']['is40_mean'] >= 1
    for metric in ('fid20_full', 'kid20_full', 'pr1k3_full', 'is40'):
        assert set(lines[metric]) >= {'results', 'metric', 'total_time', 'total_time_str', 'num_gpus', 'snapshot_pkl', 'timestamp'}
        assert lines[metric]['snapshot_pkl'] == str(net)
    assert not list(workspace.glob('metric-*.jsonl'))  # Not in a training run: printed only, as the official tool.

    # Second run: dataset statistics come from the cache, the values are identical.
    second = _calc(workspace, f'--network={net}', f'--data={data}', '--metrics=fid20_full')
    assert second.returncode == 0, second.stderr
    assert 'dataset features' not in second.stdout and 'generator features' in second.stdout
    assert _printed(second.stdout)['fid20_full']['results']['fid20_full'] == fid

    # Two CPU processes give the same value as one.
    two = _calc(workspace, f'--network={net}', f'--data={data}', '--metrics=fid20_full,kid20_full', '--gpus=2')
    assert two.returncode == 0, two.stderr
    records = _printed(two.stdout)['fid20_full'], _printed(two.stdout)['kid20_full']
    assert records[0]['num_gpus'] == 2
    assert records[0]['results']['fid20_full'] == pytest.approx(fid, rel=1e-4)
    assert records[1]['results']['kid20_full'] == pytest.approx(kid, rel=1e-3, abs=1e-6)


def test_dataset_settings_come_from_the_training_run(workspace, tmp_path):
    run_dir = tmp_path / '00000-run'
    run_dir.mkdir()
    (run_dir / 'network-snapshot-000000.pkl').write_bytes((workspace / 'net.pkl').read_bytes())
    options = dict(training_set_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path=str(workspace / 'data.zip'),
                                            use_labels=False, max_size=24, xflip=True, resolution=16, random_seed=0))
    (run_dir / 'training_options.json').write_text(json.dumps(options))
    r = _calc(workspace, f'--network={run_dir / "network-snapshot-000000.pkl"}', '--metrics=fid20')
    assert r.returncode == 0, r.stderr
    assert '"xflip": true' in r.stdout
    assert _jsonl(run_dir / 'metric-fid20.jsonl')[0]['snapshot_pkl'] == 'network-snapshot-000000.pkl'


def test_clear_errors(workspace):
    net = workspace / 'net.pkl'
    r = _calc(workspace, f'--network={net}', '--metrics=fid20_full')
    assert r.returncode != 0 and '--data is required' in r.stderr and 'Traceback' not in r.stderr
    r = _calc(workspace, f'--network={net}', f'--data={workspace / "data.zip"}', '--metrics=fid51x')
    assert r.returncode != 0 and 'unknown metric' in r.stderr and 'Traceback' not in r.stderr
    r = _calc(workspace, f'--network={workspace / "missing.pkl"}', f'--data={workspace / "data.zip"}')
    assert r.returncode != 0 and 'no such file' in r.stderr and 'Traceback' not in r.stderr

    # A detector that cannot be fetched: one line naming the URL and where to put the file.
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]  # Nothing listens here once the socket closes.
    url = f'http://127.0.0.1:{port}/inception-2015-12-05.pkl'
    r = run_python(['calc_metrics.py', f'--network={net}', f'--data={workspace / "data.zip"}', '--metrics=fid20_full',
                    f'--inception={url}', '--workers=0'], env=dict(DNNLIB_CACHE_DIR=str(workspace / 'cache2')))
    assert r.returncode != 0 and 'Traceback' not in r.stderr
    error_lines = [l for l in r.stderr.splitlines() if l.startswith('Error:')]
    assert len(error_lines) == 1
    assert url in error_lines[0] and str(workspace / 'cache2') in error_lines[0]


def test_ppl_and_equivariance_functions(workspace):
    from metrics import equivariance, metric_utils, perceptual_path_length
    metric_utils.set_detector_override(metric_utils.VGG16_URL, str(workspace / 'vgg16.pt'))
    try:
        with open(workspace / 'net.pkl', 'rb') as f:
            G = pickle.load(f)['G_ema']
        opts = metric_utils.MetricOptions(G=G, device=torch.device('cpu'))
        ppl = perceptual_path_length.compute_ppl(opts, num_samples=12, epsilon=1e-4, space='w', sampling='end',
                                                 crop=False, batch_size=4)
        assert np.isfinite(ppl) and ppl > 0
        ppl_z = perceptual_path_length.compute_ppl(opts, num_samples=12, epsilon=1e-4, space='z', sampling='full',
                                                   crop=True, batch_size=4)
        assert np.isfinite(ppl_z) and ppl_z > 0
        with pytest.raises(metric_utils.MetricError):  # StyleGAN2 has no input transform.
            equivariance.compute_equivariance_metrics(opts, num_samples=4, batch_size=4, compute_eqt_int=True)
    finally:
        metric_utils._detector_overrides.clear()


def test_creps_scale_compares_with_resized_reals(workspace, tmp_path):
    """--scale=2 renders a 16x16 CREPS network at 32x32 and compares it with the dataset resized to 32x32
    (Lanczos): the FID equals the one computed here from those images directly."""
    import creps_networks
    from metrics import frechet_inception_distance, metric_utils
    from training import networks_creps
    G = creps_networks.tiny_generator(img_resolution=16)
    net = tmp_path / 'creps.pkl'
    with open(net, 'wb') as f:
        pickle.dump(dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=None), f)

    def calc(*args):
        cmd = ['calc_metrics.py', f'--inception={workspace / "inception.pt"}', f'--network={net}',
               f'--data={workspace / "data.zip"}', '--workers=0'] + list(args)
        return run_python(cmd, env=dict(DNNLIB_CACHE_DIR=str(tmp_path / 'cache')))

    r = calc('--metrics=fid20_full', '--scale=2')
    assert r.returncode == 0, r.stderr
    assert 'Rendering at 32x32' in r.stdout and 'dataset features' in r.stdout
    record = _printed(r.stdout)['fid20_full']
    assert record['scale'] == 2

    detector = torch.jit.load(str(workspace / 'inception.pt'))
    with zipfile.ZipFile(workspace / 'data.zip') as zf:
        reals = [PIL.Image.open(io.BytesIO(zf.read(name))) for name in sorted(zf.namelist()) if name.endswith('.png')]
    reals = np.stack([np.asarray(img.resize((32, 32), PIL.Image.Resampling.LANCZOS)) for img in reals])
    with torch.no_grad():
        real_features = detector(torch.from_numpy(reals).permute(0, 3, 1, 2).contiguous(), return_features=True)
        z = torch.from_numpy(metric_utils.sample_latents(range(20), G.z_dim, seed=0))
        with networks_creps.rendering_scale(G, 2):
            fakes = metric_utils.make_images_uint8(G(z, torch.zeros([20, 0])))
        fake_features = detector(fakes, return_features=True)
    assert fakes.shape == (20, 3, 32, 32)
    mean_cov = [(f.numpy().astype(np.float64).mean(0), np.cov(f.numpy().astype(np.float64), rowvar=False, bias=True))
                for f in (fake_features, real_features)]
    fid = frechet_inception_distance.frechet_distance(*mean_cov[0], *mean_cov[1])
    assert record['results']['fid20_full'] == pytest.approx(fid, rel=1e-3)

    # The resized statistics are cached apart from those at the training resolution.
    again = calc('--metrics=fid20_full', '--scale=2')
    assert again.returncode == 0 and 'dataset features' not in again.stdout
    assert _printed(again.stdout)['fid20_full']['results']['fid20_full'] == record['results']['fid20_full']
    plain = calc('--metrics=fid20_full')
    assert plain.returncode == 0 and 'dataset features' in plain.stdout
    assert 'scale' not in _printed(plain.stdout)['fid20_full']

    # The CREPS protocol: a dataset prepared at the rendering resolution is used as it is. Holding exactly the
    # resized images, it gives the same FID.
    with zipfile.ZipFile(tmp_path / 'data32.zip', 'w') as zf:
        for idx, image in enumerate(reals):
            buf = io.BytesIO()
            PIL.Image.fromarray(image).save(buf, format='png')
            zf.writestr(f'00000/img{idx:08d}.png', buf.getvalue())
    prepared = run_python(['calc_metrics.py', f'--inception={workspace / "inception.pt"}', f'--network={net}',
                           f'--data={tmp_path / "data32.zip"}', '--workers=0', '--metrics=fid20_full', '--scale=2'],
                          env=dict(DNNLIB_CACHE_DIR=str(tmp_path / 'cache')))
    assert prepared.returncode == 0, prepared.stderr
    assert 'against reals as they are' in prepared.stdout and 'dataset features' in prepared.stdout
    assert _printed(prepared.stdout)['fid20_full']['results']['fid20_full'] == pytest.approx(record['results']['fid20_full'], rel=1e-5)

    # What cannot be evaluated at another scale is refused in one line.
    for args, message in [(['--metrics=fid20_full', f'--network={workspace / "net.pkl"}', '--scale=2'], 'not a CREPS network'),
                          (['--metrics=eqt20_int', '--scale=2'], 'equivariance'),
                          (['--metrics=fid20_full', '--scale=0.01'], 'smallest scale')]:
        r = calc(*args)
        errors = [line for line in r.stderr.splitlines() if line.startswith('Error:')]
        assert r.returncode != 0 and 'Traceback' not in r.stderr
        assert len(errors) == 1 and message in errors[0], r.stderr


def test_creps_ppl_at_scale_and_equivariance_refusal(workspace):
    import creps_networks
    from metrics import equivariance, metric_utils, perceptual_path_length
    metric_utils.set_detector_override(metric_utils.VGG16_URL, str(workspace / 'vgg16.pt'))
    try:
        G = creps_networks.tiny_generator(img_resolution=16)
        opts = metric_utils.MetricOptions(G=G, device=torch.device('cpu'), scale=2)
        ppl = perceptual_path_length.compute_ppl(opts, num_samples=8, epsilon=1e-4, space='w', sampling='end',
                                                 crop=False, batch_size=4)
        assert np.isfinite(ppl) and ppl > 0
        assert G.synthesis.b4.input.coords.shape[1] == 16  # The metric renders a copy.
        with pytest.raises(metric_utils.MetricError, match='scale 1'):
            equivariance.compute_equivariance_metrics(opts, num_samples=4, batch_size=4, compute_eqt_int=True)
        with pytest.raises(metric_utils.MetricError, match='not a CREPS network'):
            metric_utils.MetricOptions(G=creps_networks.tiny_generator().mapping, scale=2)
    finally:
        metric_utils._detector_overrides.clear()


def test_metrics_run_without_tf32(workspace):
    """As the official tool: TF32 off for matmuls and convolutions (it shifts FID/KID on Ampere and newer GPUs)."""
    import dnnlib
    import calc_metrics
    from metrics import metric_main
    seen = {}
    args = dnnlib.EasyDict(num_gpus=1, use_cuda=False, detector_overrides={}, G=torch.nn.Identity(), verbose=False,
                           metrics=['fid20_full'], network_pkl='net.pkl', dataset_kwargs={}, data_loader_kwargs={},
                           scale=1, run_dir=None)
    def calc_metric(**kwargs):
        seen.update(matmul=torch.backends.cuda.matmul.allow_tf32, cudnn=torch.backends.cudnn.allow_tf32)
        return dict(metric='fid20_full', results={}, total_time=0, total_time_str='0s', num_gpus=1)
    from torch_utils import training_stats
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    real_calc_metric, real_init = metric_main.calc_metric, training_stats.init_multiprocessing
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        metric_main.calc_metric = calc_metric
        training_stats.init_multiprocessing = lambda **kwargs: None  # Once per process, and this one is pytest's.
        calc_metrics.subprocess_fn(0, args, str(workspace))
    finally:
        metric_main.calc_metric, training_stats.init_multiprocessing = real_calc_metric, real_init
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    assert seen == dict(matmul=False, cudnn=False)


def test_official_cached_dataset_statistics_are_reused(workspace, tmp_path):
    """A cache file written by the official code (its name: dataset name, detector file stem, MD5 of the repr of
    the sorted dataset/detector/stats arguments) is used when it fits, and left alone when the dataset is newer."""
    import hashlib
    import os

    import dnnlib
    from metrics import metric_utils
    net, data = workspace / 'net.pkl', workspace / 'data.zip'
    cache = tmp_path / 'cache'
    (cache / 'downloads').mkdir(parents=True)
    os.link(workspace / 'inception.pt', dnnlib.util.url_cache_path(metric_utils.INCEPTION_URL,
                                                                   cache_dir=str(cache / 'downloads')))
    env = dict(DNNLIB_CACHE_DIR=str(cache))
    calc = lambda: run_python(['calc_metrics.py', f'--network={net}', f'--data={data}', '--metrics=fid20_full',  # noqa: E731
                               '--workers=0'], env=env)
    fresh = calc()
    assert fresh.returncode == 0, fresh.stderr
    fid = _printed(fresh.stdout)['fid20_full']['results']['fid20_full']
    ours = list((cache / 'gan-metrics').glob('data-inception-v3-*.pkl'))
    assert len(ours) == 1
    with open(ours[0], 'rb') as f:
        state = pickle.load(f)
    ours[0].unlink()

    # As the official calc_metrics.py builds them for --data (no --mirror) and a *_full metric updates them.
    described = dict(dataset_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path=str(data),
                                         resolution=16, use_labels=False, max_size=None, xflip=False),
                     detector_url=metric_utils.INCEPTION_URL, detector_kwargs=dict(return_features=True),
                     stats_kwargs=dict(capture_mean_cov=True))
    name = f'data-inception-2015-12-05-{hashlib.md5(repr(sorted(described.items())).encode()).hexdigest()}.pkl'
    official = cache / 'gan-metrics' / name
    shifted = dict(state, raw_mean=state['raw_mean'] + state['num_items'] * 0.5)
    with open(official, 'wb') as f:
        pickle.dump(shifted, f)

    reused = calc()
    assert reused.returncode == 0, reused.stderr
    assert 'dataset features' not in reused.stdout
    assert f'Using the dataset statistics cached by the official code: {official}' in reused.stdout
    reused_fid = _printed(reused.stdout)['fid20_full']['results']['fid20_full']
    assert reused_fid != pytest.approx(fid)  # The numbers come from the official file.
    assert calc().stdout.count('official code') == 0  # Copied into this project's cache on first use.

    # An official file older than the dataset is stale.
    for path in (cache / 'gan-metrics').glob('data-inception-v3-*.pkl'):
        path.unlink()
    os.utime(official, (data.stat().st_mtime - 100, data.stat().st_mtime - 100))
    stale = calc()
    assert 'dataset features' in stale.stdout and 'official code' not in stale.stdout
    assert _printed(stale.stdout)['fid20_full']['results']['fid20_full'] == pytest.approx(fid, rel=1e-6)
