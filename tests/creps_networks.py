"""CREPS networks for the tests: the public release's fixture network and tiny random ones."""

import json
import os

import numpy as np
import torch

from helpers import FIXTURES_DIR

FIXTURE = os.path.join(FIXTURES_DIR, 'creps-32-uncond')


def load_fixture():
    """(meta, G state dict, io tensors) of the creps-32-uncond fixture."""
    with open(FIXTURE + '.json') as f:
        meta = json.load(f)
    with np.load(FIXTURE + '.npz') as data:
        state = {key[len('G.'):]: torch.from_numpy(data[key]) for key in data.files if key.startswith('G.')}
        io = {key[len('io.'):]: torch.from_numpy(data[key]) for key in data.files if key.startswith('io.')}
    return meta, state, io


def fixture_generator():
    """The fixture's generator with the release's weights (eval mode, no gradients), and its io tensors."""
    from training import networks_creps
    meta, state, io = load_fixture()
    G = networks_creps.Generator(**meta['G_init_kwargs'])
    G.load_state_dict(state, strict=True)
    return G.eval().requires_grad_(False), io


def tiny_generator(img_resolution=16, c_dim=0, seed=0):
    """A small random CREPS generator (milliseconds per image on the CPU)."""
    from training import networks_creps
    torch.manual_seed(seed)
    G = networks_creps.Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=img_resolution, img_channels=3,
                                 channel_base=128, channel_max=16, biline_channels=8, mapping_kwargs=dict(num_layers=2))
    return G.eval().requires_grad_(False)
