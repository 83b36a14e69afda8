"""Tiny random-weight stand-ins for StyleGAN-T's pretrained encoders, built with open_clip and timm themselves
and saved the way users provide their own (an open_clip config with a checkpoint; a timm JSON spec with a
checkpoint), so that tests exercise the real loading paths without downloading."""

import json
import os

import torch

# An OpenAI-style CLIP with the real tokenizer (49408 tokens, 77 positions) and narrow towers.
CLIP_CONFIG = {
    'embed_dim': 24,
    'quick_gelu': True,
    'vision_cfg': {'image_size': 32, 'layers': 2, 'width': 32, 'head_width': 16, 'patch_size': 8},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 2},
}
# DINO's architecture (12 blocks, class token) but narrow and for 32-pixel inputs.
DINO_SPEC = {'model': 'vit_small_patch16_224', 'kwargs': {'img_size': 32, 'patch_size': 8, 'embed_dim': 32,
                                                          'depth': 12, 'num_heads': 2}}


def build(folder, seed=0):
    """Writes the stand-ins into `folder`; returns dict(clip_model, clip, dino_model, dino) of file paths."""
    import open_clip
    import timm
    os.makedirs(folder, exist_ok=True)
    paths = dict(clip_model=os.path.join(folder, 'standin-clip.json'), clip=os.path.join(folder, 'standin-clip.pt'),
                 dino_model=os.path.join(folder, 'standin-dino.json'), dino=os.path.join(folder, 'standin-dino.pth'))
    if all(os.path.isfile(path) for path in paths.values()):
        return paths
    torch.manual_seed(seed)
    with open(paths['clip_model'], 'w') as f:
        json.dump(CLIP_CONFIG, f)
    open_clip.add_model_config(paths['clip_model'])
    clip_net = open_clip.create_model('standin-clip')
    with torch.no_grad():  # open_clip starts the text projection small; a livelier one separates prompts better.
        clip_net.text_projection.normal_(0, 0.5)
    torch.save(clip_net.state_dict(), paths['clip'])
    with open(paths['dino_model'], 'w') as f:
        json.dump(DINO_SPEC, f)
    vit = timm.create_model(DINO_SPEC['model'], pretrained=False, **DINO_SPEC['kwargs'])
    torch.save(vit.state_dict(), paths['dino'])
    return paths


def environment(paths):
    """The environment variables that make every tool use the stand-ins."""
    return {'STYLEGAN_CLIP_MODEL': paths['clip_model'], 'STYLEGAN_CLIP': paths['clip'],
            'STYLEGAN_DINO_MODEL': paths['dino_model'], 'STYLEGAN_DINO': paths['dino']}
