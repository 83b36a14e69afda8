"""Loading network pickles written by this project or by the official StyleGAN2-ADA-PyTorch /
StyleGAN3 releases."""

import copy
import pickle

import torch

import dnnlib
from torch_utils import misc

# ----------------------------------------------------------------------------

NETWORK_KEYS = ('G', 'D', 'G_ema')


class NetworkPickleError(ValueError):
    """The file is not a network pickle this code can read; the message says what it is instead."""


def load_network_pkl(f, force_fp16=False):
    """Reads a network pickle from the binary file object `f`.

    Returns a dict with 'G', 'D', 'G_ema', 'augment_pipe' and 'training_set_kwargs' (missing
    entries are None). With `force_fp16`, networks are rebuilt to run their highest
    resolutions in float16 (num_fp16_res=4, conv_clamp=256; fc_clamp=256 for CREPS) with the same weights.
    """
    name = getattr(f, 'name', 'the network pickle')
    try:
        data = pickle.load(f)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.startswith('dnnlib.tflib'):
            raise NetworkPickleError(f'{name} is a TensorFlow StyleGAN/StyleGAN2 pickle; '
                                     f'this project reads PyTorch network pickles only') from None
        raise NetworkPickleError(f'{name} needs the Python module {e.name!r}, which is not available; '
                                 f'it is not a StyleGAN network pickle or needs that package installed') from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as e:
        raise NetworkPickleError(f'{name} is not a readable network pickle ({type(e).__name__}: {e})') from None

    if not isinstance(data, dict) or not any(isinstance(data.get(key), torch.nn.Module) for key in NETWORK_KEYS):
        raise NetworkPickleError(f'{name} holds a {type(data).__name__}, not a network pickle '
                                 f'(a dict with G, D and/or G_ema networks)')
    for key in NETWORK_KEYS + ('augment_pipe', 'training_set_kwargs'):
        data.setdefault(key, None)
        if key in NETWORK_KEYS and data[key] is not None and not isinstance(data[key], torch.nn.Module):
            raise NetworkPickleError(f'{name}: entry {key!r} is a {type(data[key]).__name__}, not a network')
    if isinstance(data['training_set_kwargs'], dict):
        data['training_set_kwargs'] = dnnlib.EasyDict(data['training_set_kwargs'])

    if force_fp16:
        for key in NETWORK_KEYS:
            if data[key] is not None:
                data[key] = _with_fp16(data[key])
    return data


def _with_fp16(module):
    """The same network rebuilt with num_fp16_res=4 and a clamp of 256, if its constructor takes them."""
    from training import networks_creps  # Not at the top: loading a pickle should not need it otherwise.
    init_kwargs = getattr(module, 'init_kwargs', None)
    if init_kwargs is None:
        return module  # Not a persistent class: cannot rebuild it.
    kwargs = copy.deepcopy(init_kwargs)
    target = kwargs.get('synthesis_kwargs', kwargs)  # Older generators nest them; newer ones flatten them.
    # CREPS has no convolutions: its layers clamp through fc_clamp, and would reject conv_clamp.
    clamp_name = 'fc_clamp' if networks_creps.is_creps(module) else 'conv_clamp'
    changed = target.get('num_fp16_res', None) != 4 or target.get(clamp_name, None) != 256
    if not changed:
        return module
    target['num_fp16_res'] = 4
    target[clamp_name] = 256
    rebuilt = type(module)(*module.init_args, **kwargs)
    rebuilt.train(module.training).requires_grad_(False)
    misc.copy_params_and_buffers(module, rebuilt, require_all=True)
    return rebuilt
