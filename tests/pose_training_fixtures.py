"""Pose datasets whose images are a function of the pose, for the tests of train_pose.py: a signer whose elbows
and wrists swing by four smooth angles per frame, a latent that is a fixed linear function of those angles, and
the frames a tiny generator renders from that latent. The dataset zip is written as dataset_tool.py --pose writes
it (images, poses.pose, poses.json) and the latents file as projector.py --target-dataset writes it, so that
train_pose.py reads both as it would real ones."""

import io
import json
import zipfile

import numpy as np
import PIL.Image
import torch

import pose_fixtures
import projector
from tool_networks import images_to_uint8
from training import pose as pose_lib
from training.dataset import ImageFolderDataset

RESOLUTION = 16
NUM_ANGLES = 4


def smooth_angles(num_frames, seed):
    """float64 [num_frames, NUM_ANGLES] in about [-1, 1]: sums of slow sines with random phases and speeds."""
    rnd = np.random.RandomState(seed)
    t = np.arange(num_frames)[:, None]
    speed, phase = rnd.uniform(0.05, 0.25, [2, NUM_ANGLES]), rnd.uniform(0, 2 * np.pi, [2, NUM_ANGLES])
    return 0.6 * np.sin(speed[0] * t + phase[0]) + 0.4 * np.sin(speed[1] * t + phase[1])


def moving_pose(layout, angles, fps=12.0):
    """A Pose (crop coordinates of a RESOLUTION crop) whose elbows and wrists follow `angles` [T, 4]."""
    num_frames = len(angles)
    track = pose_fixtures.Track(centers=np.tile([[RESOLUTION / 2, RESOLUTION / 3]], [num_frames, 1]),
                                frame_size=(RESOLUTION * 4, RESOLUTION * 4))
    pose = pose_fixtures.make_pose(layout, track, fps=fps)
    data = pose.body.data.data
    confidence = pose.body.confidence
    confidence[:] = np.where(confidence > 0, confidence, 0.9)  # Everything found: the angles alone vary.
    header = pose.header
    parts = pose_fixtures.PARTS[layout]
    for side, sign in (('right', -1), ('left', 1)):
        elbow_angle, wrist_angle = angles[:, 0 if side == 'right' else 1], angles[:, 2 if side == 'right' else 3]
        shoulder = data[:, 0, pose_fixtures._index(header, *parts[f'{side}_shoulder']), :2]
        elbow = shoulder + 10 * np.stack([sign * np.sin(elbow_angle), np.cos(elbow_angle)], 1)
        wrist = elbow + 8 * np.stack([sign * np.sin(elbow_angle + wrist_angle), -np.cos(elbow_angle + wrist_angle)], 1)
        old_wrist = data[:, 0, pose_fixtures._index(header, *parts[f'{side}_wrist']), :2].copy()
        data[:, 0, pose_fixtures._index(header, *parts[f'{side}_elbow']), :2] = elbow
        data[:, 0, pose_fixtures._index(header, *parts[f'{side}_wrist']), :2] = wrist
        hand = pose_fixtures._component_range(header, pose_fixtures.HANDS[layout][0 if side == 'left' else 1])
        data[:, 0, hand, :2] += (wrist - old_wrist)[:, None]
    pose.body.data.mask[:] = False
    return pose


def latent_directions(G, seed=3):
    """(w_avg [w_dim], directions [NUM_ANGLES, w_dim]): the map from angles to w, each direction of the size of
    w's spread."""
    with torch.no_grad():
        z = torch.from_numpy(np.random.RandomState(seed).randn(256, G.z_dim).astype(np.float32))
        w = G.mapping(z, None)[:, 0].numpy().astype(np.float64)
    w_avg, spread = w.mean(0), w.std(0).mean()
    directions = np.random.RandomState(seed + 1).randn(NUM_ANGLES, G.w_dim)
    directions *= spread / np.linalg.norm(directions, axis=1, keepdims=True) * np.sqrt(G.w_dim)
    return w_avg, directions


def angles_to_ws(G, angles):
    """float32 [T, num_ws, w_dim]: the latent of each frame's angles."""
    w_avg, directions = latent_directions(G)
    w = (w_avg + angles @ directions).astype(np.float32)
    return np.repeat(w[:, None], G.num_ws, axis=1)


def render(G, ws):
    with torch.no_grad():
        return images_to_uint8(G.synthesis(torch.from_numpy(ws), noise_mode='const', force_fp32=True))


def write_pose_dataset(path, G, layout, clips, fps=12.0):
    """A pose dataset zip of `clips` ({name: angles [T, 4]}) rendered by G; returns the ws [N, num_ws, w_dim]."""
    poses, ws, ranges = [], [], []
    for name, angles in clips.items():
        start = sum(len(a) for a in ws)
        poses.append(moving_pose(layout, angles, fps))
        ws.append(angles_to_ws(G, angles))
        ranges.append(dict(name=name, start=start, stop=start + len(angles), fps=fps))
    ws = np.concatenate(ws)
    images = render(G, ws)
    pose = pose_lib.concatenate_poses(poses, list(clips))
    buffer = io.BytesIO()
    pose.write(buffer)
    index = dict(layout=layout, fps=fps, frames=[i for a in clips.values() for i in range(len(a))], clips=ranges)
    with zipfile.ZipFile(path, 'w') as archive:
        for i, image in enumerate(images):
            png = io.BytesIO()
            PIL.Image.fromarray(image).save(png, format='png')
            archive.writestr(f'{i // 1000:05d}/img{i:08d}.png', png.getvalue())
        archive.writestr('dataset.json', json.dumps(dict(labels=None)))
        archive.writestr('poses.pose', buffer.getvalue())
        archive.writestr('poses.json', json.dumps(index))
    return ws


def write_latents(path, G, network_pkl, dataset_path, ws):
    """ws as projector.py --target-dataset records them, for this network and dataset."""
    dataset = ImageFolderDataset(path=str(dataset_path))
    identity = projector.run_identity(network_pkl, G, str(dataset_path), dataset, w_plus=False, num_steps=1,
                                      warm_steps=1, batch=1, seed=0, class_idx=None)
    projector.write_latents(str(path), ws, np.zeros(len(ws), np.float32), dataset.image_fnames, identity)
    return str(path)
