"""Tiny StyleGAN-T network pickles for the tests of the tools (gen_images, gen_video, the visualizer).

The text-conditional one carries the random-weight stand-in CLIP text encoder of stylegan_t_standins, so
prompts are tokenized and encoded for real without any download. Building it takes seconds, so each test
process builds it once (text_network) and every test file shares it.
"""

import os
import pickle

import torch

import stylegan_t_standins

RESOLUTION = 32
SYNTHESIS_KWARGS = dict(channel_base=512, channel_max=64, res_blocks=1)  # As small as the architecture allows.

_built = {}  # What text_network() built in this process.


def _liven_w_avg(G, seed):
    """A fresh network's w_avg is 0; a random one makes truncation change the image visibly."""
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn([G.z_dim], generator=torch.Generator().manual_seed(seed)))


def _write_pickle(G, D, path):
    """A network pickle as training writes one (G doubles as G_ema)."""
    data = pickle.dumps(dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs={}))
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def build_text_network(folder, seed=0):
    """Writes a text-conditional generator (with its stand-in encoder weights) to folder/stylegan-t-text.pkl;
    returns the pickle's path."""
    from training import encoders, networks_stylegan_t
    paths = stylegan_t_standins.build(os.path.join(folder, 'encoders'))
    text_kwargs = encoders.text_encoder_kwargs(encoders.load_clip(paths['clip_model'], paths['clip']))
    vit_kwargs = encoders.backbone_kwargs(encoders.load_dino(paths['dino_model'], paths['dino']))
    torch.manual_seed(seed)
    G = networks_stylegan_t.Generator(z_dim=64, c_dim=text_kwargs['embed_dim'], img_resolution=RESOLUTION, img_channels=3,
                                      text_encoder_kwargs=text_kwargs, **SYNTHESIS_KWARGS).eval()
    D = networks_stylegan_t.Discriminator(c_dim=text_kwargs['embed_dim'], img_resolution=RESOLUTION, img_channels=3,
                                          backbone_kwargs=vit_kwargs).eval()
    encoders.fill_pretrained(G, D, paths)
    _liven_w_avg(G, seed)
    return _write_pickle(G, D, os.path.join(folder, 'stylegan-t-text.pkl'))


def build_unconditional_network(folder, seed=0):
    """Writes an unconditional StyleGAN-T generator (no text encoder) to folder/stylegan-t-uncond.pkl."""
    from training import networks_stylegan_t
    torch.manual_seed(seed)
    G = networks_stylegan_t.Generator(z_dim=64, c_dim=0, img_resolution=RESOLUTION, img_channels=3,
                                      **SYNTHESIS_KWARGS).eval()
    _liven_w_avg(G, seed)
    return _write_pickle(G, None, os.path.join(folder, 'stylegan-t-uncond.pkl'))


def text_network(tmp_path_factory):
    """The path of the text-conditional pickle, built on the first call in this test process."""
    if 'text' not in _built:
        _built['text'] = build_text_network(tmp_path_factory.mktemp('stylegan_t'))
    return _built['text']


def load_generator(pkl):
    """G_ema of a pickle, loaded the way the tools load it (safely rebuilt), in eval mode on the CPU."""
    import legacy
    with open(pkl, 'rb') as f:
        return legacy.load_network_pkl(f)['G_ema'].eval().requires_grad_(False)
