"""End-to-end tests of dataset_tool.py on videos with poses (--pose): run as a subprocess on the synthetic signer
of pose_fixtures.py."""

import io
import json
import os
import zipfile

import numpy as np
import PIL.Image
import pytest

import pose_fixtures as fx
from helpers import run_python
from training import pose as pose_lib
from training.dataset import ImageFolderDataset


def _run_tool(*args):
    return run_python(['dataset_tool.py'] + [str(arg) for arg in args], timeout=120)


def _read_pose_dataset(path):
    """(images in file-name order, Pose of poses.pose, poses.json) of a tool-written zip."""
    with zipfile.ZipFile(path) as archive:
        names = sorted(name for name in archive.namelist() if name.endswith('.png'))
        images = [np.asarray(PIL.Image.open(io.BytesIO(archive.read(name)))) for name in names]
        poses = pose_lib.Pose.read(archive.read('poses.pose'))
        index = json.loads(archive.read('poses.json'))
        assert set(archive.namelist()) == set(names) | {'dataset.json', 'poses.pose', 'poses.json'}
    assert names == [f'00000/img{idx:08d}.png' for idx in range(len(names))]
    return images, poses, index


def _assert_nothing_written(folder, dest_name):
    assert not os.path.exists(os.path.join(folder, dest_name))
    assert [name for name in os.listdir(folder) if '.tmp-' in name] == []


@pytest.mark.parametrize('layout', list(pose_lib.LAYOUTS))
def test_video_and_pose_to_zip(tmp_path, layout):
    video, pose = fx.write_clip(tmp_path, 'clip', layout)
    result = _run_tool('--source', video, '--pose', pose, '--dest', tmp_path / 'out.zip', '--resolution', '32x32')
    assert result.returncode == 0, result.stderr
    kept = len(fx.KEPT_FRAMES)
    assert f'Wrote {kept} 32x32 RGB images' in result.stdout and f'kept {kept} of {fx.NUM_FRAMES}' in result.stdout

    images, poses, index = _read_pose_dataset(tmp_path / 'out.zip')
    assert len(images) == kept and images[0].shape == (32, 32, 3)
    assert poses.body.data.shape[0] == kept and poses.body.fps == 12
    assert (poses.header.dimensions.width, poses.header.dimensions.height) == (32, 32)
    assert index == {'layout': layout, 'fps': 12.0, 'frames': list(fx.KEPT_FRAMES),
                     'clips': [{'name': 'clip', 'start': 0, 'stop': kept, 'fps': 12.0}]}

    # Image k shows the red disc where pose frame k puts the right shoulder (H.264 blurs it a little).
    shoulder = pose_lib.point_index(poses.header, *fx.PARTS[layout]['right_shoulder'])
    for image, point in zip(images, poses.body.data.data[:, 0, shoulder]):
        red, green, blue = image[int(point[1]), int(point[0])].astype(int)
        assert red > green + 80 and red > blue + 80, (red, green, blue)

    # Training reads it like any dataset; the pose files beside the images are not taken for images.
    dataset = ImageFolderDataset(str(tmp_path / 'out.zip'))
    assert len(dataset) == kept and dataset.resolution == 32


def test_folder_of_pairs_and_a_separate_pose_folder(tmp_path):
    videos = tmp_path / 'videos'
    videos.mkdir()
    short = fx.Track(fx.default_track().centers[:3], fx.FRAME_SIZE)  # Frames 0-2 of the default track: all kept.
    fx.write_clip(videos, 'b', 'openpose')
    fx.write_clip(videos, 'a', 'openpose', track=short)

    result = _run_tool('--source', videos, '--dest', tmp_path / 'pairs.zip', '--resolution', '32')
    assert result.returncode == 0, result.stderr
    images, poses, index = _read_pose_dataset(tmp_path / 'pairs.zip')
    kept = len(fx.KEPT_FRAMES)
    assert len(images) == poses.body.data.shape[0] == 3 + kept
    assert index['clips'] == [{'name': 'a', 'start': 0, 'stop': 3, 'fps': 12.0},
                              {'name': 'b', 'start': 3, 'stop': 3 + kept, 'fps': 12.0}]
    assert index['frames'] == [0, 1, 2] + list(fx.KEPT_FRAMES)
    # Clip b's frames follow clip a's, in the pose file too.
    alone = pose_lib.crop_pose(fx.make_pose('openpose'), *pose_lib.select_frames(fx.make_pose('openpose'), 'openpose',
                               fx.FRAME_SIZE), 32)
    np.testing.assert_allclose(poses.body.data.data[3:], alone.body.data.data, atol=1e-4)

    # The poses may lie in a folder of their own.
    poses_dir = tmp_path / 'poses'
    poses_dir.mkdir()
    for name in ('a', 'b'):
        os.replace(videos / f'{name}.pose', poses_dir / f'{name}.pose')
    result = _run_tool('--source', videos, '--pose', poses_dir, '--dest', tmp_path / 'apart.zip', '--resolution', '32')
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(tmp_path / 'apart.zip') as apart, zipfile.ZipFile(tmp_path / 'pairs.zip') as pairs:
        assert apart.read('poses.json') == pairs.read('poses.json')
        assert apart.read('poses.pose') == pairs.read('poses.pose')


def test_single_video_without_pose_option_reads_the_pose_beside_it(tmp_path):
    video, pose = fx.write_clip(tmp_path, 'clip', 'openpose')
    before = os.path.getmtime(pose)
    for dest, extra in (('given.zip', ['--pose', pose]), ('beside.zip', [])):
        result = _run_tool('--source', video, *extra, '--dest', tmp_path / dest, '--resolution', '32')
        assert result.returncode == 0, result.stderr
        assert 'estimated' not in result.stdout
    with zipfile.ZipFile(tmp_path / 'given.zip') as given, zipfile.ZipFile(tmp_path / 'beside.zip') as beside:
        assert given.read('poses.pose') == beside.read('poses.pose')
    assert os.path.getmtime(pose) == before

# ----------------------------------------------------------------------------
# Refusals: one line, non-zero exit, nothing written.


def _bad_not_a_pose(folder):
    video, _pose = fx.write_clip(folder, 'v', 'holistic')
    (folder / 'fake.pose').write_bytes(b'no pose here')
    return ['--source', video, '--pose', folder / 'fake.pose'], "is not a pose-format .pose file"


def _bad_short_video(folder):
    video, pose = fx.write_clip(folder, 'v', 'holistic', video_frames=8)
    return ['--source', video, '--pose', pose], 'has 8 frames but its pose file'


def _bad_shoulderless(folder):
    video, _pose = fx.write_clip(folder, 'v', 'openpose')
    pose = fx.write_pose(folder / 'x.pose', fx.shoulderless_pose())
    return ['--source', video, '--pose', pose], 'has no shoulders'


def _bad_nothing_survives(folder):
    edge = fx.Track(np.tile([[4.0, 30.0]], (fx.NUM_FRAMES, 1)), fx.FRAME_SIZE)  # Always at the very edge.
    video, pose = fx.write_clip(folder, 'v', 'openpose', track=edge)
    return ['--source', video, '--pose', pose], 'no frame survived the crop rule'


@pytest.mark.parametrize('make_case', [_bad_not_a_pose, _bad_short_video, _bad_shoulderless, _bad_nothing_survives],
                         ids=lambda make_case: make_case.__name__[5:])
def test_bad_input_is_refused_in_one_line(tmp_path, make_case):
    args, expected = make_case(tmp_path)
    result = _run_tool(*args, '--dest', tmp_path / 'out.zip', '--resolution', '32')
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('Error: ') and expected in lines[0], result.stderr
    _assert_nothing_written(tmp_path, 'out.zip')
