"""Rebuilding the persistent objects of a safely read pickle (torch_utils.safe_pickle.RecordedObject) as
this project's own modules, without running the code the pickle carries.

A recorded object names its class and holds the constructor arguments and the state it was pickled
with. It is rebuilt by constructing this project's class of that name, from one of the known families,
with the recorded arguments, first on the meta device (nothing allocated), and accepted only when the
result has exactly the recorded structure: the class of every submodule, the constructor arguments of
every persistent submodule, and the names, shapes and dtypes of every parameter and buffer. The module is
then built for real and the recorded tensors are copied in. A pickle of the official StyleGAN2-ADA,
StyleGAN3 or CREPS code therefore gives the same module as one of this project's.
"""

import contextlib
import hashlib
import inspect
import os

import numpy as np
import torch

from torch_utils import persistence
from torch_utils.safe_pickle import RecordedObject

# Modules whose persistent classes a pickle may be rebuilt into.
FAMILIES = ['training.networks_stylegan2', 'training.networks_stylegan3', 'training.networks_creps',
            'training.networks_stylegan_t', 'training.augment', 'training.networks_pose']

# SHA-256 of module sources this project knows: every version of its own persistent modules (computed from
# the files as they are now, and listed in known_sources.txt for the versions that came before).
_KNOWN_SOURCES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'known_sources.txt')


class RebuildError(ValueError):
    """A recorded object that cannot be rebuilt as one of this project's modules."""

# ----------------------------------------------------------------------------


def _family_modules():
    """The family modules that import here (a family whose module is missing simply has no classes)."""
    import importlib
    modules = []
    for name in FAMILIES:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return modules


def known_source_hashes():
    """{sha256: description} of the persistent module sources this project recognises."""
    known = {}
    if os.path.isfile(_KNOWN_SOURCES_FILE):
        with open(_KNOWN_SOURCES_FILE) as f:
            for line in f:
                fields = line.split(None, 1)
                if len(fields) == 2 and not line.startswith('#'):
                    known[fields[0]] = fields[1].strip()
    for module in _family_modules():
        source = inspect.getsource(module)
        known[hashlib.sha256(source.encode('utf-8')).hexdigest()] = f'{module.__name__} (this version)'
    return known


def candidate_classes(class_name):
    """This project's persistent classes named `class_name`, across the families."""
    found = []
    for module in _family_modules():
        cls = module.__dict__.get(class_name)
        if isinstance(cls, type) and persistence.is_persistent(cls):
            found.append(cls)
    return found

# ----------------------------------------------------------------------------


def rebuild(recorded, what='the network'):
    """The module that `recorded` describes, as this project's class; RebuildError (one line) otherwise."""
    if not isinstance(recorded, RecordedObject):
        raise RebuildError(f'{what} is a {type(recorded).__name__}, not a network')
    if recorded.kind != 'class' or recorded.version != 6:
        raise RebuildError(f'{what} ({recorded.class_name}) uses persistence format {recorded.version!r}, not 6')
    args, kwargs = _init_arguments(recorded, what)
    candidates = candidate_classes(recorded.class_name)
    if not candidates:
        raise RebuildError(f'{what} is a {recorded.class_name}, which is not a class of this project')
    problems = []
    for cls in candidates:
        with kept_random_streams():
            try:
                with torch.device('meta'):
                    shell = cls(*args, **kwargs)
                _compare(recorded, shell, cls.__name__)
            except Exception as err:  # A constructor refusing the arguments is a mismatch like any other.
                problems.append(f'as {cls.__module__}.{cls.__name__}: '
                                f'{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}')
                continue
            module = cls(*args, **kwargs)
        _load_tensors(recorded, module)
        return module
    raise RebuildError(f'{what} is a {recorded.class_name} that does not match this project\'s class '
                       f'({"; ".join(problems)[:400]})')


@contextlib.contextmanager
def kept_random_streams():
    """Constructors draw random initial weights: this keeps torch's and NumPy's global streams as they were."""
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        np.random.set_state(state)


def _init_arguments(recorded, what):
    state = recorded.state if isinstance(recorded.state, dict) else {}
    args = state.get('_init_args', ())
    kwargs = state.get('_init_kwargs', {})
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise RebuildError(f'{what} ({recorded.class_name}) does not record its constructor arguments')
    return tuple(args), dict(kwargs)

# ----------------------------------------------------------------------------
# Structure.


def _module_state(node):
    """The __dict__ of a recorded object or of a module the unpickler built (torch.nn containers)."""
    if isinstance(node, RecordedObject):
        return node.state if isinstance(node.state, dict) else None
    if isinstance(node, torch.nn.Module):
        return node.__dict__
    return None


def _compare(node, module, path):
    """Raises ValueError naming the first place where `module` (a meta-device shell) differs from `node`."""
    state = _module_state(node)
    if state is None:
        raise ValueError(f'{path} is a {type(node).__name__}, not a module')
    recorded_class = node.class_name if isinstance(node, RecordedObject) else type(node).__name__
    if recorded_class != type(module).__name__:
        raise ValueError(f'{path} is a {recorded_class}, not a {type(module).__name__}')
    if isinstance(node, RecordedObject) and persistence.is_persistent(module):
        args, kwargs = state.get('_init_args', ()), state.get('_init_kwargs', {})
        if not _same_value(list(args), list(module.init_args)) or not _same_value(dict(kwargs), dict(module.init_kwargs)):
            raise ValueError(f'{path} was made with other constructor arguments')
    for kind in ('_parameters', '_buffers'):
        recorded = state.get(kind)
        if not isinstance(recorded, dict):
            raise ValueError(f'{path} has no {kind[1:]}')
        ours = getattr(module, kind)
        if set(recorded) != set(ours):
            raise ValueError(f'{path} has {kind[1:]} {sorted(map(str, recorded))}, expected {sorted(ours)}')
        for name, tensor in ours.items():
            other = recorded[name]
            if tensor is None or other is None:
                if (tensor is None) != (other is None):
                    raise ValueError(f'{path}.{name} is {"missing" if other is None else "unexpected"}')
                continue
            if not isinstance(other, torch.Tensor) or other.shape != tensor.shape or other.dtype != tensor.dtype:
                shown = f'{list(other.shape)} {other.dtype}' if isinstance(other, torch.Tensor) else type(other).__name__
                raise ValueError(f'{path}.{name} is {shown}, expected {list(tensor.shape)} {tensor.dtype}')
    children = state.get('_modules')
    if not isinstance(children, dict) or set(children) != set(module._modules):
        raise ValueError(f'{path} has submodules {sorted(children) if isinstance(children, dict) else None}, '
                         f'expected {sorted(module._modules)}')
    for name, child in module._modules.items():
        if child is None or children[name] is None:
            if (child is None) != (children[name] is None):
                raise ValueError(f'{path}.{name} is {"missing" if children[name] is None else "unexpected"}')
            continue
        _compare(children[name], child, f'{path}.{name}')


def _same_value(a, b):
    """Equality of constructor arguments as pickled (numbers, strings, containers, arrays)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, np.generic)) or isinstance(b, (np.ndarray, np.generic)):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a.cpu(), b.cpu())
    return type(a) is type(b) and a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                              and not isinstance(a, bool) and not isinstance(b, bool) and a == b)

# ----------------------------------------------------------------------------
# Tensors.


@torch.no_grad()
def _load_tensors(node, module):
    """Copies the recorded parameters and buffers into `module` (same structure, checked) and takes the
    recorded training mode and requires_grad flags."""
    state = _module_state(node)
    if isinstance(state.get('training'), bool):
        module.training = state['training']
    for name, param in module._parameters.items():
        if param is not None:
            recorded = state['_parameters'][name]
            param.copy_(recorded)
            param.requires_grad_(bool(recorded.requires_grad))
    for name, buffer in module._buffers.items():
        if buffer is not None:
            buffer.copy_(state['_buffers'][name])
    for name, child in module._modules.items():
        if child is not None:
            _load_tensors(state['_modules'][name], child)

# ----------------------------------------------------------------------------
