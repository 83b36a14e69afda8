"""Poses of a signer (pose-format `.pose` files) for pose-to-video datasets: reading them, the shoulder-centred
square crop of each frame, the poses re-expressed in the crop's pixels, and the per-frame pose features a
pose-to-latent network reads.

Two layouts are understood: MediaPipe Holistic ('holistic': POSE_LANDMARKS, FACE_LANDMARKS, LEFT_ and
RIGHT_HAND_LANDMARKS, ...) and OpenPose ('openpose': pose_keypoints_2d, face_keypoints_2d, hand_left_ and
hand_right_keypoints_2d). Coordinates are pixels of the video the pose was estimated on; x and y are continuous
(pixel i covers [i, i + 1)), as PIL's resize box reads them. Only the first person of a frame drives the crop.

The crop rule, per frame (`crop_box`):
1. a frame whose confidences sum to 0, or whose first person lacks either shoulder, is skipped;
2. the square is centred on the shoulders' midpoint, its side FACTOR x the shoulder width (FACTOR = 3);
3. a square sticking out above the frame is moved down until its top edge is at 0 (not shrunk);
4. if it still leaves the frame (left, right or bottom), FACTOR *= 0.95 and the square is rebuilt from step 2;
5. once FACTOR falls below 0.65, the frame is skipped.

Imports no torch, so that dataset_tool.py starts quickly.
"""

import dataclasses
import functools

import numpy as np
import numpy.ma as ma
import PIL.Image
from pose_format import Pose
from pose_format.numpy import NumPyPoseBody
from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions
from pose_format.utils.generic import reduce_holistic

CROP_FACTOR = 3.0           # Side of the crop square, in shoulder widths, before any shrinking.
CROP_SHRINK = 0.95          # Factor applied to CROP_FACTOR each time the square leaves the frame.
CROP_MIN_FACTOR = 0.65      # Below this the figure is too close to the edge to frame: the frame is skipped.

# ----------------------------------------------------------------------------


class PoseError(ValueError):
    """A pose file or pose that cannot be used; the message is one line and names the file where it can."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where a layout keeps the points the crop and the features need (component and point names)."""
    name:       str     # 'holistic' or 'openpose', as stored in poses.json.
    body:       str     # Component with shoulders, elbows and wrists.
    arm_points: tuple   # Right shoulder, left shoulder, right elbow, left elbow, right wrist, left wrist.
    face:       str     # Component of the face points.
    hands:      tuple   # (left hand, right hand) components.
    hand_wrist: str     # The wrist point inside a hand component.


LAYOUTS = {
    'holistic': Layout(name='holistic', body='POSE_LANDMARKS',
        arm_points=('RIGHT_SHOULDER', 'LEFT_SHOULDER', 'RIGHT_ELBOW', 'LEFT_ELBOW', 'RIGHT_WRIST', 'LEFT_WRIST'),
        face='FACE_LANDMARKS', hands=('LEFT_HAND_LANDMARKS', 'RIGHT_HAND_LANDMARKS'), hand_wrist='WRIST'),
    'openpose': Layout(name='openpose', body='pose_keypoints_2d',
        arm_points=('RShoulder', 'LShoulder', 'RElbow', 'LElbow', 'RWrist', 'LWrist'),
        face='face_keypoints_2d', hands=('hand_left_keypoints_2d', 'hand_right_keypoints_2d'), hand_wrist='BASE'),
}

HOLISTIC_FACE_POINTS = 468  # MediaPipe's face mesh (478 with the irises, which the contour leaves out).
OPENPOSE_FACE_POINTS = 70   # OpenPose's face: 68 landmarks and the two pupils, already a contour.
HAND_POINTS = 21            # Both layouts.

# ----------------------------------------------------------------------------
# Reading and layouts.


def read_pose(path):
    """The Pose in the file `path`; PoseError when it cannot be read or is not a pose-format file."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise PoseError(f"cannot read pose file '{path}': {err.strerror or err}") from None
    try:
        pose = Pose.read(data)
    except Exception as err:  # pylint: disable=broad-except
        # pose-format parses with struct and numpy and says nothing of its own: any failure means "not a pose".
        raise PoseError(f"'{path}' is not a pose-format .pose file ({type(err).__name__})") from None
    _check_shapes(pose, path)
    return pose


def _check_shapes(pose, path):
    data, confidence = pose.body.data, pose.body.confidence
    points = pose.header.total_points()
    if data.ndim != 4 or data.shape[2] != points or data.shape[3] < 2 or confidence.shape != data.shape[:3]:
        raise PoseError(f"'{path}' is not a usable .pose file: its body has shape {list(data.shape)} for "
            f"{points} points")


def component_names(header):
    return [component.name for component in header.components]


def pose_layout(header, name='pose'):
    """'holistic' or 'openpose' from the components of `header`; PoseError when neither or without shoulders."""
    names = component_names(header)
    found = [layout for layout in LAYOUTS.values() if layout.body in names]
    if not found:
        raise PoseError(f"'{name}' has no shoulders: its components ({', '.join(names)}) are neither MediaPipe "
            f"Holistic (POSE_LANDMARKS) nor OpenPose (pose_keypoints_2d)")
    layout = found[0]
    for point in layout.arm_points[:2]:
        if point not in _component(header, layout.body).points:
            raise PoseError(f"'{name}' has no shoulders: its {layout.body} lacks {point}")
    return layout.name


def _component(header, component_name):
    for component in header.components:
        if component.name == component_name:
            return component
    raise PoseError(f'pose has no component {component_name}')


def point_index(header, component_name, point):
    """Index of a point along the pose's points axis; PoseError when the header lacks it."""
    offset = 0
    for component in header.components:
        if component.name == component_name:
            break
        offset += len(component.points)
    points = _component(header, component_name).points
    if point not in points:
        raise PoseError(f'pose component {component_name} has no point {point}')
    return offset + points.index(point)

# ----------------------------------------------------------------------------
# The crop rule.


def shoulders(pose, layout):
    """(right, left, present) of the first person: [F, 2] float64 pixel positions, [F] bool (both confident)."""
    spec = LAYOUTS[layout]
    right, left = (point_index(pose.header, spec.body, point) for point in spec.arm_points[:2])
    xy = ma.getdata(pose.body.data)[:, 0, :, :2].astype(np.float64)
    confidence = np.asarray(pose.body.confidence)[:, 0]
    present = (confidence[:, right] > 0) & (confidence[:, left] > 0)
    return xy[:, right], xy[:, left], present


def crop_box(center, shoulder_width, frame_size):
    """(left, top, side) of the crop square in pixels, or None when the frame is to be skipped.

    center: (x, y) of the shoulders' midpoint; shoulder_width: their distance; frame_size: (width, height).
    The rule and the order of its checks are in the module docstring."""
    width, height = frame_size
    center_x, center_y = center
    factor = CROP_FACTOR
    while factor >= CROP_MIN_FACTOR and shoulder_width > 0:
        side = factor * shoulder_width
        left = center_x - side / 2
        top = max(center_y - side / 2, 0.0)  # Sticking out above: moved down, not shrunk.
        if left >= 0 and left + side <= width and top + side <= height:
            return (left, top, side)
        factor *= CROP_SHRINK
    return None


def select_frames(pose, layout, frame_size):
    """(frames, boxes) of the frames the crop keeps: int64 [K] indices in order, float64 [K, 3] crop boxes."""
    right, left, present = shoulders(pose, layout)
    has_pose = np.asarray(pose.body.confidence).sum(axis=(1, 2)) > 0
    frames, boxes = [], []
    for frame in np.flatnonzero(has_pose & present):
        box = crop_box((right[frame] + left[frame]) / 2, float(np.linalg.norm(right[frame] - left[frame])),
            frame_size)
        if box is not None:
            frames.append(frame)
            boxes.append(box)
    return np.array(frames, dtype=np.int64), np.array(boxes, dtype=np.float64).reshape(-1, 3)


def crop_image(image, box, resolution):
    """The square `box` (left, top, side) of a uint8 HWC or HW image, resized to resolution x resolution with
    Lanczos (fractional boxes are sampled exactly, so poses map with crop_pose's formula)."""
    left, top, side = box
    resized = PIL.Image.fromarray(image).resize((resolution, resolution), PIL.Image.Resampling.LANCZOS,
        box=(left, top, left + side, top + side))
    return np.asarray(resized)


def crop_pose(pose, frames, boxes, resolution):
    """A new Pose of the kept `frames` with coordinates in pixels of the resolution x resolution crops.

    x' = (x - left) * resolution / side, y' likewise with top, z' = z * resolution / side; points of zero
    confidence are 0. The header keeps its components; its dimensions become the crop's. fps is kept."""
    frames = np.asarray(frames, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 3)
    data = ma.getdata(pose.body.data)[frames].astype(np.float64)
    mask = ma.getmaskarray(pose.body.data)[frames]
    confidence = np.asarray(pose.body.confidence)[frames]
    scale = (resolution / boxes[:, 2])[:, None, None, None]
    origin = np.zeros([len(frames), 1, 1, data.shape[3]])
    origin[:, 0, 0, :2] = boxes[:, :2]
    cropped = np.where((confidence > 0)[..., None], (data - origin) * scale, 0.0)
    header = PoseHeader(pose.header.version, PoseHeaderDimensions(resolution, resolution,
        pose.header.dimensions.depth), pose.header.components)
    body = NumPyPoseBody(fps=pose.body.fps, data=ma.masked_array(cropped.astype(np.float32), mask=mask),
        confidence=confidence.astype(np.float32))
    return Pose(header, body)


def concatenate_poses(poses, names):
    """One Pose of the frames of `poses` in order (the first one's header and fps; people padded with
    zero-confidence points); PoseError when their components differ."""
    check_same_components(poses, names)
    first = poses[0]
    people = max(pose.body.data.shape[1] for pose in poses)
    data = ma.concatenate([_pad_people(ma.masked_array(pose.body.data), people, masked=True) for pose in poses])
    confidence = np.concatenate([_pad_people(np.asarray(pose.body.confidence), people) for pose in poses])
    return Pose(first.header, NumPyPoseBody(fps=first.body.fps, data=data, confidence=confidence))


def check_same_components(poses, names):
    """PoseError unless every pose has the components and points of the first (named by `names`)."""
    for pose, name in zip(poses[1:], names[1:]):
        if _components_key(pose.header) != _components_key(poses[0].header):
            raise PoseError(f"'{name}' has other pose components than '{names[0]}'; one dataset takes one layout")


def _components_key(header):
    return [(component.name, component.format, list(component.points)) for component in header.components]


def _pad_people(array, people, masked=False):
    padding = [(0, 0), (0, people - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
    if not masked:
        return np.pad(array, padding)
    return ma.masked_array(np.pad(ma.getdata(array), padding), mask=np.pad(ma.getmaskarray(array), padding,
        constant_values=True))

# ----------------------------------------------------------------------------
# Features for a pose-to-latent network.


@functools.cache
def holistic_face_contour():
    """Names of the FACE_LANDMARKS points on MediaPipe's face contours (lips, eyes, brows, oval). The set is
    pose-format's (reduce_holistic): asked of it once on an empty pose instead of restating its table."""
    components = [PoseHeaderComponent('POSE_LANDMARKS', [], [], [], 'XYZC'),
                  PoseHeaderComponent('FACE_LANDMARKS', [str(i) for i in range(HOLISTIC_FACE_POINTS)], [], [], 'XYZC')]
    body = NumPyPoseBody(fps=1, data=np.zeros([0, 1, HOLISTIC_FACE_POINTS, 3], np.float32),
        confidence=np.zeros([0, 1, HOLISTIC_FACE_POINTS], np.float32))
    reduced = reduce_holistic(Pose(PoseHeader(0.2, PoseHeaderDimensions(1, 1, 1), components), body))
    return tuple(_component(reduced.header, 'FACE_LANDMARKS').points)


def feature_points(header):
    """[(component, point)] the features hold, in order: the six arm points (upper body without face and
    legs), the face contour, the left hand, the right hand."""
    spec = LAYOUTS[pose_layout(header)]
    face = holistic_face_contour() if spec.name == 'holistic' else _component(header, spec.face).points
    selected = [(spec.body, point) for point in spec.arm_points] + [(spec.face, point) for point in face]
    for hand in spec.hands:
        selected += [(hand, point) for point in _component(header, hand).points]
    return selected


def feature_dim(layout):
    """Length of a frame's feature vector: x and y of each feature point."""
    face = len(holistic_face_contour()) if layout == 'holistic' else OPENPOSE_FACE_POINTS
    return 2 * (len(LAYOUTS[layout].arm_points) + face + 2 * HAND_POINTS)


def pose_features(pose):
    """float32 [frames, feature_dim]: the feature points (feature_points) of the first person, x and y, with the
    shoulders' midpoint at the origin and their distance 1 in every frame. Missing points (zero confidence)
    are 0; a frame without both shoulders is all 0. Each frame is normalised on its own, like the crops, so
    the features of crop_pose's output equal those of the source frames."""
    header = pose.header
    spec = LAYOUTS[pose_layout(header)]
    indices = np.array([point_index(header, component, point) for component, point in feature_points(header)])
    xy = ma.getdata(pose.body.data)[:, 0, :, :2].astype(np.float64)
    present = (np.asarray(pose.body.confidence)[:, 0] > 0) & ~ma.getmaskarray(pose.body.data)[:, 0, :, 0]
    xy, present = _corrected_wrists(header, spec, xy, present)

    right, left = (point_index(header, spec.body, point) for point in spec.arm_points[:2])
    center = (xy[:, right] + xy[:, left]) / 2
    distance = np.linalg.norm(xy[:, right] - xy[:, left], axis=1)
    usable = present[:, right] & present[:, left] & (distance > 0)
    scale = np.where(usable, 1 / np.where(usable, distance, 1), 0)
    features = (xy[:, indices] - center[:, None]) * scale[:, None, None]
    features[~present[:, indices]] = 0
    return features.reshape(len(xy), -1).astype(np.float32)


def _corrected_wrists(header, spec, xy, present):
    """The body's wrists taken from the hands' wrist points where a hand was found (the hand model places the
    wrist more precisely than the body model); the body's own estimate where not."""
    xy, present = xy.copy(), present.copy()
    body_wrists = spec.arm_points[4:6]  # Right, left.
    for body_wrist, hand in zip(body_wrists, reversed(spec.hands)):
        body_index = point_index(header, spec.body, body_wrist)
        hand_index = point_index(header, hand, spec.hand_wrist)
        found = present[:, hand_index]
        xy[found, body_index] = xy[found, hand_index]
        present[:, body_index] |= found
    return xy, present
