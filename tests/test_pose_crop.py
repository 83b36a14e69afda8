"""Unit tests of training/pose.py: the crop rule, the cropped poses and the pose features, on the synthetic
signer of pose_fixtures.py."""

import io

import numpy as np
import pytest
from pose_format import Pose

import pose_fixtures as fx
from training import pose as pose_lib

# ----------------------------------------------------------------------------
# The crop rule.


def test_crop_box_is_centred_and_three_shoulder_widths():
    assert pose_lib.crop_box((50.0, 40.0), 10.0, (200, 200)) == pytest.approx((35.0, 25.0, 30.0))


@pytest.mark.parametrize('center, frame_size, shrinks', [
    ((12.0, 100.0), (200, 200), 5),     # Left edge: 3 * 0.95^5 is the first factor whose half side fits in 12 px.
    ((188.0, 100.0), (200, 200), 5),    # Right edge, mirrored.
    ((100.0, 10.0), (200, 25), 4),      # Bottom edge after the top clamp: 25 px rows need a side <= 25.
])
def test_crop_box_shrinks_by_0_95_until_it_fits(center, frame_size, shrinks):
    left, top, side = pose_lib.crop_box(center, 10.0, frame_size)
    assert side == pytest.approx(10.0 * 3 * 0.95 ** shrinks)
    assert left >= 0 and top >= 0 and left + side <= frame_size[0] and top + side <= frame_size[1]
    assert left == pytest.approx(center[0] - side / 2)  # Shrinking keeps the square centred across.


def test_crop_box_gives_up_below_0_65():
    # 30 shrinks reach 3 * 0.95^30 < 0.65, so the smallest square tried is 3 * 0.95^29 (0.678) shoulder widths.
    smallest = 10.0 * 3 * 0.95 ** 29
    box = pose_lib.crop_box((smallest / 2 + 0.01, 100.0), 10.0, (200, 200))
    assert box is not None and box[2] == pytest.approx(smallest)
    assert pose_lib.crop_box((smallest / 2 - 0.01, 100.0), 10.0, (200, 200)) is None
    assert pose_lib.crop_box((100.0, 100.0), 0.0, (200, 200)) is None  # Shoulders on top of each other.


def test_crop_box_moves_down_at_the_top_edge_instead_of_shrinking():
    assert pose_lib.crop_box((100.0, 5.0), 10.0, (200, 200)) == pytest.approx((85.0, 0.0, 30.0))


def test_select_frames_on_the_fixture():
    for layout in pose_lib.LAYOUTS:
        frames, boxes = pose_lib.select_frames(fx.make_pose(layout), layout, fx.FRAME_SIZE)
        assert frames.tolist() == list(fx.KEPT_FRAMES)
        box_of = dict(zip(frames.tolist(), boxes))
        assert box_of[fx.TOP_FRAME][1] == 0 and box_of[fx.TOP_FRAME][2] == pytest.approx(3 * fx.SHOULDER_WIDTH)
        assert box_of[fx.EDGE_FRAME][2] == pytest.approx(3 * 0.95 ** 11 * fx.SHOULDER_WIDTH)
        assert box_of[0][2] == pytest.approx(3 * fx.SHOULDER_WIDTH)


def test_select_frames_skips_a_frame_without_a_shoulder():
    pose = fx.make_pose('openpose')
    pose.body.confidence[1, 0, pose_lib.point_index(pose.header, 'pose_keypoints_2d', 'LShoulder')] = 0
    frames, _boxes = pose_lib.select_frames(pose, 'openpose', fx.FRAME_SIZE)
    assert 1 not in frames.tolist() and len(frames) == len(fx.KEPT_FRAMES) - 1

# ----------------------------------------------------------------------------
# Cropped poses.


def _point(pose, frame, layout, part):
    return pose.body.data[frame, 0, pose_lib.point_index(pose.header, *fx.PARTS[layout][part])].data


@pytest.mark.parametrize('layout', list(pose_lib.LAYOUTS))
def test_cropped_pose_points_land_on_the_drawn_discs(layout):
    resolution = 64
    pose = fx.make_pose(layout)
    video = fx.draw_frames()
    frames, boxes = pose_lib.select_frames(pose, layout, fx.FRAME_SIZE)
    cropped = pose_lib.crop_pose(pose, frames, boxes, resolution)
    colors = dict(right_shoulder=fx.RIGHT_SHOULDER_COLOR, left_shoulder=fx.LEFT_SHOULDER_COLOR,
                  right_wrist=fx.WRIST_COLOR, left_wrist=fx.WRIST_COLOR)
    for k, (frame, box) in enumerate(zip(frames, boxes)):
        image = pose_lib.crop_image(video[frame], box, resolution)
        assert image.shape == (resolution, resolution, 3)
        for part, color in colors.items():
            x, y = _point(cropped, k, layout, part)[:2]
            if not (0 <= x < resolution and 0 <= y < resolution):
                continue  # The wrists of the shrunk edge frame fall below the crop.
            pixel = image[int(y), int(x)].astype(int)
            assert np.abs(pixel - color).max() < 40, (layout, frame, part, pixel)


def test_cropped_pose_keeps_header_fps_and_maps_coordinates():
    resolution = 32
    pose = fx.make_pose('holistic')
    frames, boxes = pose_lib.select_frames(pose, 'holistic', fx.FRAME_SIZE)
    cropped = pose_lib.crop_pose(pose, frames, boxes, resolution)
    assert cropped.body.data.shape == (len(frames),) + pose.body.data.shape[1:]
    assert cropped.body.fps == pose.body.fps
    assert pose_lib.component_names(cropped.header) == pose_lib.component_names(pose.header)
    assert (cropped.header.dimensions.width, cropped.header.dimensions.height) == (resolution, resolution)
    np.testing.assert_array_equal(cropped.body.confidence, pose.body.confidence[frames])

    scale = resolution / boxes[:, 2]
    source = pose.body.data.data[frames, 0].astype(np.float64)
    expected_x = (source[..., 0] - boxes[:, :1]) * scale[:, None]
    expected_z = source[..., 2] * scale[:, None]
    present = pose.body.confidence[frames, 0] > 0
    np.testing.assert_allclose(cropped.body.data.data[:, 0, :, 0][present], expected_x[present], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(cropped.body.data.data[:, 0, :, 2][present], expected_z[present], rtol=1e-5, atol=1e-6)
    assert np.all(cropped.body.data.data[~(cropped.body.confidence > 0)] == 0)

    # The shoulders' midpoint of an uncropped, unclamped frame lands in the middle of the crop.
    right, left = _point(cropped, 0, 'holistic', 'right_shoulder'), _point(cropped, 0, 'holistic', 'left_shoulder')
    np.testing.assert_allclose((right[:2] + left[:2]) / 2, [resolution / 2] * 2, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(right[:2] - left[:2]), resolution / 3, atol=1e-4)


def test_cropped_pose_survives_a_file_round_trip(tmp_path):
    pose = fx.make_pose('openpose')
    frames, boxes = pose_lib.select_frames(pose, 'openpose', fx.FRAME_SIZE)
    cropped = pose_lib.crop_pose(pose, frames, boxes, 32)
    path = fx.write_pose(tmp_path / 'c.pose', cropped)
    again = pose_lib.read_pose(path)
    np.testing.assert_allclose(again.body.data.data, cropped.body.data.data)
    assert again.body.fps == cropped.body.fps and again.header.dimensions.width == 32


def test_concatenated_poses_keep_the_order_and_refuse_other_layouts():
    a, b = fx.make_pose('openpose'), fx.make_pose('openpose', fx.Track(fx.default_track().centers[:4], fx.FRAME_SIZE))
    joined = pose_lib.concatenate_poses([a, b], ['a.pose', 'b.pose'])
    assert joined.body.data.shape[0] == 16
    np.testing.assert_array_equal(joined.body.data.data[12:], b.body.data.data)
    with pytest.raises(pose_lib.PoseError, match="'h.pose' has other pose components than 'a.pose'"):
        pose_lib.concatenate_poses([a, fx.make_pose('holistic')], ['a.pose', 'h.pose'])

# ----------------------------------------------------------------------------
# Reading and layouts.


def test_read_pose_refuses_what_is_not_a_pose_file(tmp_path):
    for name, data in (('text.pose', b'this is not a pose file at all'), ('empty.pose', b''),
                       ('zeros.pose', bytes(40))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(pose_lib.PoseError, match=f"'{tmp_path / name}' is not a pose-format .pose file") as info:
            pose_lib.read_pose(tmp_path / name)
        assert '\n' not in str(info.value)
    buffer = io.BytesIO()
    fx.make_pose('holistic').write(buffer)
    (tmp_path / 'cut.pose').write_bytes(buffer.getvalue()[:-100])
    with pytest.raises(pose_lib.PoseError, match='cut.pose'):
        pose_lib.read_pose(tmp_path / 'cut.pose')


def test_layouts_and_shoulderless_files():
    assert pose_lib.pose_layout(fx.make_pose('holistic').header) == 'holistic'
    assert pose_lib.pose_layout(fx.make_pose('openpose').header) == 'openpose'
    with pytest.raises(pose_lib.PoseError, match=r"'x.pose' has no shoulders: its components \(BODY_X\)"):
        pose_lib.pose_layout(fx.shoulderless_pose().header, name='x.pose')

# ----------------------------------------------------------------------------
# Features.


def _feature(features, header, component, point):
    """The (x, y) feature of a point: its position among feature_points."""
    index = pose_lib.feature_points(header).index((component, point))
    return features[..., 2 * index : 2 * index + 2]


@pytest.mark.parametrize('layout, dim', [('holistic', 2 * (6 + 128 + 42)), ('openpose', 2 * (6 + 70 + 42))])
def test_features_dims_origin_and_scale(layout, dim):
    pose = fx.make_pose(layout)
    features = pose_lib.pose_features(pose)
    assert features.dtype == np.float32 and features.shape == (fx.NUM_FRAMES, dim) == (fx.NUM_FRAMES, pose_lib.feature_dim(layout))
    kept = list(fx.KEPT_FRAMES)
    right = _feature(features, pose.header, *fx.PARTS[layout]['right_shoulder'])[kept]
    left = _feature(features, pose.header, *fx.PARTS[layout]['left_shoulder'])[kept]
    np.testing.assert_allclose((right + left) / 2, 0, atol=1e-6)  # The shoulders' midpoint is the origin...
    np.testing.assert_allclose(np.linalg.norm(right - left, axis=1), 1, rtol=1e-6)  # ...their distance 1.
    elbow = _feature(features, pose.header, *fx.PARTS[layout]['right_elbow'])[0]
    np.testing.assert_allclose(elbow, [-9 / fx.SHOULDER_WIDTH, 10 / fx.SHOULDER_WIDTH], rtol=1e-5)


@pytest.mark.parametrize('layout', list(pose_lib.LAYOUTS))
def test_features_of_missing_points_are_zero_and_wrists_come_from_the_hands(layout):
    pose = fx.make_pose(layout)
    features = pose_lib.pose_features(pose)
    assert np.all(features[list(fx.NO_POSE_FRAMES)] == 0)
    left_hand = pose_lib.LAYOUTS[layout].hands[0]
    hand_columns = [2 * index + axis for index, (component, _point) in enumerate(pose_lib.feature_points(pose.header))
                    if component == left_hand for axis in (0, 1)]
    assert np.all(features[fx.NO_LEFT_HAND_FRAME, hand_columns] == 0)
    assert np.all(features[0, hand_columns] != 0)

    # The body's wrist is the hand's wrist where the hand was found (0.5 px to the right), its own where not.
    spec = pose_lib.LAYOUTS[layout]
    left_wrist = _feature(features, pose.header, spec.body, spec.arm_points[5])
    hand_wrist = _feature(features, pose.header, left_hand, spec.hand_wrist)
    np.testing.assert_allclose(left_wrist[0], hand_wrist[0])
    body_only = np.array(fx.part_positions(fx.default_track().centers[fx.NO_LEFT_HAND_FRAME])['left_wrist'])
    center = fx.default_track().centers[fx.NO_LEFT_HAND_FRAME]
    np.testing.assert_allclose(left_wrist[fx.NO_LEFT_HAND_FRAME], (body_only - center) / fx.SHOULDER_WIDTH, rtol=1e-5)


def test_features_do_not_change_with_the_crop():
    # Each frame is normalised by its own shoulders, as each crop is framed by them.
    pose = fx.make_pose('holistic')
    frames, boxes = pose_lib.select_frames(pose, 'holistic', fx.FRAME_SIZE)
    cropped = pose_lib.crop_pose(pose, frames, boxes, 256)
    np.testing.assert_allclose(pose_lib.pose_features(cropped), pose_lib.pose_features(pose)[frames], atol=1e-5)


def test_features_of_both_layouts_agree_on_the_arms():
    arms = {layout: pose_lib.pose_features(fx.make_pose(layout))[:, :12] for layout in pose_lib.LAYOUTS}
    np.testing.assert_allclose(arms['holistic'], arms['openpose'], atol=1e-6)


def test_pose_features_accepts_a_read_file(tmp_path):
    path = fx.write_pose(tmp_path / 'h.pose', fx.make_pose('holistic'))
    pose = Pose.read(open(path, 'rb').read())
    assert pose_lib.pose_features(pose).shape == (fx.NUM_FRAMES, pose_lib.feature_dim('holistic'))
