"""The pose-to-video pipeline end to end at 32 pixels, each step a subprocess on real files: a synthetic signer
(video + .pose) -> dataset_tool.py --pose -> train.py (StyleGAN3-R, a few images) -> projector.py
--target-dataset -> train_pose.py -> gen_video.py --pose, whose video has a frame per kept pose frame."""

import imageio
import numpy as np
import pytest

import pose_fixtures
from helpers import run_python
from metric_standins import write_standin_detectors
from test_train import TINY as TINY_TRAIN
from training import pose as pose_lib

NUM_FRAMES = 44


def _ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


@pytest.mark.parametrize('layout', ['openpose', 'holistic'])
def test_pose_pipeline_end_to_end(tmp_path, layout):
    track = pose_fixtures.default_track(num_frames=NUM_FRAMES)
    video, pose_path = pose_fixtures.write_clip(tmp_path, 'signer', layout, track)
    data = tmp_path / 'signer-32x32.zip'
    _ok(run_python(['dataset_tool.py', f'--source={video}', f'--pose={pose_path}', f'--dest={data}',
                    '--resolution=32x32']))

    runs = tmp_path / 'runs'
    _ok(run_python(['train.py', f'--outdir={runs}', '--cfg=stylegan3-r', f'--data={data}', '--kimg=0.004',
                    '--aug=noaug', *TINY_TRAIN]))
    network = sorted(runs.glob('*/network-snapshot-*.pkl'))[-1]

    _, vgg16 = write_standin_detectors(tmp_path)
    projection = tmp_path / 'proj'
    _ok(run_python(['projector.py', f'--network={network}', f'--target-dataset={data}', f'--outdir={projection}',
                    '--num-steps=4', '--warm-steps=2', '--batch=16'], env=dict(STYLEGAN_VGG16_PKL=str(vgg16))))

    pose_run = tmp_path / 'pose-run'
    _ok(run_python(['train_pose.py', f'--data={data}', f'--latents={projection / "latents.npz"}', f'--network={network}',
                    f'--outdir={pose_run}', '--layers=1', '--hidden=16', '--seq-len=4', '--batch=4', '--epochs=2']))

    output = tmp_path / 'signer.mp4'
    _ok(run_python(['gen_video.py', f'--network={network}', f'--pose={pose_path}',
                    f'--pose-model={pose_run / "pose-model.pkl"}', f'--output={output}', '--side-by-side']))
    pose = pose_lib.read_pose(pose_path)
    kept, _ = pose_lib.select_frames(pose, layout, pose_fixtures.FRAME_SIZE)
    reader = imageio.get_reader(str(output))
    try:
        frames = [frame for frame in reader]
        fps = reader.get_meta_data()['fps']
    finally:
        reader.close()
    assert len(frames) == len(kept) and len(kept) < NUM_FRAMES
    assert frames[0].shape == (32, 64, 3) and fps == pytest.approx(pose.body.fps)
    assert np.ptp(np.stack(frames)[:, :, 32:]) > 0  # The skeleton is drawn.
