"""Reading pickles without running code from them.

A pickle can call any function its author names, and a network pickle's persistent objects carry module
source that `torch_utils.persistence` executes. `load(f)` reads such a pickle with a restricted unpickler:

- only the globals in `ALLOWED_GLOBALS` resolve (tensor and storage rebuilders, NumPy arrays, dtypes and
  scalars, ordered dicts, `dnnlib.EasyDict`, container modules of torch.nn, and the few project classes
  that pickles name directly); any other global ends the load with UnsafePickleError naming it;
- a torch storage, which pickles as a nested torch.save stream, is read by torch's own weights-only
  unpickler;
- a persistent object becomes a `RecordedObject` (its class name, the hash of its embedded source, its
  state), and its source is never executed. Turning recorded objects into modules is the caller's
  business (training/network_rebuild.py);
- a network of the TensorFlow releases (`dnnlib.tflib.network.Network`) becomes a `TFNetworkRecord` holding
  its pickled state; the graph-building source it carries is never executed (training/tf_conversion.py
  turns the recorded variables into this project's networks).

Everything the unpickler can raise on corrupt or hostile input surfaces as UnsafePickleError or
MalformedPickleError, with one-line messages.
"""

import collections
import hashlib
import importlib
import io
import os
import pickle
import warnings

import numpy as np
import torch

import dnnlib

# ----------------------------------------------------------------------------

TRUST_ENV = 'STYLEGAN_TRUST_PICKLE'  # Set (to 1) by the tools' --trust-pickle: run the code pickles carry.


def trusts_pickles():
    """Whether the user asked to run the code that pickles carry (STYLEGAN_TRUST_PICKLE)."""
    return os.environ.get(TRUST_ENV, '').strip().lower() not in ('', '0', 'false', 'no')


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a function or class outside the allow-list (code would run to load it)."""

    def __init__(self, message, module=None, name=None):
        super().__init__(message)
        self.module = module    # The refused global's module and name, when a global was refused.
        self.name = name


class MalformedPickleError(pickle.UnpicklingError):
    """The bytes are not a readable pickle (truncated, corrupt, or not a pickle at all)."""

# ----------------------------------------------------------------------------


class RecordedObject:
    """A persistent object read without running its embedded code."""

    def __init__(self, class_name, module_src, state, version, kind):
        self.class_name = class_name            # Name of the class in its module.
        self.module_src = module_src            # The embedded module source (text; never executed here).
        self.source_sha256 = hashlib.sha256(module_src.encode('utf-8')).hexdigest() if isinstance(module_src, str) else None
        self.state = state                      # What the object's __reduce__ gave as state (a module's __dict__).
        self.version = version                  # Persistence format version.
        self.kind = kind                        # 'class' for every persistent object of the known format.

    def __repr__(self):
        return f'RecordedObject({self.class_name!r}, source sha256 {str(self.source_sha256)[:12]})'


class TFNetworkRecord:
    """A TensorFlow-era network read as data: its pickled state, with none of its code run."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise MalformedPickleError(f'a TensorFlow network carries a {type(state).__name__} instead of its state')
        self.state = state          # version, name, static_kwargs, components, variables, build_module_src, ...

    def __repr__(self):
        return f'TFNetworkRecord({self.state.get("name")!r})' if hasattr(self, 'state') else 'TFNetworkRecord()'


def _record_persistent_obj(meta):
    if not isinstance(meta, dict):
        raise MalformedPickleError(f'a persistent object carries a {type(meta).__name__} instead of its description')
    return RecordedObject(class_name=meta.get('class_name'), module_src=meta.get('module_src'), state=meta.get('state'),
                          version=meta.get('version'), kind=meta.get('type'))


def _load_storage_bytes(data):
    """A storage pickled as a nested torch.save stream, read by torch's weights-only unpickler."""
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedPickleError('a tensor storage is not stored as bytes')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # The weights-only unpickler warns about protocols it was not tested with.
        try:
            return torch.load(io.BytesIO(data), weights_only=True, map_location='cpu')
        except pickle.UnpicklingError as err:
            raise UnsafePickleError(f'a tensor storage holds more than tensor data ({str(err).splitlines()[0]})') from None
        except Exception as err:  # torch.load reports damaged streams in many ways (AssertionError among them).
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise MalformedPickleError(f'a tensor storage is damaged ({type(err).__name__}: {reason[:200]})') from None


def _latin1_bytes(text, encoding='latin1'):
    """How pickle protocol 2 spells bytes: _codecs.encode(text, 'latin1')."""
    if encoding not in ('latin1', 'latin-1') or not isinstance(text, str):
        raise UnsafePickleError(f'it encodes text with {encoding!r}, which network pickles do not')
    return text.encode('latin1')


class _Deferred:
    """A global imported on first use (modules that need not load otherwise)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def resolve(self):
        return getattr(importlib.import_module(self.module), self.name)

# (module, name) -> the object, or a zero-argument function giving it (imported on first use).
ALLOWED_GLOBALS = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('builtins', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('builtins', 'slice'): slice,
    ('builtins', 'complex'): complex,
    ('_codecs', 'encode'): _latin1_bytes,
    ('dnnlib.util', 'EasyDict'): dnnlib.EasyDict,
    ('dnnlib', 'EasyDict'): dnnlib.EasyDict,
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): _record_persistent_obj,
    ('torch.storage', '_load_from_bytes'): _load_storage_bytes,
    ('torch._utils', '_rebuild_tensor'): torch._utils._rebuild_tensor,
    ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): torch._utils._rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): getattr(torch._utils, '_rebuild_parameter_with_state', None),
    ('torch.nn.parameter', 'Parameter'): torch.nn.Parameter,
    ('torch', 'Size'): torch.Size,
    ('torch', 'device'): torch.device,
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): np.dtype,
    ('numpy.core.multiarray', '_reconstruct'): _Deferred('numpy.core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'): _Deferred('numpy.core.multiarray', 'scalar'),
    ('numpy._core.multiarray', '_reconstruct'): _Deferred('numpy._core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', 'scalar'): _Deferred('numpy._core.multiarray', 'scalar'),
    ('torch.nn.modules.container', 'Sequential'): torch.nn.Sequential,
    ('torch.nn.modules.container', 'ModuleList'): torch.nn.ModuleList,
    ('torch.nn.modules.container', 'ModuleDict'): torch.nn.ModuleDict,
    ('torch.nn.modules.linear', 'Identity'): torch.nn.Identity,
    # Read as data only; its embedded graph-building source is kept as text and never run.
    ('dnnlib.tflib.network', 'Network'): TFNetworkRecord,
    # Not persistent in the public CREPS release, so pickles name it (it is this project's own class).
    ('training.networks_creps', 'SynthesisInput'): _Deferred('training.networks_creps', 'SynthesisInput'),
}
ALLOWED_GLOBALS.update({('torch', name): getattr(torch, name) for name in
                        ('float32', 'float16', 'bfloat16', 'float64', 'int64', 'int32', 'uint8', 'bool')})
ALLOWED_GLOBALS.update({('numpy', name): getattr(np, name) for name in
                        ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'bool_')})
ALLOWED_GLOBALS = {key: value for key, value in ALLOWED_GLOBALS.items() if value is not None}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        target = ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise UnsafePickleError(f'it names {module}.{name}, which is not on the list of what a network pickle may hold',
                                    module=module, name=name)
        return target.resolve() if isinstance(target, _Deferred) else target

    def persistent_load(self, pid):
        raise UnsafePickleError('it uses persistent IDs, which network pickles do not')


def load(f):
    """Unpickles the binary file `f` without running code from it (see the module docstring)."""
    try:
        return _RestrictedUnpickler(f).load()
    except (UnsafePickleError, MalformedPickleError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            OverflowError, MemoryError, UnicodeDecodeError, RuntimeError, ImportError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MalformedPickleError(f'it is not a readable pickle ({type(err).__name__}: {reason[:200]})') from None


def loads(data):
    return load(io.BytesIO(data))

# ----------------------------------------------------------------------------
