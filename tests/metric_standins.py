"""Small stand-ins for the Inception-v3 and VGG16 feature detectors, with their real call conventions.

The real detectors are downloads; the tests build these instead, in the two formats the loader reads:
TorchScript archives (inception.pt, vgg16.pt), which load without running Python code, and a pickled
persistent module (vgg16.pkl), which loads only when pickles are trusted.
"""

import textwrap

from helpers import run_python

INCEPTION_STANDIN = '''
import torch

class InceptionStandIn(torch.nn.Module):
    """Inception-v3 call convention: uint8 NCHW in; pool features or class probabilities out."""
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer('proj', torch.randn(3 * 8 * 8, 48, generator=g))
        self.register_buffer('cls', torch.randn(48, 1008, generator=g))

    def forward(self, img: torch.Tensor, return_features: bool = False, no_output_bias: bool = False) -> torch.Tensor:
        assert img.dtype == torch.uint8 and img.shape[1] == 3
        x = torch.nn.functional.adaptive_avg_pool2d(img.to(torch.float32) / 255, [8, 8]).flatten(1)
        features = torch.tanh(x @ self.proj)
        if return_features:
            return features
        return torch.softmax(features @ self.cls, dim=1)
'''

VGG_STANDIN = '''
import torch
from torch_utils import persistence

@persistence.persistent_class
class VGGStandIn(torch.nn.Module):
    """VGG16 call convention: float [0, 255] (LPIPS) or uint8 NCHW in; features or LPIPS features out."""
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.register_buffer('proj', torch.randn(3 * 8 * 8, 32, generator=g))

    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False,
                return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.adaptive_avg_pool2d(img.to(torch.float32) / 255, [8, 8]).flatten(1)
        features = torch.tanh(x @ self.proj)
        if return_lpips:
            return features / features.square().sum(dim=1, keepdim=True).sqrt()
        return features
'''


def write_standin_detectors(folder):
    """Writes folder/inception.pt, folder/vgg16.pt and folder/vgg16.pkl; returns the paths of the first two."""
    (folder / 'inception_standin_mod.py').write_text(INCEPTION_STANDIN)
    (folder / 'vgg_standin_mod.py').write_text(VGG_STANDIN)
    r = run_python(['-c', textwrap.dedent(f'''
        import sys, pickle, torch
        sys.path.insert(0, {str(folder)!r})
        import inception_standin_mod, vgg_standin_mod
        torch.jit.save(torch.jit.script(inception_standin_mod.InceptionStandIn()), {str(folder / 'inception.pt')!r})
        with open({str(folder / 'vgg16.pkl')!r}, 'wb') as f:
            pickle.dump(vgg_standin_mod.VGGStandIn(), f)
        torch.jit.save(torch.jit.script(vgg_standin_mod.VGGStandIn.__mro__[1]()), {str(folder / 'vgg16.pt')!r})
    ''')])
    assert r.returncode == 0, r.stderr
    return folder / 'inception.pt', folder / 'vgg16.pt'
