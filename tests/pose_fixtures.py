"""Synthetic signers for the pose tests: a skeleton moving over the frames, stored as a pose-format .pose file in
the MediaPipe Holistic or OpenPose layout, and a small video of the same figure (a red disc on the right
shoulder, a green one on the left, blue ones on the wrists), so that a crop can be checked against its pose."""

import copy
import dataclasses

import imageio
import numpy as np
import numpy.ma as ma
from pose_format import Pose
from pose_format.numpy import NumPyPoseBody
from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions
from pose_format.utils.openpose import OpenPose_Components

FRAME_SIZE = (96, 64)               # Width, height of the video.
SHOULDER_WIDTH = 14.0               # Pixels: a 3x crop square is 42 pixels, inside the 64-pixel height.
NUM_FRAMES = 12
NO_POSE_FRAMES = (3, 7)             # Every confidence 0 (the estimator found nobody): skipped.
TOP_FRAME = 5                       # Shoulders high up: the full-size square is moved down to the top edge.
EDGE_FRAME = 9                      # Near the left edge: the square shrinks (factor 3 * 0.95^11) but fits.
LOST_FRAME = 10                     # At the very edge: the factor would fall below 0.65, skipped.
KEPT_FRAMES = tuple(frame for frame in range(NUM_FRAMES) if frame not in NO_POSE_FRAMES + (LOST_FRAME,))
NO_LEFT_HAND_FRAME = 2              # The left hand is not found (zero confidence): features 0 there.

RIGHT_SHOULDER_COLOR = (230, 40, 40)
LEFT_SHOULDER_COLOR = (40, 210, 40)
WRIST_COLOR = (40, 40, 230)
BACKGROUND = 128
DISC_RADIUS = 3.0

# MediaPipe's landmark names (its PoseLandmark and HandLandmark enums, in index order).
HOLISTIC_BODY_POINTS = [
    'NOSE', 'LEFT_EYE_INNER', 'LEFT_EYE', 'LEFT_EYE_OUTER', 'RIGHT_EYE_INNER', 'RIGHT_EYE', 'RIGHT_EYE_OUTER',
    'LEFT_EAR', 'RIGHT_EAR', 'MOUTH_LEFT', 'MOUTH_RIGHT', 'LEFT_SHOULDER', 'RIGHT_SHOULDER', 'LEFT_ELBOW',
    'RIGHT_ELBOW', 'LEFT_WRIST', 'RIGHT_WRIST', 'LEFT_PINKY', 'RIGHT_PINKY', 'LEFT_INDEX', 'RIGHT_INDEX',
    'LEFT_THUMB', 'RIGHT_THUMB', 'LEFT_HIP', 'RIGHT_HIP', 'LEFT_KNEE', 'RIGHT_KNEE', 'LEFT_ANKLE', 'RIGHT_ANKLE',
    'LEFT_HEEL', 'RIGHT_HEEL', 'LEFT_FOOT_INDEX', 'RIGHT_FOOT_INDEX']
HOLISTIC_HAND_POINTS = [
    'WRIST', 'THUMB_CMC', 'THUMB_MCP', 'THUMB_IP', 'THUMB_TIP', 'INDEX_FINGER_MCP', 'INDEX_FINGER_PIP',
    'INDEX_FINGER_DIP', 'INDEX_FINGER_TIP', 'MIDDLE_FINGER_MCP', 'MIDDLE_FINGER_PIP', 'MIDDLE_FINGER_DIP',
    'MIDDLE_FINGER_TIP', 'RING_FINGER_MCP', 'RING_FINGER_PIP', 'RING_FINGER_DIP', 'RING_FINGER_TIP', 'PINKY_MCP',
    'PINKY_PIP', 'PINKY_DIP', 'PINKY_TIP']

# The points drawn or checked, per layout: (component, point) of each named part of the figure.
PARTS = {
    'holistic': dict(right_shoulder=('POSE_LANDMARKS', 'RIGHT_SHOULDER'), left_shoulder=('POSE_LANDMARKS', 'LEFT_SHOULDER'),
                     right_elbow=('POSE_LANDMARKS', 'RIGHT_ELBOW'), left_elbow=('POSE_LANDMARKS', 'LEFT_ELBOW'),
                     right_wrist=('POSE_LANDMARKS', 'RIGHT_WRIST'), left_wrist=('POSE_LANDMARKS', 'LEFT_WRIST'),
                     nose=('POSE_LANDMARKS', 'NOSE'), right_hip=('POSE_LANDMARKS', 'RIGHT_HIP'),
                     left_hip=('POSE_LANDMARKS', 'LEFT_HIP')),
    'openpose': dict(right_shoulder=('pose_keypoints_2d', 'RShoulder'), left_shoulder=('pose_keypoints_2d', 'LShoulder'),
                     right_elbow=('pose_keypoints_2d', 'RElbow'), left_elbow=('pose_keypoints_2d', 'LElbow'),
                     right_wrist=('pose_keypoints_2d', 'RWrist'), left_wrist=('pose_keypoints_2d', 'LWrist'),
                     nose=('pose_keypoints_2d', 'Nose'), right_hip=('pose_keypoints_2d', 'RHip'),
                     left_hip=('pose_keypoints_2d', 'LHip')),
}
FACE = {'holistic': 'FACE_LANDMARKS', 'openpose': 'face_keypoints_2d'}
HANDS = {'holistic': ('LEFT_HAND_LANDMARKS', 'RIGHT_HAND_LANDMARKS'),
         'openpose': ('hand_left_keypoints_2d', 'hand_right_keypoints_2d')}

# ----------------------------------------------------------------------------


def _component(name, points, point_format):
    return PoseHeaderComponent(name, list(points), [], [], point_format)


def holistic_components():
    """The components of a pose-format Holistic file (its own constructor needs mediapipe installed)."""
    return [_component('POSE_LANDMARKS', HOLISTIC_BODY_POINTS, 'XYZC'),
            _component('FACE_LANDMARKS', [str(i) for i in range(468)], 'XYZC'),
            _component('LEFT_HAND_LANDMARKS', HOLISTIC_HAND_POINTS, 'XYZC'),
            _component('RIGHT_HAND_LANDMARKS', HOLISTIC_HAND_POINTS, 'XYZC'),
            _component('POSE_WORLD_LANDMARKS', HOLISTIC_BODY_POINTS, 'XYZC')]


def components(layout):
    return holistic_components() if layout == 'holistic' else copy.deepcopy(OpenPose_Components)


def _index(header, component, point):
    offset = 0
    for entry in header.components:
        if entry.name == component:
            return offset + entry.points.index(point)
        offset += len(entry.points)
    raise KeyError(component)


def _component_range(header, component):
    offset = 0
    for entry in header.components:
        if entry.name == component:
            return range(offset, offset + len(entry.points))
        offset += len(entry.points)
    raise KeyError(component)

# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Track:
    """Where the figure is in each frame: the shoulders' midpoint (x, y) in pixels."""
    centers: np.ndarray     # float64 [frames, 2]
    frame_size: tuple       # (width, height)


def default_track(num_frames=NUM_FRAMES):
    """A figure swaying around the middle of the frame, with the special frames listed at the top."""
    frames = np.arange(num_frames)
    centers = np.stack([48 + 6 * np.sin(frames * 0.7), 30 + 2 * np.cos(frames * 0.5)], axis=1)
    centers[frames == TOP_FRAME] = (50.0, 12.0)
    centers[frames == EDGE_FRAME] = (12.0, 30.0)
    centers[frames == LOST_FRAME] = (4.0, 30.0)
    return Track(centers=centers, frame_size=FRAME_SIZE)


def part_positions(center):
    """{part: (x, y)} of the figure whose shoulders' midpoint is `center` (the signer's right on the image left)."""
    x, y = center
    half = SHOULDER_WIDTH / 2
    return dict(right_shoulder=(x - half, y), left_shoulder=(x + half, y),
                right_elbow=(x - half - 2, y + 10), left_elbow=(x + half + 2, y + 10),
                right_wrist=(x - half + 3, y + 8), left_wrist=(x + half - 3, y + 8),
                nose=(x, y - 12), right_hip=(x - half + 2, y + 26), left_hip=(x + half - 2, y + 26))


def make_pose(layout, track=None, fps=12.0):
    """A one-person Pose following `track`: named parts placed as part_positions says, the face on an ellipse
    above the shoulders, each hand a fan of points around its wrist, z (holistic) a small ramp."""
    track = track or default_track()
    width, height = track.frame_size
    header = PoseHeader(0.2, PoseHeaderDimensions(width, height, 1 if layout == 'holistic' else 0),
        components(layout))
    num_frames = len(track.centers)
    dims = header.num_dims()
    data = np.zeros([num_frames, 1, header.total_points(), dims], dtype=np.float32)
    confidence = np.zeros([num_frames, 1, header.total_points()], dtype=np.float32)
    hand_offsets = np.stack([np.cos(np.linspace(-2.5, -0.6, 21)), np.sin(np.linspace(-2.5, -0.6, 21))], 1) * 3
    for frame, center in enumerate(track.centers):
        parts = part_positions(center)
        for part, (component, point) in PARTS[layout].items():
            index = _index(header, component, point)
            data[frame, 0, index, :2] = parts[part]
            confidence[frame, 0, index] = 0.9
        face = _component_range(header, FACE[layout])
        angles = np.linspace(0, 2 * np.pi, len(face), endpoint=False)
        data[frame, 0, face, 0] = center[0] + 5 * np.cos(angles)
        data[frame, 0, face, 1] = center[1] - 12 + 6 * np.sin(angles)
        confidence[frame, 0, face] = 0.8
        for hand, wrist in zip(HANDS[layout], ('left_wrist', 'right_wrist')):
            points = _component_range(header, hand)
            # The hand model's wrist sits half a pixel from the body model's: the features take the hand's.
            data[frame, 0, points, :2] = np.array(parts[wrist]) + (0.5, 0) + hand_offsets
            confidence[frame, 0, points] = 0.7
        if dims == 3:
            data[frame, 0, :, 2] = 0.01 * frame
    confidence[[frame for frame in NO_POSE_FRAMES if frame < num_frames]] = 0
    if num_frames > NO_LEFT_HAND_FRAME:
        confidence[NO_LEFT_HAND_FRAME, 0, _component_range(header, HANDS[layout][0])] = 0
    data[confidence == 0] = 0
    body = NumPyPoseBody(fps=fps, data=ma.masked_array(data, mask=np.repeat((confidence == 0)[..., None], dims, -1)),
        confidence=confidence)
    return Pose(header, body)


def shoulderless_pose(num_frames=4):
    """A valid .pose whose only component has no shoulders (an unknown layout)."""
    header = PoseHeader(0.2, PoseHeaderDimensions(*FRAME_SIZE), [_component('BODY_X', ['A', 'B'], 'XYC')])
    data = np.ones([num_frames, 1, 2, 2], dtype=np.float32)
    return Pose(header, NumPyPoseBody(fps=12.0, data=data, confidence=np.ones([num_frames, 1, 2], np.float32)))


def draw_frames(track=None):
    """uint8 [frames, H, W, 3]: grey background, the shoulder and wrist discs of the figure in each frame."""
    track = track or default_track()
    width, height = track.frame_size
    ys, xs = np.mgrid[0:height, 0:width] + 0.5  # Pixel centres, in the poses' continuous coordinates.
    frames = np.full([len(track.centers), height, width, 3], BACKGROUND, dtype=np.uint8)
    for frame, center in enumerate(track.centers):
        parts = part_positions(center)
        for part, color in (('right_shoulder', RIGHT_SHOULDER_COLOR), ('left_shoulder', LEFT_SHOULDER_COLOR),
                            ('right_wrist', WRIST_COLOR), ('left_wrist', WRIST_COLOR)):
            x, y = parts[part]
            frames[frame][(xs - x) ** 2 + (ys - y) ** 2 <= DISC_RADIUS ** 2] = color
    return frames


def write_pose(path, pose):
    with open(path, 'wb') as f:
        pose.write(f)
    return str(path)


def write_video(path, frames, fps=12):
    """An H.264 video of `frames`, at high quality and full chroma so that the discs keep their colours."""
    imageio.mimwrite(str(path), list(frames), fps=fps, codec='libx264', quality=10, pixelformat='yuv444p',
        macro_block_size=1)
    return str(path)


def write_clip(folder, name, layout, track=None, video_frames=None):
    """NAME.mp4 and NAME.pose in `folder`; video_frames cuts the video short. Returns (video, pose) paths."""
    track = track or default_track()
    frames = draw_frames(track)[:video_frames]
    video = write_video(folder / f'{name}.mp4', frames)
    pose = write_pose(folder / f'{name}.pose', make_pose(layout, track))
    return video, pose
