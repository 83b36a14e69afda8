"""train_pose.py and its parts: the pose-to-latent network against torch's own LSTM, safe loading of its pickle,
the split by sequence, windows, exact resume, refusals, and (slow) that it learns where the image is a function
of the pose."""

import io
import os
import pickle

import numpy as np
import pytest
import torch

import legacy
import pose_training_fixtures as fixtures
from helpers import REPO_ROOT, run_python
from tool_networks import save_network_pkl, tiny_generator
from training import networks_pose
from training import pose as pose_lib
from training import pose_sequences

TINY = ['--layers=1', '--hidden=32', '--seq-len=8', '--batch=8', '--snap=2']


def tiny_model(**kwargs):
    torch.manual_seed(0)
    return networks_pose.PoseToLatent(**dict(dict(feature_dim=10, w_dim=8, num_ws=5, hidden=16, layers=2), **kwargs))


def reference_forward(model, features):
    """The same network with torch.nn.LSTM, its weights copied: the plain reference."""
    lstm = torch.nn.LSTM(model.hidden, model.hidden, num_layers=model.layers, batch_first=True)
    with torch.no_grad():
        for layer in range(model.layers):
            for name in ('weight_ih', 'weight_hh', 'bias_ih', 'bias_hh'):
                getattr(lstm, f'{name}_l{layer}').copy_(getattr(model, f'lstm{layer}_{name}'))
    x = (features - model.feature_mean) / model.feature_std
    x, _ = lstm(torch.nn.functional.linear(x, model.input_weight, model.input_bias))
    x = torch.nn.functional.linear(x, model.output_weight, model.output_bias)
    ws = model.w_mean + model.w_std * x.reshape(*features.shape[:2], model.w_layers, model.w_dim)
    return ws.expand(*features.shape[:2], model.num_ws, model.w_dim)


@pytest.mark.parametrize('w_plus', [False, True])
def test_network_matches_torch_lstm(w_plus):
    model = tiny_model(w_plus=w_plus)
    model.set_normalisation(torch.randn(50, 10) * 3 + 1, torch.randn(50, model.w_layers, 8) * 2)
    features = torch.randn(3, 7, 10)
    ws = model(features)
    assert ws.shape == (3, 7, 5, 8)
    torch.testing.assert_close(ws, reference_forward(model, features), rtol=1e-5, atol=1e-5)
    assert not torch.equal(ws[:, :, 0], ws[:, :, -1]) if w_plus else torch.equal(ws[:, :, 0], ws[:, :, -1])


def test_a_sequence_continues_across_calls():
    model = tiny_model()
    features = torch.randn(2, 9, 10)
    first, state = model(features[:, :4], return_state=True)
    torch.testing.assert_close(torch.cat([first, model(features[:, 4:], state=state)], 1), model(features))


def test_normalisation_ignores_constant_features():
    model = tiny_model()
    features = torch.randn(40, 10)
    features[:, 3] = 0  # A point never found: its spread is 0.
    model.set_normalisation(features, torch.randn(40, 1, 8))
    assert model.feature_std[3] == 1 and torch.all(model.feature_std > 0)
    assert torch.isfinite(model(features[None])).all()


def test_pose_model_pickle_is_rebuilt_without_running_its_code(capsys):
    model = tiny_model()
    model.set_normalisation(torch.randn(20, 10), torch.randn(20, 1, 8))
    data = pickle.dumps(dict(P=model, generator_sha256='ab', layout='openpose', fps=25.0))
    loaded = legacy.load_pose_model_pkl(io.BytesIO(data), trust_pickle=False)
    assert type(loaded['P']) is networks_pose.PoseToLatent and loaded['fps'] == 25.0
    features = torch.randn(1, 5, 10)
    assert torch.equal(loaded['P'](features), model(features))
    assert capsys.readouterr().err == ''
    G = tiny_generator()
    with pytest.raises(legacy.NetworkPickleError, match='not a pose model'):
        legacy.load_pose_model_pkl(io.BytesIO(pickle.dumps(dict(G=G, G_ema=G))), trust_pickle=False)

# ----------------------------------------------------------------------------
# Data.


def sequences_of(lengths, feature_dim=4):
    return [pose_sequences.Sequence(name=f's{i}', source=0, frames=np.arange(n), features=np.full([n, feature_dim], i, np.float32),
                                    ws=np.full([n, 1, 3], i, np.float32)) for i, n in enumerate(lengths)]


def test_split_keeps_whole_chunks_apart_and_is_seeded():
    sequences = sequences_of([100, 37])
    train, val = pose_sequences.split_by_sequence(sequences, seq_len=8, val_fraction=0.3, seed=1)
    assert len(train) + len(val) == 4 + 2 and len(val) == 2  # Chunks of 32 frames: 4 + 2 of them, 30% held out.
    key = {(chunk.name, tuple(chunk.frames)) for chunk in val}
    assert key.isdisjoint({(chunk.name, tuple(chunk.frames)) for chunk in train})
    assert sorted(len(chunk.frames) for chunk in train + val) == [4, 5, 32, 32, 32, 32]
    again = pose_sequences.split_by_sequence(sequences, seq_len=8, val_fraction=0.3, seed=1)[1]
    assert [chunk.name for chunk in again] == [chunk.name for chunk in val]
    with pytest.raises(pose_sequences.PoseDataError, match='smaller --seq-len'):
        pose_sequences.split_by_sequence(sequences_of([20]), seq_len=8, val_fraction=0.1, seed=0)


def test_windows_cover_every_frame_and_pad_short_chunks():
    chunks = sequences_of([20, 5])
    windows = pose_sequences.training_windows(chunks, seq_len=8)
    assert windows == [(0, 0, 8), (0, 4, 8), (0, 8, 8), (0, 12, 8), (1, 0, 5)]
    features, ws, mask = pose_sequences.collate(chunks, windows[-2:], 8)
    assert features.shape == (2, 8, 4) and ws.shape == (2, 8, 1, 3)
    assert mask.sum() == 13 and torch.all(features[1, 5:] == 0)
    error = pose_sequences.masked_mae(ws + 1, ws, mask)
    assert error.item() == pytest.approx(1.0)


def test_features_of_the_training_poses_follow_the_angles():
    angles = fixtures.smooth_angles(30, seed=0)
    features = pose_lib.pose_features(fixtures.moving_pose('openpose', angles))
    assert features.shape == (30, pose_lib.feature_dim('openpose'))
    assert np.all(features.std(axis=0)[4:12] > 0.05)  # Elbows and wrists move.

# ----------------------------------------------------------------------------
# The tool.


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('train_pose')
    G = tiny_generator(img_resolution=fixtures.RESOLUTION)
    net = save_network_pkl(G, root / 'net.pkl')
    clips = {f'clip{i}': fixtures.smooth_angles(48, seed=i) for i in range(3)}
    ws = fixtures.write_pose_dataset(root / 'data.zip', G, 'openpose', clips)
    latents = fixtures.write_latents(root / 'latents.npz', G, net, root / 'data.zip', ws)
    other = tiny_generator(img_resolution=fixtures.RESOLUTION, seed=1)
    other_net = save_network_pkl(other, root / 'other.pkl')
    other_ws = fixtures.write_pose_dataset(root / 'other.zip', G, 'openpose', {'x': fixtures.smooth_angles(40, 9)})
    return dict(root=root, G=G, net=net, data=str(root / 'data.zip'), latents=latents, other_net=other_net,
                other_data=str(root / 'other.zip'),
                other_latents=fixtures.write_latents(root / 'other.npz', G, net, root / 'other.zip', other_ws))


def train(workspace, outdir, *extra, data=None, latents=None, net=None):
    return run_python(['train_pose.py', f'--data={data or workspace["data"]}', f'--latents={latents or workspace["latents"]}',
                       f'--network={net or workspace["net"]}', f'--outdir={outdir}', *TINY, *extra])


def load_model(path):
    with open(path, 'rb') as f:
        return legacy.load_pose_model_pkl(f)


def test_resume_continues_exactly(workspace, tmp_path):
    whole = train(workspace, tmp_path / 'whole', '--epochs=4')
    assert whole.returncode == 0, whole.stderr
    first = train(workspace, tmp_path / 'parts', '--epochs=2')
    assert first.returncode == 0, first.stderr
    second = train(workspace, tmp_path / 'parts', '--epochs=4')
    assert second.returncode == 0, second.stderr
    assert 'Resuming after epoch 2' in second.stdout
    a, b = load_model(tmp_path / 'whole' / 'pose-model.pkl'), load_model(tmp_path / 'parts' / 'pose-model.pkl')
    for (name, x), y in zip(a['P'].state_dict().items(), b['P'].state_dict().values()):
        assert torch.equal(x, y), name
    assert a['generator_sha256'] == b['generator_sha256'] and a['layout'] == 'openpose' and a['fps'] == 12.0
    assert a['feature_dim'] == pose_lib.feature_dim('openpose') and a['epoch'] <= 4
    outdir = tmp_path / 'whole'
    assert sorted(p.name for p in outdir.glob('val-frames-*.png')) == ['val-frames-00002.png', 'val-frames-00004.png']
    assert (outdir / 'log.txt').read_text().count('epoch ') >= 4 and list(outdir.glob('events.out.tfevents.*'))
    assert not [p for p in outdir.iterdir() if '.tmp-' in p.name]


def _one_error_line(result):
    errors = [line for line in result.stderr.splitlines() if line.startswith('Error:')]
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result.stderr
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize('case,expected', [
    ('other_network', 'projected with another network'),
    ('other_dataset', 'projection of another dataset'),
    ('no_poses', 'has no poses.pose'),
    ('unpaired', 'one latents file per dataset'),
    ('too_short', 'smaller --seq-len'),
])
def test_bad_input_is_refused_in_one_line(workspace, tmp_path, case, expected):
    kwargs, extra = {}, []
    if case == 'other_network':
        kwargs = dict(net=workspace['other_net'])
    elif case == 'other_dataset':
        kwargs = dict(latents=workspace['other_latents'])
    elif case == 'no_poses':
        import zipfile
        plain = tmp_path / 'plain.zip'
        with zipfile.ZipFile(workspace['data']) as src, zipfile.ZipFile(plain, 'w') as dst:
            for name in src.namelist():
                if not name.startswith('poses.'):
                    dst.writestr(name, src.read(name))
        kwargs = dict(data=str(plain))
    elif case == 'unpaired':
        extra = [f'--data={workspace["other_data"]}']
    elif case == 'too_short':  # One clip of 40 frames: a single chunk of 4 x 16 frames.
        kwargs, extra = dict(data=workspace['other_data'], latents=workspace['other_latents']), ['--seq-len=16']
    result = train(workspace, tmp_path / 'run', '--epochs=1', *extra, **kwargs)
    assert expected in _one_error_line(result)
    assert not (tmp_path / 'run').exists()


def test_a_run_with_other_options_is_not_continued(workspace, tmp_path):
    assert train(workspace, tmp_path / 'run', '--epochs=1').returncode == 0
    result = train(workspace, tmp_path / 'run', '--epochs=2', '--hidden=16')
    assert 'another --hidden' in _one_error_line(result)

# ----------------------------------------------------------------------------


@pytest.mark.slow
def test_trained_model_beats_the_mean_latent_on_held_out_sequences(workspace, tmp_path):
    """Where the image is a function of the pose, the trained network's renders of unseen pose sequences are
    closer in pixels to the true frames than those of the mean latent, by a margin an untrained one misses."""
    G = workspace['G']
    clips = {f'clip{i}': fixtures.smooth_angles(96, seed=i) for i in range(6)}
    ws = fixtures.write_pose_dataset(tmp_path / 'data.zip', G, 'openpose', clips)
    latents = fixtures.write_latents(tmp_path / 'latents.npz', G, workspace['net'], tmp_path / 'data.zip', ws)
    result = run_python(['train_pose.py', f'--data={tmp_path / "data.zip"}', f'--latents={latents}',
                         f'--network={workspace["net"]}', f'--outdir={tmp_path / "run"}', '--layers=2', '--hidden=64',
                         '--seq-len=16', '--batch=8', '--epochs=60', '--snap=20', '--lr=3e-3'])
    assert result.returncode == 0, result.stderr
    print(result.stdout.splitlines()[-3:])
    trained = load_model(tmp_path / 'run' / 'pose-model.pkl')['P']
    untrained = networks_pose.PoseToLatent(**trained.init_kwargs)
    untrained.load_state_dict({k: v for k, v in trained.state_dict().items() if k.startswith(('feature_', 'w_'))},
                              strict=False)

    held_out = [fixtures.smooth_angles(64, seed=100 + i) for i in range(3)]
    errors = dict(trained=[], untrained=[], mean=[])
    for angles in held_out:
        truth = fixtures.render(G, fixtures.angles_to_ws(G, angles)).astype(np.float64)
        features = torch.from_numpy(pose_lib.pose_features(fixtures.moving_pose('openpose', angles)))[None]
        with torch.no_grad():
            for name, model in (('trained', trained), ('untrained', untrained)):
                rendered = fixtures.render(G, model.eval()(features)[0].numpy())
                errors[name].append(np.mean((rendered - truth) ** 2))
        mean_ws = np.broadcast_to(trained.w_mean.numpy()[0], [len(angles), G.num_ws, G.w_dim])
        errors['mean'].append(np.mean((fixtures.render(G, np.ascontiguousarray(mean_ws)) - truth) ** 2))
    trained_mse, untrained_mse, mean_mse = (float(np.mean(errors[k])) for k in ('trained', 'untrained', 'mean'))
    print(f'pixel MSE on held-out sequences: trained {trained_mse:.1f}, untrained {untrained_mse:.1f}, '
          f'mean latent {mean_mse:.1f}')
    assert trained_mse < 0.5 * mean_mse
    assert untrained_mse > 0.5 * mean_mse

# ----------------------------------------------------------------------------
# --synthetic: renders of G posed by MediaPipe (requirements-pose.txt).


def _synthetic(workspace, outdir, *extra, env=None):
    return run_python(['train_pose.py', '--synthetic=2', f'--network={workspace["net"]}', f'--outdir={outdir}', *TINY,
                       '--snap=1', '--epochs=1', *extra], env=env)


def test_synthetic_without_mediapipe_names_the_install(workspace, tmp_path):
    blocker = tmp_path / 'no-mediapipe'
    blocker.mkdir()
    (blocker / 'mediapipe.py').write_text("raise ImportError('No module named mediapipe (blocked by the test)')\n")
    env = {'PYTHONPATH': os.pathsep.join([str(blocker), REPO_ROOT] + os.environ.get('PYTHONPATH', '').split(os.pathsep))}
    line = _one_error_line(_synthetic(workspace, tmp_path / 'run', env=env))
    assert line.startswith('Error: --synthetic:') and 'pip install -r requirements.txt -r requirements-pose.txt' in line
    assert not (tmp_path / 'run').exists()


def test_synthetic_replaces_the_dataset(workspace, tmp_path):
    line = _one_error_line(_synthetic(workspace, tmp_path / 'run', f'--data={workspace["data"]}'))
    assert '--synthetic replaces --data' in line


def test_synthetic_pairs_train_and_are_reused(workspace, tmp_path):
    """MediaPipe, run on the tiny random generator's 16-pixel renders, reports a person in some of them (about a
    third, with mediapipe 0.10.21): enough for the whole mode to run."""
    pytest.importorskip('mediapipe', reason='MediaPipe is not installed (requirements-pose.txt)')
    first = _synthetic(workspace, tmp_path / 'run')
    assert first.returncode == 0, first.stderr
    assert 'Rendering 2 sequences of 32 frames' in first.stdout
    with np.load(tmp_path / 'run' / 'synthetic-data.npz') as data:
        assert 0 < len(data['ws']) < 64 and data['features'].shape[1] == pose_lib.feature_dim('holistic')
    model = load_model(tmp_path / 'run' / 'pose-model.pkl')
    assert model['layout'] == 'holistic' and model['training_options']['synthetic'] == 2
    again = _synthetic(workspace, tmp_path / 'run', '--epochs=2')
    assert again.returncode == 0, again.stderr
    assert 'Rendering' not in again.stdout and 'Resuming after epoch 1' in again.stdout
