"""A tiny CLIP scorer for the tests of the CLIP score: an open_clip model with narrow towers, trained here for a few
hundred contrastive steps (seconds on a CPU) so that its embeddings of solid-colour images agree with those of
captions naming the colour, and saved in open_clip's local-dir layout (the layout of a Hugging Face model repo)."""

import json
import os

import numpy as np
import torch
import torch.nn.functional as F

COLOURS = {'red': (220, 30, 30), 'green': (30, 190, 40), 'blue': (30, 50, 220), 'yellow': (235, 220, 30),
           'white': (245, 245, 245), 'black': (15, 15, 15)}
TEMPLATES = ('a {} square', 'something {}', 'a photo of a {} thing', '{}')

# The real tokenizer (49408 tokens, 77 positions), so that open_clip's bundled SimpleTokenizer serves offline.
MODEL_CFG = {
    'embed_dim': 32,
    'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 64, 'head_width': 32, 'patch_size': 16},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 1},
}
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def colour_images(names, size=32, seed=0):
    """uint8 [len(names), 3, size, size]: each a shade of the named colour with a little pixel noise."""
    rng = np.random.RandomState(seed)
    images = []
    for name in names:
        shade = np.clip(np.array(COLOURS[name]) + rng.randint(-20, 21, size=3), 0, 255)
        noise = rng.randint(-12, 13, size=(3, size, size))
        images.append(np.clip(shade[:, None, None] + noise, 0, 255))
    return torch.from_numpy(np.stack(images).astype(np.uint8))


def _normalised(images):
    mean = torch.tensor(MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(STD).reshape(1, 3, 1, 1)
    return (images.to(torch.float32) / 255 - mean) / std


def build(folder, steps=200, seed=0):
    """Trains the stand-in and writes folder/open_clip_config.json and folder/open_clip_pytorch_model.bin; returns
    the folder. Skipped when the folder already holds them."""
    import open_clip
    weights = os.path.join(folder, 'open_clip_pytorch_model.bin')
    if os.path.isfile(weights):
        return str(folder)
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    model = open_clip.CLIP(**MODEL_CFG)
    model.token_embedding.requires_grad_(False)  # Random token vectors tell words apart already; training 1.6M
    # embedding weights would be most of the time.
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=77)
    optimizer = torch.optim.Adam([param for param in model.parameters() if param.requires_grad], lr=3e-3)
    names = list(COLOURS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Tiny operations: more threads only wait on each other.
    try:
        _train(model, tokenizer, optimizer, names, steps, rng)
    finally:
        torch.set_num_threads(threads)
    with open(os.path.join(folder, 'open_clip_config.json'), 'w') as f:
        json.dump({'model_cfg': MODEL_CFG, 'preprocess_cfg': {'mean': list(MEAN), 'std': list(STD)}}, f)
    torch.save(model.state_dict(), weights)
    return str(folder)


def _train(model, tokenizer, optimizer, names, steps, rng):
    """Contrastive steps (CLIP's symmetric cross-entropy at a fixed temperature)."""
    for step in range(steps):
        # One image of every colour per step, so that each row has exactly one matching caption.
        captions = [TEMPLATES[rng.randint(len(TEMPLATES))].format(name) for name in names]
        image_embeddings = F.normalize(model.encode_image(_normalised(colour_images(names, seed=step))), dim=-1)
        text_embeddings = F.normalize(model.encode_text(tokenizer(captions)), dim=-1)
        logits = image_embeddings @ text_embeddings.T * 10
        target = torch.arange(len(names))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
