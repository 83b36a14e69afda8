"""End-to-end tests of gen_video.py --pose: a pose-driven video is written from real .pose, network and pose-model
files and read back; bad inputs are refused in one line with nothing written."""

import pickle
import types

import imageio
import numpy as np
import pytest
import torch

import gen_video
import projector
from helpers import run_python
from pose_fixtures import KEPT_FRAMES, make_pose, write_pose
from pose_format.pose_header import PoseHeaderComponent
from tool_networks import save_network_pkl, tiny_generator
from training import networks_pose
from training import pose as pose_lib

FPS = 12.0  # make_pose's frame rate.


def save_pose_model(G, layout, path, feature_dim=None):
    """A pose-model pickle as train_pose.py writes it, with a small untrained network for G; returns (path, P)."""
    feature_dim = feature_dim or pose_lib.feature_dim(layout)
    torch.manual_seed(0)
    P = networks_pose.PoseToLatent(feature_dim=feature_dim, w_dim=G.w_dim, num_ws=G.num_ws, hidden=8, layers=1)
    data = dict(P=P.eval().requires_grad_(False), generator_sha256=projector.generator_fingerprint(G), network='x',
                layout=layout, fps=FPS, feature_dim=feature_dim, training_options={}, epoch=1, val_mae=0.0)
    with open(path, 'wb') as f:
        pickle.dump(data, f)
    return str(path), data['P']


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('gen_video_pose')
    G = tiny_generator(img_resolution=16)
    no_frames = make_pose('openpose')
    no_frames.body.confidence[:] = 0
    openpose_model, openpose_P = save_pose_model(G, 'openpose', root / 'openpose-model.pkl')
    holistic_model, holistic_P = save_pose_model(G, 'holistic', root / 'holistic-model.pkl')
    return types.SimpleNamespace(
        G=G, root=root,
        network=save_network_pkl(G, root / 'net.pkl'),
        other_network=save_network_pkl(tiny_generator(img_resolution=16, seed=1), root / 'other.pkl'),
        openpose=write_pose(root / 'openpose.pose', make_pose('openpose')),
        holistic=write_pose(root / 'holistic.pose', make_pose('holistic')),
        no_frames=write_pose(root / 'no-frames.pose', no_frames),
        openpose_model=openpose_model, openpose_P=openpose_P, holistic_model=holistic_model, holistic_P=holistic_P,
        narrow_model=save_pose_model(G, 'openpose', root / 'narrow-model.pkl', feature_dim=10)[0])


def read_video(path):
    """(frames uint8 [N, H, W, 3], fps) of a video file."""
    reader = imageio.get_reader(str(path))
    try:
        return np.stack([frame for frame in reader]), reader.get_meta_data()['fps']
    finally:
        reader.close()


def expected_frames(files, layout):
    """The frames the tool should render, computed here from the pose model before it was pickled. (Not loaded
    here: rebuilding it imports torch._dynamo, which sets TORCHINDUCTOR_CACHE_DIR, and run_python would then
    start a new runner, seconds of CPU.)"""
    P = getattr(files, f'{layout}_P')
    features = pose_lib.pose_features(pose_lib.read_pose(getattr(files, layout)))[list(KEPT_FRAMES)]
    with torch.no_grad():
        ws = P(torch.from_numpy(features)[None])[0]
        img = files.G.synthesis(ws, noise_mode='const', force_fp32=True)
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy().astype(np.float32)


def run_pose(files, output, layout='openpose', *extra):
    r = run_python(['gen_video.py', f'--network={files.network}', f'--pose={getattr(files, layout)}',
                    f'--pose-model={getattr(files, f"{layout}_model")}', f'--output={output}', *extra])
    assert r.returncode == 0, r.stderr
    return read_video(output)


def test_openpose_video_has_a_frame_per_kept_pose_frame(files, tmp_path):
    frames, fps = run_pose(files, tmp_path / 'signer.mp4')
    assert frames.shape == (len(KEPT_FRAMES), 16, 16, 3)
    assert fps == pytest.approx(FPS)
    assert [p.name for p in tmp_path.iterdir()] == ['signer.mp4']  # No temporary file left behind.
    # Lossy H.264 (4:2:0 chroma) keeps the frames close to the renders, not exact.
    errors = np.abs(frames.astype(np.float32) - expected_frames(files, 'openpose')).mean(axis=(1, 2, 3))
    assert errors.max() < 20, errors


def test_side_by_side_adds_the_skeleton(files, tmp_path):
    frames, fps = run_pose(files, tmp_path / 'both.mp4', 'openpose', '--side-by-side')
    assert frames.shape == (len(KEPT_FRAMES), 16, 2 * 16, 3) and fps == pytest.approx(FPS)
    errors = np.abs(frames[:, :, :16].astype(np.float32) - expected_frames(files, 'openpose')).mean(axis=(1, 2, 3))
    assert errors.max() < 20, errors
    skeletons = frames[:, :, 16:]
    assert (skeletons.reshape(len(frames), -1).max(axis=1) > 100).all()  # Something drawn in every frame...
    assert (skeletons < 40).mean() > 0.3  # ... on black.


def test_holistic_video(files, tmp_path):
    frames, fps = run_pose(files, tmp_path / 'holistic.mp4', 'holistic', '--side-by-side')
    assert frames.shape == (len(KEPT_FRAMES), 16, 2 * 16, 3) and fps == pytest.approx(FPS)
    assert (frames[:, :, 16:].reshape(len(frames), -1).max(axis=1) > 100).all()


def test_pose_latents_in_pieces_equal_one_pass():
    torch.manual_seed(1)
    P = networks_pose.PoseToLatent(feature_dim=6, w_dim=4, num_ws=3, hidden=8, layers=2).eval()
    features = np.random.RandomState(0).randn(11, 6).astype(np.float32)
    pieces = list(gen_video.pose_latents(P, features, torch.device('cpu'), piece=4))
    assert [len(piece) for piece in pieces] == [4, 4, 3]
    with torch.no_grad():
        whole = P(torch.from_numpy(features)[None])[0]
    torch.testing.assert_close(torch.cat(pieces), whole)


def test_skeleton_image():
    arm = PoseHeaderComponent('arm', ['a', 'b', 'c'], [(0, 1), (1, 2)], [(255, 0, 0)], 'XYC')
    world = PoseHeaderComponent('POSE_WORLD_LANDMARKS', ['a'], [], [], 'XYZC')
    xy = np.array([[4.5, 8.5], [28.5, 8.5], [28.5, 28.5], [16.5, 24.5]])
    image = gen_video.skeleton_image([arm, world], xy, np.array([0.9, 0.8, 0.0, 1.0]), 32)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert tuple(image[8, 16]) == (255, 0, 0)  # On the limb a-b, both of whose ends were found.
    assert image[18, 28].max() == 0  # On the limb b-c: c was not found.
    assert image[24, 16].max() == 0  # World landmarks are not pixels: not drawn.
    assert image[:, :, 1:].max() == 0 and (image[:, :, 0] > 0).mean() < 0.1


BAD_CASES = {
    'not a pose file': (dict(pose='garbage'), 'is not a pose-format .pose file'),
    'no frame kept': (dict(pose='no_frames'), 'no frame of'),
    'model of another generator': (dict(network='other_network'), 'trained for another generator than --network'),
    'network pickle as pose model': (dict(pose_model='network'), 'is not a pose model'),
    'layout mismatch': (dict(pose='holistic'), '--pose-model reads openpose poses but'),
    'other feature count': (dict(pose_model='narrow_model'), 'reads 10 pose features per frame'),
    'no pose model': (dict(pose_model=None), '--pose needs --pose-model'),
    'no pose': (dict(pose=None), '--pose-model needs --pose'),
    'seeds with pose': (dict(extra=['--seeds=0-3', '--trunc=0.5']), '--seeds, --trunc do not apply with --pose'),
    'class with pose': (dict(extra=['--class=0']), '--class does not apply with --pose'),
    'neither seeds nor pose': (dict(pose=None, pose_model=None), 'give --seeds=LIST'),
    'side by side without pose': (dict(pose=None, pose_model=None, extra=['--seeds=0', '--side-by-side']),
                                  '--side-by-side shows the skeleton of --pose'),
}


@pytest.mark.parametrize('case', list(BAD_CASES))
def test_bad_input_is_one_line_and_writes_nothing(files, tmp_path, case):
    changes, message = BAD_CASES[case]
    garbage = files.root / 'garbage.pose'
    garbage.write_bytes(np.random.RandomState(0).bytes(300))
    chosen = dict(dict(network='network', pose='openpose', pose_model='openpose_model', extra=[]), **changes)
    output = tmp_path / 'out' / 'video.mp4'
    args = ['gen_video.py', f'--network={getattr(files, chosen["network"])}', f'--output={output}', *chosen['extra']]
    if chosen['pose'] is not None:
        args.append(f'--pose={garbage if chosen["pose"] == "garbage" else getattr(files, chosen["pose"])}')
    if chosen['pose_model'] is not None:
        args.append(f'--pose-model={getattr(files, chosen["pose_model"])}')
    r = run_python(args)
    errors = [line for line in r.stderr.splitlines() if line.startswith('Error:')]
    assert r.returncode != 0 and 'Traceback' not in r.stderr, r.stderr
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert list(tmp_path.iterdir()) == []  # Not even the output folder.
