"""MediaPipe Holistic pose estimation (training/pose_estimation.py) and dataset_tool.py on videos without --pose.

The estimation tests skip without MediaPipe (requirements-pose.txt); the refusals without it always run, with
`import mediapipe` made to fail."""

import io
import json
import os
import sys
import zipfile

import numpy as np
import PIL.Image
import pytest

import pose_fixtures as fx
from helpers import REPO_ROOT, run_python
from training import pose as pose_lib
from training import pose_estimation

PERSON_FRAME_SIZE = (160, 128)  # Width, height: the portrait below fits, with room for the shoulder crop.
PERSON_FRAMES = 4


def _run_tool(*args, env=None):
    # dataset_tool.py imports no torch: a fresh interpreter starts quickly and inherits no runner's threads.
    return run_python(['dataset_tool.py'] + [str(arg) for arg in args], env=env, timeout=300, fresh=True)


@pytest.fixture
def mediapipe():
    pytest.importorskip('mediapipe', reason='MediaPipe is not installed (python3 -m pip install -r requirements.txt '
                        '-r requirements-pose.txt)')
    pose_estimation.check_available()


def _person_frames():
    """uint8 [PERSON_FRAMES, H, W, 3]: matplotlib's sample portrait of Grace Hopper (head and shoulders) on grey,
    a person MediaPipe finds, with the shoulders far enough from the edges for the crop rule."""
    matplotlib = pytest.importorskip('matplotlib')
    path = os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')
    if not os.path.isfile(path):
        pytest.skip("matplotlib's sample_data/grace_hopper.jpg is not installed")
    portrait = PIL.Image.open(path).convert('RGB').resize((102, 120), PIL.Image.Resampling.LANCZOS)
    width, height = PERSON_FRAME_SIZE
    frame = np.full([height, width, 3], fx.BACKGROUND, dtype=np.uint8)
    left = (width - portrait.width) // 2
    frame[:portrait.height, left:left + portrait.width] = np.asarray(portrait)
    return np.stack([frame] * PERSON_FRAMES)


def _assert_holistic(pose, frame_size, num_frames, fps):
    assert pose_lib.pose_layout(pose.header) == 'holistic'
    assert pose_lib.component_names(pose.header)[:4] == ['POSE_LANDMARKS', 'FACE_LANDMARKS', 'LEFT_HAND_LANDMARKS',
                                                         'RIGHT_HAND_LANDMARKS']
    assert (pose.header.dimensions.width, pose.header.dimensions.height) == frame_size
    assert pose.body.data.shape[:2] == (num_frames, 1) and pose.body.confidence.shape[:2] == (num_frames, 1)
    assert pose.body.fps == fps

# ----------------------------------------------------------------------------
# With MediaPipe.


def test_estimate_video_gives_a_holistic_pose_of_the_video(tmp_path, mediapipe):
    video = fx.write_video(tmp_path / 'figure.mp4', fx.draw_frames(), fps=12)
    pose = pose_estimation.estimate_video(video, progress=False)
    _assert_holistic(pose, fx.FRAME_SIZE, fx.NUM_FRAMES, 12)
    # Written and read back, it is the same pose (what dataset_tool.py saves beside a video).
    buffer = io.BytesIO()
    pose.write(buffer)
    again = pose_lib.Pose.read(buffer.getvalue())
    np.testing.assert_array_equal(again.body.confidence, pose.body.confidence)
    np.testing.assert_array_equal(np.asarray(again.body.data), np.asarray(pose.body.data))


def test_estimate_frames_finds_the_person(mediapipe):
    frames = _person_frames()
    pose = pose_estimation.estimate_frames(frames, fps=25, progress=False)
    _assert_holistic(pose, PERSON_FRAME_SIZE, PERSON_FRAMES, 25)
    right, left, present = pose_lib.shoulders(pose, 'holistic')
    assert present.all()
    assert (right[:, 0] < left[:, 0]).all()  # The person's right shoulder is on the image's left.
    kept, _boxes = pose_lib.select_frames(pose, 'holistic', PERSON_FRAME_SIZE)
    assert kept.tolist() == list(range(PERSON_FRAMES))


def test_dataset_tool_estimates_saves_and_reuses_the_poses(tmp_path, mediapipe):
    video = fx.write_video(tmp_path / 'person.mp4', _person_frames(), fps=25)
    saved = tmp_path / 'person.pose'
    result = _run_tool('--source', video, '--dest', tmp_path / 'first.zip', '--resolution', '32')
    assert result.returncode == 0, result.stderr
    assert f"Saved the estimated poses of '{video}' to '{saved}'" in result.stdout
    assert f'Wrote {PERSON_FRAMES} 32x32 RGB images' in result.stdout
    _assert_holistic(pose_lib.read_pose(saved), PERSON_FRAME_SIZE, PERSON_FRAMES, 25)
    assert sorted(os.listdir(tmp_path)) == ['first.zip', 'person.mp4', 'person.pose']  # No temporary file left.
    with zipfile.ZipFile(tmp_path / 'first.zip') as archive:
        index = json.loads(archive.read('poses.json'))
    assert index['layout'] == 'holistic' and index['frames'] == list(range(PERSON_FRAMES)) and index['fps'] == 25

    # A rerun reads the saved poses: nothing is estimated or rewritten, and the dataset is the same.
    before = os.stat(saved).st_mtime_ns
    result = _run_tool('--source', video, '--dest', tmp_path / 'second.zip', '--resolution', '32')
    assert result.returncode == 0, result.stderr
    assert 'estimated' not in result.stdout and os.stat(saved).st_mtime_ns == before
    with zipfile.ZipFile(tmp_path / 'first.zip') as first, zipfile.ZipFile(tmp_path / 'second.zip') as second:
        assert first.read('poses.pose') == second.read('poses.pose')


def test_dataset_tool_refuses_a_video_without_anybody(tmp_path, mediapipe):
    # The drawn figure is discs, not a person: MediaPipe finds nobody, so no frame has shoulders.
    folder = tmp_path / 'videos'
    folder.mkdir()
    fx.write_video(folder / 'figure.mp4', fx.draw_frames(), fps=12)
    result = _run_tool('--source', folder, '--dest', tmp_path / 'out.zip', '--resolution', '32')
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()  # MediaPipe's own logging is kept out of it.
    assert len(lines) == 1 and lines[0].startswith('Error: no frame survived the crop rule'), result.stderr
    assert not os.path.exists(tmp_path / 'out.zip')
    # The poses are complete all the same: kept beside the video for the next run.
    assert sorted(os.listdir(folder)) == ['figure.mp4', 'figure.pose']
    _assert_holistic(pose_lib.read_pose(folder / 'figure.pose'), fx.FRAME_SIZE, fx.NUM_FRAMES, 12)

# ----------------------------------------------------------------------------
# Without MediaPipe.


def _without_mediapipe(folder):
    """Environment variables under which `import mediapipe` fails, as where it is not installed."""
    blocker = folder / 'no-mediapipe'
    blocker.mkdir()
    (blocker / 'mediapipe.py').write_text("raise ImportError('No module named mediapipe (blocked by the test)')\n")
    return {'PYTHONPATH': os.pathsep.join([str(blocker), REPO_ROOT] + os.environ.get('PYTHONPATH', '').split(os.pathsep))}


@pytest.mark.parametrize('source', ['video', 'folder'])
def test_dataset_tool_without_mediapipe_names_the_install(tmp_path, source):
    videos = tmp_path / 'videos'
    videos.mkdir()
    video = fx.write_video(videos / 'clip.mp4', fx.draw_frames())
    result = _run_tool('--source', video if source == 'video' else videos, '--dest', tmp_path / 'out.zip',
                       env=_without_mediapipe(tmp_path))
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: video '{video}' has no poses"), result.stderr
    assert 'python3 -m pip install -r requirements.txt -r requirements-pose.txt' in lines[0]
    assert sorted(os.listdir(videos)) == ['clip.mp4'] and not os.path.exists(tmp_path / 'out.zip')


def test_check_available_names_the_install(monkeypatch):
    # None in sys.modules makes `import` raise ImportError, whether or not the module was imported before.
    monkeypatch.setitem(sys.modules, 'mediapipe', None)
    monkeypatch.setitem(sys.modules, 'pose_format.utils.holistic', None)
    with pytest.raises(pose_estimation.EstimationUnavailableError) as error:
        pose_estimation.check_available()
    message = str(error.value)
    assert '\n' not in message and pose_estimation.INSTALL_COMMAND in message and 'requirements-pose.txt' in message
    with pytest.raises(pose_estimation.EstimationUnavailableError):
        pose_estimation.estimate_frames(np.zeros([2, 8, 8, 3], np.uint8), fps=12)


@pytest.mark.parametrize('frames, fps', [(np.zeros([2, 8, 8, 3], np.float32), 12), (np.zeros([2, 8, 8], np.uint8), 12),
                                         (np.zeros([0, 8, 8, 3], np.uint8), 12), (np.zeros([2, 8, 8, 3], np.uint8), 0)])
def test_estimate_frames_refuses_bad_frames_before_needing_mediapipe(frames, fps):
    with pytest.raises(ValueError):
        pose_estimation.estimate_frames(frames, fps=fps)


def test_unreadable_video_is_one_line(tmp_path):
    (tmp_path / 'broken.mp4').write_bytes(b'not a video')
    with pytest.raises(pose_estimation.VideoError) as error:
        with pose_estimation.open_video(str(tmp_path / 'broken.mp4')) as video:
            next(video.frames)
    assert '\n' not in str(error.value) and 'broken.mp4' in str(error.value)
