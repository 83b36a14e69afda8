"""Training data of the pose-to-latent network: frame-aligned (pose features, latent) sequences read from pose
datasets (dataset_tool.py --pose) and their projections (projector.py --target-dataset), the validation split by
sequence, training windows, and the masked MAE the network is trained with.

A pose dataset holds poses.pose and poses.json beside its images; the latents file holds one w per image, in
the same (file-name) order. Each clip of poses.json is a sequence; clips are cut into chunks of CHUNK_WINDOWS
windows, and whole chunks go to validation, so that validation frames are never inside a training window and a
single long video can still be split.
"""

import dataclasses
import json
import os
import zipfile

import numpy as np
import torch

from training import pose as pose_lib

CHUNK_WINDOWS = 4   # A validation chunk is this many training windows long.


class PoseDataError(ValueError):
    """Pose training data that cannot be used; the message is one line."""


@dataclasses.dataclass
class Sequence:
    """Consecutive frames of one clip with their pose features and latents."""
    name:       str             # '<dataset>:<clip>' or 'synthetic:<n>', for messages and logs.
    source:     int             # Index of the dataset (or 0 for synthetic data) the frames come from.
    frames:     np.ndarray      # int64 [T]: item indices in that dataset.
    features:   np.ndarray      # float32 [T, feature_dim].
    ws:         np.ndarray      # float32 [T, w_layers, w_dim].

# ----------------------------------------------------------------------------
# Reading.


def _read_member(path, name):
    """The bytes of `name` in a dataset zip or folder, or None when it has none."""
    if os.path.isdir(path):
        file_path = os.path.join(path, name)
        if not os.path.isfile(file_path):
            return None
        with open(file_path, 'rb') as f:
            return f.read()
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(name) if name in archive.namelist() else None
    except (OSError, zipfile.BadZipFile) as err:
        raise PoseDataError(f'cannot read {path} as a dataset zip ({err})') from None


def read_dataset_poses(path, num_images):
    """(Pose, index) of a pose dataset: poses.pose and the poses.json index, checked against its `num_images`."""
    raw_pose, raw_index = _read_member(path, 'poses.pose'), _read_member(path, 'poses.json')
    if raw_pose is None or raw_index is None:
        raise PoseDataError(f'{path} has no poses.pose and poses.json: make it from videos with their poses '
                            f'(dataset_tool.py --source=VIDEO --pose=FILE.pose)')
    try:
        pose = pose_lib.Pose.read(raw_pose)
        index = json.loads(raw_index)
        clips = [(str(clip['name']), int(clip['start']), int(clip['stop'])) for clip in index['clips']]
        layout, fps = str(index['layout']), float(index['fps'])
    except Exception as err:  # pylint: disable=broad-except
        raise PoseDataError(f'{path}: poses.pose or poses.json is damaged ({type(err).__name__}); rebuild the '
                            f'dataset with dataset_tool.py --pose') from None
    num_poses = pose.body.data.shape[0]
    if num_poses != num_images or (clips and (clips[0][1] != 0 or clips[-1][2] != num_images)):
        raise PoseDataError(f'{path} has {num_images} images but {num_poses} pose frames; rebuild it with '
                            f'dataset_tool.py --pose')
    if pose_lib.pose_layout(pose.header, name=path) != layout:
        raise PoseDataError(f'{path}: poses.json says layout {layout!r}, but poses.pose is not; rebuild the dataset')
    return pose, dict(layout=layout, fps=fps, clips=clips)


def dataset_sequences(source, path, pose, index, ws):
    """The Sequences (one per clip) of dataset number `source` at `path`, with latents `ws` [N, w_layers, w_dim]."""
    features = pose_lib.pose_features(pose)
    sequences = []
    for name, start, stop in index['clips']:
        if stop > start:
            frames = np.arange(start, stop, dtype=np.int64)
            sequences.append(Sequence(name=f'{os.path.basename(path)}:{name}', source=source, frames=frames,
                                      features=features[start:stop], ws=np.asarray(ws[start:stop], np.float32)))
    return sequences

# ----------------------------------------------------------------------------
# Splitting and windows.


def cut_chunks(sequences, chunk_len):
    """The sequences cut into consecutive pieces of at most `chunk_len` frames."""
    chunks = []
    for seq in sequences:
        for start in range(0, len(seq.frames), chunk_len):
            part = slice(start, start + chunk_len)
            chunks.append(dataclasses.replace(seq, name=f'{seq.name}@{start}', frames=seq.frames[part],
                                              features=seq.features[part], ws=seq.ws[part]))
    return chunks


def split_by_sequence(sequences, seq_len, val_fraction, seed):
    """(train, val) lists of chunks (CHUNK_WINDOWS * seq_len frames): a seeded choice of whole chunks,
    round(val_fraction * chunks) of them and at least one, go to validation."""
    chunks = cut_chunks(sequences, CHUNK_WINDOWS * seq_len)
    if len(chunks) < 2:
        frames = sum(len(seq.frames) for seq in sequences)
        raise PoseDataError(f'{frames} frames make {len(chunks)} chunk(s) of {CHUNK_WINDOWS} x --seq-len={seq_len} '
                            f'frames; a validation split needs at least 2: give more data or a smaller --seq-len')
    num_val = min(max(1, int(round(val_fraction * len(chunks)))), len(chunks) - 1)
    chosen = set(np.random.RandomState(seed).permutation(len(chunks))[:num_val].tolist())
    train = [chunk for i, chunk in enumerate(chunks) if i not in chosen]
    val = [chunk for i, chunk in enumerate(chunks) if i in chosen]
    return train, val


def training_windows(chunks, seq_len):
    """[(chunk index, start, length)]: windows of seq_len frames overlapping by half, the last one ending at the
    chunk's end; a chunk shorter than seq_len is one shorter window."""
    windows = []
    stride = max(1, seq_len // 2)
    for index, chunk in enumerate(chunks):
        length = len(chunk.frames)
        if length <= seq_len:
            windows.append((index, 0, length))
            continue
        starts = list(range(0, length - seq_len + 1, stride))
        if starts[-1] != length - seq_len:
            starts.append(length - seq_len)
        windows += [(index, start, seq_len) for start in starts]
    return windows


def collate(chunks, windows, seq_len):
    """(features [B, seq_len, F], ws [B, seq_len, w_layers, w_dim], mask [B, seq_len]) tensors of `windows`,
    zero-padded at the end of short windows."""
    first = chunks[windows[0][0]]
    features = np.zeros([len(windows), seq_len, first.features.shape[1]], np.float32)
    ws = np.zeros([len(windows), seq_len, *first.ws.shape[1:]], np.float32)
    mask = np.zeros([len(windows), seq_len], np.float32)
    for row, (index, start, length) in enumerate(windows):
        features[row, :length] = chunks[index].features[start:start + length]
        ws[row, :length] = chunks[index].ws[start:start + length]
        mask[row, :length] = 1
    return torch.from_numpy(features), torch.from_numpy(ws), torch.from_numpy(mask)


def masked_mae(predicted, target, mask):
    """Mean absolute error over the unmasked frames: predicted and target [B, T, L, D], mask [B, T]."""
    weights = mask[:, :, None, None].expand_as(target)
    return ((predicted - target).abs() * weights).sum() / weights.sum().clamp(min=1)
