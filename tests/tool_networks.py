"""Network pickles for the tests of the top-level tools (gen_images, gen_video, avg_spectra, projector)."""

import json
import os
import pickle

import numpy as np
import torch

from helpers import FIXTURES_DIR


def fixture_generator(name):
    """The generator of fixture `name` (e.g. 'sg2-32-uncond') with its reference weights, and its io arrays."""
    with open(os.path.join(FIXTURES_DIR, f'{name}.json')) as f:
        meta = json.load(f)
    if name.startswith('sg2'):
        from training.networks_stylegan2 import Generator
    else:
        from training.networks_stylegan3 import Generator
    G = Generator(**meta['G_init_kwargs'])
    with np.load(os.path.join(FIXTURES_DIR, f'{name}.npz')) as data:
        state = {key[len('G.'):]: torch.from_numpy(data[key]) for key in data.files if key.startswith('G.')}
        io = {key[len('io.'):]: data[key] for key in data.files if key.startswith('io.')}
    G.load_state_dict(state, strict=True)
    return G.eval().requires_grad_(False), io


def tiny_generator(c_dim=0, img_channels=3, img_resolution=16, seed=0):
    """A small random StyleGAN2 generator (fast on the CPU)."""
    from training.networks_stylegan2 import Generator
    torch.manual_seed(seed)
    G = Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=img_resolution, img_channels=img_channels,
                  mapping_kwargs=dict(num_layers=2), channel_base=64, channel_max=16)
    return G.eval().requires_grad_(False)


def save_network_pkl(G, path):
    """Writes a network pickle as the training loop does."""
    with open(path, 'wb') as f:
        pickle.dump(dict(G=G, G_ema=G, D=None, augment_pipe=None, training_set_kwargs=None), f)
    return str(path)


def images_to_uint8(img):
    """The official conversion, written out independently of the tools: NCHW [-1, 1] -> uint8 NHWC."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
