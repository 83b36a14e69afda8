"""Pickling that embeds the source code of a class, so a pickle outlives the code that wrote it.

A class decorated with `persistent_class` records its constructor arguments, and its instances
pickle as a call to `_reconstruct_persistent_obj(meta)`, where `meta` holds the complete source of
the defining module. Loading executes that source as a fresh module (once per distinct source
text), so a network pickle keeps working after the project's own code has changed. The format
(version 6) is the one used by the official StyleGAN2-ADA-PyTorch and StyleGAN3 releases.
"""

import copy
import inspect
import io
import pickle
import sys
import types
import uuid

import dnnlib

# ----------------------------------------------------------------------------

_version = 6                    # Format version written and accepted.
_decorators = set()             # Every decorated class (the persistent subclass).
_import_hooks = []              # Callbacks run on `meta` before reconstruction.
_module_to_src_dict = dict()    # Source-backed module -> its source text.
_src_to_module_dict = dict()    # Source text -> module executed from it.


class PersistenceError(pickle.UnpicklingError):
    """A persistent object cannot be reconstructed (unknown format, missing class, ...)."""

# ----------------------------------------------------------------------------


def persistent_class(orig_class):
    """Class decorator: instances pickle together with the source of the defining module."""
    assert isinstance(orig_class, type)
    if is_persistent(orig_class):
        return orig_class

    assert orig_class.__module__ in sys.modules
    orig_module = sys.modules[orig_class.__module__]
    orig_module_src = _module_to_src(orig_module)

    class Decorator(orig_class):
        _orig_module_src = orig_module_src
        _orig_class_name = orig_class.__name__

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Deep copies, so later mutation of the caller's arguments does not leak in.
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = dnnlib.EasyDict(copy.deepcopy(kwargs))
            assert orig_class.__name__ in orig_module.__dict__
            _check_pickleable(self.__reduce__())

        @property
        def init_args(self):
            return copy.deepcopy(self._init_args)

        @property
        def init_kwargs(self):
            return dnnlib.EasyDict(copy.deepcopy(self._init_kwargs))

        def __reduce__(self):
            fields = list(super().__reduce__())
            fields += [None] * max(3 - len(fields), 0)
            if fields[0] is not _reconstruct_persistent_obj:
                meta = dict(type='class', version=_version, module_src=self._orig_module_src,
                            class_name=self._orig_class_name, state=fields[2])
                fields[0] = _reconstruct_persistent_obj  # Reconstruction function.
                fields[1] = (meta,)                       # Its arguments.
                fields[2] = None                          # State is carried inside meta.
            return tuple(fields)

    Decorator.__name__ = orig_class.__name__
    Decorator.__qualname__ = orig_class.__qualname__
    Decorator.__module__ = orig_class.__module__
    Decorator.__doc__ = orig_class.__doc__
    _decorators.add(Decorator)
    return Decorator

# ----------------------------------------------------------------------------


def is_persistent(obj):
    """True if `obj` (an instance or a class) comes from `persistent_class`."""
    try:
        if obj in _decorators:
            return True
    except TypeError:  # Unhashable objects cannot be decorated classes.
        pass
    return type(obj) in _decorators


def import_hook(hook):
    """Registers `hook(meta) -> meta`, called before each persistent object is reconstructed.

    `meta` is an EasyDict with type, version, module_src, class_name and state; a hook may
    rewrite any of them (typically `module_src`, to patch old network code on load).
    """
    assert callable(hook)
    _import_hooks.append(hook)

# ----------------------------------------------------------------------------


def _reconstruct_persistent_obj(meta):
    """Called by pickle on load: rebuilds a persistent object from `meta`."""
    meta = dnnlib.EasyDict(meta)
    meta.state = dnnlib.EasyDict(meta.state) if isinstance(meta.state, dict) else meta.state
    for hook in _import_hooks:
        meta = hook(meta)
        if meta is None:
            raise PersistenceError('A persistence import hook returned None instead of the meta dict')

    version = meta.get('version', None)
    if version != _version:
        raise PersistenceError(
            f'This pickle uses persistence format version {version!r}; this code reads version {_version}. '
            f'It was written by a newer or unknown code base: update this project or re-export the network.')
    if meta.get('type', None) != 'class':
        raise PersistenceError(f'Unknown persistent object type {meta.get("type", None)!r} (expected "class")')

    module = _src_to_module(meta.module_src)
    orig_class = module.__dict__.get(meta.class_name, None)
    if orig_class is None:
        raise PersistenceError(f'The source embedded in the pickle defines no class {meta.class_name!r}')
    decorator_class = persistent_class(orig_class)
    obj = decorator_class.__new__(decorator_class)

    setstate = getattr(obj, '__setstate__', None)
    if callable(setstate):
        setstate(meta.state)
    else:
        obj.__dict__.update(meta.state)
    return obj

# ----------------------------------------------------------------------------


def _module_to_src(module):
    """Source text of a module (either loaded from a file or executed from a pickle)."""
    src = _module_to_src_dict.get(module, None)
    if src is None:
        src = inspect.getsource(module)
        _module_to_src_dict[module] = src
        _src_to_module_dict[src] = module
    return src


def _src_to_module(src):
    """Module executed from `src`; the same text gives the same module, executed once per process."""
    module = _src_to_module_dict.get(src, None)
    if module is None:
        module_name = '_imported_module_' + uuid.uuid4().hex
        module = types.ModuleType(module_name)
        sys.modules[module_name] = module
        _module_to_src_dict[module] = src
        _src_to_module_dict[src] = module
        exec(src, module.__dict__)  # pylint: disable=exec-used
    return module

# ----------------------------------------------------------------------------


def _check_pickleable(obj):
    """Fails early (at construction) if the recorded arguments cannot be pickled."""
    def recurse(obj):
        if isinstance(obj, (list, tuple, set)):
            return [recurse(x) for x in obj]
        if isinstance(obj, dict):
            return [[recurse(x), recurse(y)] for x, y in obj.items()]
        if isinstance(obj, (str, int, float, bool, bytes, bytearray)):
            return None  # Trivially pickleable.
        if f'{type(obj).__module__}.{type(obj).__name__}' in ('numpy.ndarray', 'torch.Tensor', 'torch.nn.parameter.Parameter'):
            return None  # Large and known to pickle; skip the expensive check.
        if is_persistent(obj):
            return None  # Checked when it was constructed.
        return obj
    with io.BytesIO() as f:
        pickle.dump(recurse(obj), f)
