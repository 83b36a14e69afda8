"""Network weights as safetensors: the tensors of G, D, G_ema (and the augmentation pipe) with a JSON
description of each network (class and constructor arguments), and no code at all.

    header metadata 'stylegan':  {"format": "stylegan-weights", "version": 1,
                                  "networks": {"G": {"class": "training.networks_stylegan3.Generator",
                                                     "init_args": [...], "init_kwargs": {...}}, ...},
                                  "training_set_kwargs": {...} or null}
    tensors:                     "<key>.<parameter or buffer name>", e.g. "G_ema.mapping.fc0.weight"

Loading builds each network as the named class (one of the families of training/network_rebuild.py), first
on the meta device to check that the file's tensors are exactly the module's, then for real, and copies the
tensors in. `save` and `load` round-trip exactly.
"""

import importlib
import json
import struct

import numpy as np
import torch

from training import network_rebuild

FORMAT = 'stylegan-weights'
VERSION = 1
NETWORK_KEYS = ('G', 'D', 'G_ema', 'augment_pipe')


class WeightsFileError(ValueError):
    """A weights file that cannot be read or written; the message is one line."""

# ----------------------------------------------------------------------------


def is_weights_file(head):
    """Whether the first bytes of a file look like safetensors (an 8-byte header length, then JSON)."""
    return len(head) >= 9 and head[8:9] == b'{' and struct.unpack('<Q', head[:8])[0] < (1 << 32)


def _json_ready(value, where):
    """Constructor arguments as JSON values (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v, f'{where}.{k}') for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v, where) for v in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise WeightsFileError(f'{where} is a {type(value).__name__}, which a weights file cannot describe')


def save(path, networks, training_set_kwargs=None):
    """Writes {key: module} (keys of NETWORK_KEYS; modules of this project's families) to `path`, atomically."""
    import safetensors.torch

    import dnnlib
    description = {}
    tensors = {}
    for key, module in networks.items():
        if module is None:
            continue
        assert key in NETWORK_KEYS
        cls = type(module)
        class_path = f'{cls.__module__}.{cls.__name__}'
        if cls.__module__ not in network_rebuild.FAMILIES or not hasattr(module, 'init_kwargs'):
            raise WeightsFileError(f'{key} is a {class_path}, not a network of this project; only those can be exported')
        description[key] = dict(class_=class_path, init_args=_json_ready(list(module.init_args), f'{key} arguments'),
                                init_kwargs=_json_ready(dict(module.init_kwargs), f'{key} arguments'))
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            tensors[f'{key}.{name}'] = tensor.detach().cpu().clone().contiguous()
    header = dict(format=FORMAT, version=VERSION, training_set_kwargs=_json_ready(training_set_kwargs, 'training_set_kwargs'),
                  networks={k: {'class': v['class_'], 'init_args': v['init_args'], 'init_kwargs': v['init_kwargs']}
                            for k, v in description.items()})
    data = safetensors.torch.save(tensors, metadata={'stylegan': json.dumps(header)})
    dnnlib.util.write_atomically(path, lambda f: f.write(data))


def load(data, name='the weights file'):
    """Reads the bytes of a weights file into the dict of legacy.load_network_pkl (G, D, G_ema, augment_pipe,
    training_set_kwargs); WeightsFileError (one line) for anything else."""
    try:
        import safetensors.torch
    except ImportError:
        raise WeightsFileError(f'{name} is a safetensors file; reading it needs the safetensors package '
                               f'(python3 -m pip install safetensors)') from None
    header = _read_header(data, name)
    try:
        tensors = safetensors.torch.load(data)
    except Exception as err:  # The library raises its own errors for every kind of damage.
        raise WeightsFileError(f'{name} is a damaged safetensors file ({str(err).splitlines()[0][:200]})') from None
    result = dict(G=None, D=None, G_ema=None, augment_pipe=None, training_set_kwargs=header.get('training_set_kwargs'))
    networks = header.get('networks')
    if not isinstance(networks, dict) or not networks:
        raise WeightsFileError(f'{name} describes no networks')
    used = set()
    for key, spec in networks.items():
        if key not in NETWORK_KEYS or not isinstance(spec, dict):
            raise WeightsFileError(f'{name}: unknown network entry {key!r}')
        module = _build(key, spec, tensors, name)
        used.update(f'{key}.{n}' for n, _ in list(module.named_parameters()) + list(module.named_buffers()))
        result[key] = module
    extra = sorted(set(tensors) - used)
    if extra:
        raise WeightsFileError(f'{name} holds tensors no network uses ({", ".join(extra[:3])}...)')
    return result


def _read_header(data, name):
    if not is_weights_file(data[:9]):
        raise WeightsFileError(f'{name} is not a safetensors file')
    length = struct.unpack('<Q', data[:8])[0]
    try:
        header = json.loads(data[8:8 + length].decode('utf-8'))
        metadata = header.get('__metadata__') or {}
        description = json.loads(metadata['stylegan'])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        raise WeightsFileError(f'{name} is a safetensors file without a StyleGAN network description '
                               f'(export one with export_weights.py)') from None
    if not isinstance(description, dict) or description.get('format') != FORMAT:
        raise WeightsFileError(f'{name} is not a StyleGAN weights file')
    if description.get('version') != VERSION:
        raise WeightsFileError(f'{name} is a weights file of format version {description.get("version")!r}; '
                               f'this code reads version {VERSION}')
    return description


def _build(key, spec, tensors, name):
    class_path = spec.get('class')
    module_name, _, class_name = str(class_path).rpartition('.')
    if module_name not in network_rebuild.FAMILIES:
        raise WeightsFileError(f'{name}: {key} is a {class_path}, which is not a network class of this project')
    cls = getattr(importlib.import_module(module_name), class_name, None)
    args, kwargs = spec.get('init_args', []), spec.get('init_kwargs', {})
    if cls is None or not isinstance(args, list) or not isinstance(kwargs, dict):
        raise WeightsFileError(f'{name}: {key} names {class_path} and arguments this project cannot construct')
    try:
        with network_rebuild.kept_random_streams(), torch.device('meta'):
            shell = cls(*args, **kwargs)
        expected = {f'{key}.{n}': t for n, t in list(shell.named_parameters()) + list(shell.named_buffers())}
        for tensor_name, tensor in expected.items():
            stored = tensors.get(tensor_name)
            if stored is None or stored.shape != tensor.shape or stored.dtype != tensor.dtype:
                found = 'missing' if stored is None else f'{list(stored.shape)} {stored.dtype}'
                raise ValueError(f'{tensor_name} is {found}, expected {list(tensor.shape)} {tensor.dtype}')
        with network_rebuild.kept_random_streams():
            module = cls(*args, **kwargs)
    except Exception as err:  # A constructor refusing the arguments, or tensors that do not fit.
        raise WeightsFileError(f'{name}: {key} ({class_path}) does not fit its description '
                               f'({str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__})') from None
    with torch.no_grad():
        for tensor_name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            tensor.copy_(tensors[f'{key}.{tensor_name}'])
    return module.eval().requires_grad_(False)

# ----------------------------------------------------------------------------
