"""Pickling that embeds the source code of a class, so a pickle outlives the code that wrote it.

A class decorated with `persistent_class` records its constructor arguments, and its instances
pickle as a call to `_reconstruct_persistent_obj(meta)`, where `meta` holds the complete source of
the defining module. Loading executes that source as a fresh module (once per distinct source
text), so a network pickle keeps working after the project's own code has changed. The format
(version 6) is the one used by the official StyleGAN2-ADA-PyTorch and StyleGAN3 releases.
"""

import copy
import inspect
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
    module = sys.modules.get(orig_class.__module__)
    assert module is not None, f'{orig_class.__module__} must be imported before its classes are decorated'
    source = _module_to_src(module)
    class_name = orig_class.__name__

    class Persistent(orig_class):
        _orig_module_src = source       # What unpickling executes to get the class back.
        _orig_class_name = class_name   # The class to take from that module.

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Copies: the caller may change its own objects afterwards.
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = dnnlib.EasyDict(copy.deepcopy(kwargs))
            assert class_name in vars(module), f'{class_name} is not a top-level name of its module'
            _check_pickleable(self.__reduce__())

        init_args = property(lambda self: copy.deepcopy(self._init_args),
                             doc='The positional constructor arguments (a copy).')
        init_kwargs = property(lambda self: dnnlib.EasyDict(copy.deepcopy(self._init_kwargs)),
                               doc='The keyword constructor arguments (a copy).')

        def __reduce__(self):
            return _as_persistent(super().__reduce__(), self._orig_module_src, self._orig_class_name)

    for attribute in ('__name__', '__qualname__', '__module__', '__doc__'):
        setattr(Persistent, attribute, getattr(orig_class, attribute))
    _decorators.add(Persistent)
    return Persistent


def _as_persistent(reduced, source, class_name):
    """A __reduce__ tuple rewritten so that unpickling rebuilds the object from the embedded module source,
    with the state carried inside the description."""
    fields = tuple(reduced) + (None,) * max(3 - len(reduced), 0)
    if fields[0] is _reconstruct_persistent_obj:
        return fields
    meta = dict(type='class', version=_version, module_src=source, class_name=class_name, state=fields[2])
    return (_reconstruct_persistent_obj, (meta,), None) + fields[3:]

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
    if module not in _module_to_src_dict:
        _remember(module, inspect.getsource(module))
    return _module_to_src_dict[module]


def _src_to_module(src):
    """Module executed from `src`; the same text gives the same module, executed once per process."""
    if src not in _src_to_module_dict:
        module = types.ModuleType(f'_imported_module_{uuid.uuid4().hex}')
        sys.modules[module.__name__] = module   # Registered first: its classes may refer to it while it runs.
        _remember(module, src)
        exec(src, vars(module))  # pylint: disable=exec-used
    return _src_to_module_dict[src]


def _remember(module, src):
    _module_to_src_dict[module] = src
    _src_to_module_dict[src] = module

# ----------------------------------------------------------------------------


def _check_pickleable(obj):
    """Fails at construction, not at the first save, when recorded arguments cannot be pickled. Tensors, arrays
    and persistent objects are known to pickle, and large; they are left out of the trial."""
    known_to_pickle = ('numpy.ndarray', 'torch.Tensor', 'torch.nn.parameter.Parameter')

    def stand_in(value):
        if isinstance(value, dict):
            return [(stand_in(key), stand_in(item)) for key, item in value.items()]
        if isinstance(value, (list, tuple, set)):
            return [stand_in(item) for item in value]
        plain = isinstance(value, (str, int, float, bool, bytes, bytearray))
        if plain or is_persistent(value) or f'{type(value).__module__}.{type(value).__name__}' in known_to_pickle:
            return None
        return value

    pickle.dumps(stand_in(obj))

# ----------------------------------------------------------------------------
