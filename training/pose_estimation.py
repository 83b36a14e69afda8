"""MediaPipe Holistic pose estimation for the pose-to-video pipeline: poses of a video file or of frames in memory,
as pose-format Poses in the 'holistic' layout of training/pose.py (coordinates in pixels of the frames, header
dimensions the frames' width and height, fps the video's), and the video reader dataset_tool.py shares.

MediaPipe is optional (requirements-pose.txt): this module imports neither it nor torch, so that it can be
imported, and its absence reported in one line (check_available), without it.
"""

import contextlib
import dataclasses
import math
import os
import sys
from typing import Iterator, Optional

import numpy as np
import numpy.ma as ma
import tqdm

INSTALL_COMMAND = 'python3 -m pip install -r requirements.txt -r requirements-pose.txt'

# ----------------------------------------------------------------------------


class EstimationUnavailableError(RuntimeError):
    """MediaPipe cannot be imported; the message is one line and names the install command."""


class VideoError(ValueError):
    """A video file that cannot be read; the message is one line and names the file."""


def _first_line(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def check_available():
    """Raises EstimationUnavailableError unless MediaPipe Holistic and pose-format's use of it import."""
    try:
        import mediapipe  # noqa: F401 # pylint: disable=import-outside-toplevel,unused-import
        import pose_format.utils.holistic  # noqa: F401 # pylint: disable=import-outside-toplevel,unused-import
    except Exception as err:  # pylint: disable=broad-except
        # Not only ImportError: a mediapipe beside a protobuf or NumPy it was not built for can fail at import with
        # other errors, and the fix is the same install.
        raise EstimationUnavailableError(f"MediaPipe pose estimation is not available ({_first_line(err)}); "
            f"install it with `{INSTALL_COMMAND}` (Python 3.10 to 3.12)") from None

# ----------------------------------------------------------------------------
# Reading videos.


@dataclasses.dataclass
class Video:
    path:          str
    fps:           float
    approx_frames: Optional[int]    # From the container's duration: good for a progress bar, not for counting.
    frames:        Iterator         # uint8 [H, W, 3] RGB frames in order; VideoError on a damaged stream.


@contextlib.contextmanager
def open_video(path):
    """Yields the Video of the file `path` (imageio's FFMPEG reader); VideoError when it cannot be read."""
    import imageio  # pylint: disable=import-outside-toplevel # Only video sources pay for its start-up.
    try:
        reader = imageio.get_reader(path, format='FFMPEG')
        meta = reader.get_meta_data()
    except (OSError, RuntimeError, ValueError) as err:
        raise VideoError(f"cannot read video '{path}': {_first_line(err)}") from None
    with contextlib.closing(reader):
        approx = meta.get('nframes')
        approx = int(approx) if isinstance(approx, (int, float)) and math.isfinite(approx) and approx > 0 else None
        yield Video(
            path=path,
            fps=float(meta.get('fps') or 0),
            approx_frames=approx,
            frames=_frames(reader, path),
        )


def _frames(reader, path):
    try:
        yield from reader
    except (OSError, RuntimeError) as err:  # A damaged stream after some good frames.
        raise VideoError(f"cannot read video '{path}': {_first_line(err)}") from None

# ----------------------------------------------------------------------------
# Estimation.


def estimate_video(path, progress=True):
    """The MediaPipe Holistic Pose of the video file `path`: one frame per video frame, header dimensions the
    video's width and height, fps the video's. VideoError when it cannot be read or has no frames;
    EstimationUnavailableError without MediaPipe (checked before the video is decoded)."""
    check_available()
    with open_video(path) as video:
        first = next(video.frames, None)
        if first is None:
            raise VideoError(f"video '{path}' has no frames")
        frames = _chain_first(first, video.frames)
        return _estimate(
            frames,
            fps=video.fps,
            frame_size=(first.shape[1], first.shape[0]),
            total=video.approx_frames,
            progress=progress,
            desc=os.path.basename(path),
        )


def estimate_frames(frames, fps, progress=True):
    """The MediaPipe Holistic Pose of in-memory RGB frames (uint8 [N, H, W, 3], or a sequence of [H, W, 3]),
    shown at `fps`; header dimensions W and H. ValueError for frames of another shape or type."""
    frames = np.asarray(frames)  # Frames of different sizes fail here (numpy's ValueError).
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or len(frames) == 0:
        raise ValueError(f'frames must be uint8 [N, H, W, 3] RGB with N > 0, got {frames.dtype} {list(frames.shape)}')
    if not (isinstance(fps, (int, float, np.number)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f'fps must be a positive number, got {fps!r}')
    check_available()
    return _estimate(
        iter(frames),
        fps=float(fps),
        frame_size=(frames.shape[2], frames.shape[1]),
        total=len(frames),
        progress=progress,
        desc='frames',
    )


def _chain_first(first, rest):
    yield first
    yield from rest


def _estimate(frames, fps, frame_size, total, progress, desc):
    from pose_format import Pose  # pylint: disable=import-outside-toplevel
    from pose_format.numpy import NumPyPoseBody  # pylint: disable=import-outside-toplevel
    from pose_format.utils.holistic import load_holistic  # pylint: disable=import-outside-toplevel
    width, height = frame_size
    with _native_logs_silenced() as progress_file:
        shown = tqdm.tqdm(
            frames,
            total=total,
            unit='frame',
            desc=f'Poses of {desc}',
            file=progress_file,
            disable=None if progress else True,
            leave=False,
        )
        with contextlib.closing(shown):
            # MediaPipe wants C-contiguous RGB; a fresh config dict per call, as load_holistic writes into it.
            # reuse=False closes the graphs here, so that none of their threads logs after the silence ends.
            pose = load_holistic(
                (np.ascontiguousarray(frame) for frame in shown),
                fps=fps,
                width=width,
                height=height,
                progress=False,
                additional_holistic_config={'static_image_mode': False},
                reuse=False,
            )
    # As Pose.read gives them (float32), so that poses estimated now and read back from a file later agree.
    data = np.asarray(ma.getdata(pose.body.data), dtype=np.float32)
    confidence = np.asarray(pose.body.confidence, dtype=np.float32)
    mask = np.repeat((confidence == 0)[..., None], data.shape[-1], axis=-1)
    body = NumPyPoseBody(
        fps=fps,
        data=ma.masked_array(np.where(mask, 0, data), mask=mask),
        confidence=confidence,
    )
    return Pose(pose.header, body)


@contextlib.contextmanager
def _native_logs_silenced():
    """Points file descriptor 2 at /dev/null for the block and yields a stream on the real stderr for progress.

    MediaPipe's C++ (absl logging, TensorFlow Lite) writes tens of lines straight to descriptor 2, below Python,
    with no switch to turn them off; a command-line tool's errors must stay one line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # No descriptor 2 to save (a daemon): nothing to silence.
        yield sys.stderr
        return
    try:
        stderr_is_fd2 = sys.stderr.fileno() == 2
    except (OSError, ValueError, AttributeError):  # Replaced by a capture (pytest): it does not go to 2.
        stderr_is_fd2 = False
    progress_file = os.fdopen(os.dup(saved), 'w', buffering=1) if stderr_is_fd2 else sys.stderr
    try:
        with open(os.devnull, 'wb') as null:
            os.dup2(null.fileno(), 2)
        yield progress_file
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if progress_file is not sys.stderr:
            progress_file.close()

# ----------------------------------------------------------------------------
