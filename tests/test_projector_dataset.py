"""projector.py --target-dataset: every frame of a dataset projected to latents.npz, batched, warm-started and
resumable; with a tiny generator, a tiny video-like dataset and the stand-in VGG16 of metric_standins."""

import io
import shutil
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

import gen_images
import projector
from helpers import run_python
from metric_standins import write_standin_detectors
from metrics import metric_utils
from tool_networks import images_to_uint8, save_network_pkl, tiny_generator

NUM_FRAMES = 6
OPTIONS = ['--num-steps=12', '--warm-steps=6', '--batch=4', '--seed=5']  # Two batches: frames 0-3, then 4-5.
SETTINGS = dict(num_steps=12, warm_steps=6, batch=4, seed=5, w_plus=False, class_idx=None)


def write_frames_zip(path, frames):
    """A zip laid out as dataset_tool.py writes it: 00000/img00000000.png, ..."""
    with zipfile.ZipFile(path, 'w') as zf:
        for idx, frame in enumerate(frames):
            buf = io.BytesIO()
            PIL.Image.fromarray(frame.squeeze()).save(buf, format='png')
            zf.writestr(f'{idx // 1000:05d}/img{idx:08d}.png', buf.getvalue())
    return str(path)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('projector_dataset')
    _, vgg16_pt = write_standin_detectors(root)
    G = tiny_generator(img_resolution=16)
    # A smooth "video": the images of w moving in a straight line between two latents.
    with torch.no_grad():
        z = torch.from_numpy(np.random.RandomState(7).randn(2, G.z_dim).astype(np.float32))
        ends = G.mapping(z, None, truncation_psi=0.6)
        t = torch.linspace(0, 1, NUM_FRAMES)[:, None, None]
        frames = images_to_uint8(G.synthesis(ends[:1] * (1 - t) + ends[1:] * t, noise_mode='const'))
    rnd = np.random.RandomState(0)
    return dict(
        root=root, G=G, env=dict(STYLEGAN_VGG16_PKL=str(vgg16_pt)), vgg16_pt=vgg16_pt,
        net_pkl=save_network_pkl(G, root / 'net.pkl'),
        other_net_pkl=save_network_pkl(tiny_generator(img_resolution=16, seed=1), root / 'other.pkl'),
        data=write_frames_zip(root / 'frames.zip', frames),
        data_32px=write_frames_zip(root / 'frames32.zip', rnd.randint(0, 256, [2, 32, 32, 3], dtype=np.uint8)),
        data_gray=write_frames_zip(root / 'gray.zip', rnd.randint(0, 256, [2, 16, 16], dtype=np.uint8)),
    )


def _project(workspace, outdir, *extra, net=None):
    return run_python(['projector.py', f'--network={net or workspace["net_pkl"]}', f'--target-dataset={workspace["data"]}',
                       f'--outdir={outdir}', *OPTIONS, *extra], env=workspace['env'])


@pytest.fixture(scope='module')
def uninterrupted(workspace, tmp_path_factory):
    outdir = tmp_path_factory.mktemp('uninterrupted')
    r = _project(workspace, outdir)
    assert r.returncode == 0, r.stderr
    return dict(outdir=outdir, stdout=r.stdout)


def _load(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _one_error_line(r):
    errors = [line for line in r.stderr.splitlines() if line.startswith('Error:')]
    assert r.returncode != 0 and 'Traceback' not in r.stderr, r.stderr
    assert len(errors) == 1, r.stderr
    return errors[0]


def test_every_frame_is_projected_in_order(workspace, uninterrupted):
    G, outdir = workspace['G'], uninterrupted['outdir']
    assert sorted(p.name for p in outdir.iterdir()) == ['latents.npz']  # The partial file is gone.
    latents = _load(outdir / 'latents.npz')
    with zipfile.ZipFile(workspace['data']) as zf:
        assert list(latents['fnames']) == sorted(zf.namelist())
    w, loss = latents['w'], latents['loss']
    assert w.shape == (NUM_FRAMES, G.num_ws, G.w_dim) and w.dtype == np.float32
    assert np.all(w == w[:, :1])  # W, repeated for every layer.
    assert loss.shape == (NUM_FRAMES,) and np.isfinite(loss).all()
    assert latents['network_sha256'] == projector.generator_fingerprint(G)
    assert (latents['num_steps'], latents['warm_steps'], latents['batch'], latents['w_plus']) == (12, 6, 4, False)

    # The stored loss is the distance of the stored w; each is closer to its own frame than w_avg is.
    with open(workspace['vgg16_pt'], 'rb') as f:
        vgg16 = metric_utils.load_detector(f)
    ds = projector.open_target_dataset(workspace['data'], G)
    with torch.no_grad():
        target = projector.lpips_features(vgg16, torch.from_numpy(projector.read_frames(ds, 0, NUM_FRAMES)).float())
        dist = lambda ws: projector.feature_distances(target, projector.lpips_features(vgg16, projector.synthesise(G, ws, True)))
        start = dist(G.mapping.w_avg.reshape(1, 1, -1).repeat(NUM_FRAMES, G.num_ws, 1)).numpy()
        np.testing.assert_allclose(dist(torch.from_numpy(w)).numpy(), loss, rtol=1e-4, atol=1e-6)
    assert np.all(loss < start), (loss, start)

    # A log line per batch: the first from w_avg with --num-steps, the second warm-started with --warm-steps.
    lines = [line for line in uninterrupted['stdout'].splitlines() if line.startswith('Frames ')]
    assert len(lines) == 2
    assert lines[0].startswith('Frames 0-3 of 6: mean distance') and '12 steps (start from w_avg)' in lines[0]
    assert lines[1].startswith('Frames 4-5 of 6') and '6 steps (warm start from frame 3)' in lines[1]


def test_batch_start_is_the_previous_frames_result():
    w_avg = torch.arange(4, dtype=torch.float32).reshape(1, 1, 4)
    first = projector.batch_start(w_avg, None, w_plus=False, num_ws=3, num_steps=100, warm_steps=20)
    assert torch.equal(first.w, w_avg) and first.num_steps == 100 and not first.warm
    first_plus = projector.batch_start(w_avg, None, w_plus=True, num_ws=3, num_steps=100, warm_steps=20)
    assert first_plus.w.shape == (1, 3, 4) and torch.equal(first_plus.w, w_avg.repeat(1, 3, 1))

    # A later batch starts from the final w of the previous batch's last frame (as stored), with warm_steps.
    previous_batch = np.random.RandomState(0).randn(4, 3, 4).astype(np.float32)  # Final ws of 4 frames, W+.
    later = projector.batch_start(w_avg, previous_batch[-1], w_plus=True, num_ws=3, num_steps=100, warm_steps=20)
    assert torch.equal(later.w[0], torch.from_numpy(previous_batch[-1])) and later.num_steps == 20 and later.warm

    # Each batch's noise seed depends on --seed and its place only (so a resumed run draws the same).
    assert projector.batch_seed(5, 1) == projector.batch_seed(5, 1)
    assert len({projector.batch_seed(5, 0), projector.batch_seed(5, 1), projector.batch_seed(6, 0)}) == 3
    assert projector.default_warm_steps(1000) == 200 and projector.default_warm_steps(3) == 1


def test_batch_in_w_plus_gives_each_frame_its_own_ws(workspace):
    G = workspace['G']
    with open(workspace['vgg16_pt'], 'rb') as f:
        vgg16 = metric_utils.load_detector(f)
    frames = projector.read_frames(projector.open_target_dataset(workspace['data'], G), 0, 3)
    w_avg = G.mapping.w_avg.reshape(1, 1, -1)
    start = projector.batch_start(w_avg, None, w_plus=True, num_ws=G.num_ws, num_steps=8, warm_steps=2)
    ws, dists = projector.project_batch(G, vgg16, frames, start, 1.0, w_plus=True, seed=0, force_fp32=True,
                                        device=torch.device('cpu'))
    assert ws.shape == (3, G.num_ws, G.w_dim) and dists.shape == (3,) and np.isfinite(dists).all()
    assert not np.all(ws == ws[:, :1]) and not np.allclose(ws[0], ws[1])  # One w per layer, and per frame.


def test_interrupted_run_resumes_to_the_same_file(workspace, uninterrupted, tmp_path):
    # Interrupt in-process right after the first batch has been saved, as a kill at that moment would.
    G = gen_images.load_generator(workspace['net_pkl'], torch.device('cpu'), verbose=False)
    with open(workspace['vgg16_pt'], 'rb') as f:
        vgg16 = metric_utils.load_detector(f)
    dataset = projector.open_target_dataset(workspace['data'], G)
    identity = projector.run_identity(workspace['net_pkl'], G, workspace['data'], dataset, **SETTINGS)
    partial_path = tmp_path / projector.PARTIAL_NAME
    done = projector.load_progress(partial_path, identity, dataset.image_fnames, projector.stored_w_shape(G, False))
    run = projector.project_dataset(G, vgg16, dataset, torch.zeros([1, 0]), str(tmp_path), identity, done, force_fp32=True)
    assert next(run).stop == 4
    run.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [projector.PARTIAL_NAME]
    partial = _load(partial_path)
    assert partial['w'].shape == (4, 1, G.w_dim) and len(partial['loss']) == 4 and len(partial['fnames']) == 4

    # The same command continues from there and ends with the file of an uninterrupted run.
    r = _project(workspace, tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'Resuming from' in r.stdout and '4 of 6 frames done' in r.stdout
    assert [line.split(':')[0] for line in r.stdout.splitlines() if line.startswith('Frames ')] == ['Frames 4-5 of 6']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['latents.npz']
    resumed, expected = _load(tmp_path / 'latents.npz'), _load(uninterrupted['outdir'] / 'latents.npz')
    assert resumed.keys() == expected.keys()
    for key in expected:
        if key not in ('w', 'loss'):
            assert np.array_equal(resumed[key], expected[key]), key
    np.testing.assert_allclose(resumed['w'], expected['w'], rtol=0, atol=1e-6)
    np.testing.assert_allclose(resumed['loss'], expected['loss'], rtol=1e-5, atol=1e-7)

    # Run again once complete: nothing to do, nothing changed.
    before = (tmp_path / 'latents.npz').read_bytes()
    r = _project(workspace, tmp_path)
    assert r.returncode == 0 and 'nothing to do' in r.stdout, r.stderr
    assert (tmp_path / 'latents.npz').read_bytes() == before


def test_bad_inputs_are_one_line(workspace, uninterrupted, tmp_path):
    net, data, env = workspace['net_pkl'], workspace['data'], workspace['env']
    target = tmp_path / 'target.png'
    PIL.Image.fromarray(np.zeros([16, 16, 3], dtype=np.uint8)).save(target)
    cases = [
        ([f'--target={target}', f'--target-dataset={data}'], 'exactly one of --target'),
        ([], 'exactly one of --target'),
        ([f'--target-dataset={data}', '--save-video=0'], '--save-video applies to --target only'),
        ([f'--target={target}', '--batch=2'], '--batch applies to --target-dataset only'),
        ([f'--target-dataset={workspace["data_32px"]}'], 'holds 32x32 images with 3 channel(s), but the network makes 16x16'),
        ([f'--target-dataset={workspace["data_gray"]}'], 'holds 16x16 images with 1 channel(s)'),
        ([f'--target-dataset={tmp_path / "missing.zip"}'], 'no such dataset'),
    ]
    for args, message in cases:
        r = run_python(['projector.py', f'--network={net}', f'--outdir={tmp_path / "out"}', '--num-steps=2', *args], env=env)
        assert message in _one_error_line(r), (args, r.stderr)
        assert not (tmp_path / 'out').exists()

    # A partial file (here: a finished file renamed as one) of another network or with other settings is refused.
    outdir = tmp_path / 'resume'
    outdir.mkdir()
    shutil.copy(uninterrupted['outdir'] / 'latents.npz', outdir / projector.PARTIAL_NAME)
    r = _project(workspace, outdir, net=workspace['other_net_pkl'])
    assert 'latents-partial.npz was made for another network' in _one_error_line(r)
    r = run_python(['projector.py', f'--network={net}', f'--target-dataset={data}', f'--outdir={outdir}',
                    '--num-steps=13', '--warm-steps=6', '--batch=4', '--seed=5'], env=env)
    assert 'was made with --num-steps=12, not 13' in _one_error_line(r)
    # A finished latents.npz of another network is not overwritten either.
    shutil.move(outdir / projector.PARTIAL_NAME, outdir / 'latents.npz')
    r = _project(workspace, outdir, net=workspace['other_net_pkl'])
    assert 'latents.npz was made for another network' in _one_error_line(r)
