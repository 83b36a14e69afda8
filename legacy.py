"""Loading network pickles written by this project, by the official StyleGAN2-ADA-PyTorch / StyleGAN3
releases (and CREPS) or by the TensorFlow StyleGAN2 / StyleGAN2-ADA releases, safely by default; run as a
script, converting a pickle into a PyTorch network pickle.

A network pickle normally runs code when it is loaded: the source embedded in its persistent objects,
and any function its author names. By default `load_network_pkl` runs none of it: it reads the pickle
with a restricted unpickler (torch_utils.safe_pickle) and rebuilds every network as this project's own
class from its recorded constructor arguments and weights (training/network_rebuild.py). Networks it
cannot rebuild (custom research variants) load only when the user trusts the file: `trust_pickle=True`,
the tools' --trust-pickle, or STYLEGAN_TRUST_PICKLE=1. See docs/security.md.
"""

import copy
import io
import os
import pickle
import sys

import click
import torch

import dnnlib
from torch_utils import misc
from torch_utils import safe_pickle
from training import tf_conversion
from training import weights_file

# ----------------------------------------------------------------------------

NETWORK_KEYS = ('G', 'D', 'G_ema')
POSE_MODEL_KEY = 'P'  # The pose-to-latent network in a pose-model pickle of train_pose.py.
TRUST_ENV = safe_pickle.TRUST_ENV
TRUST_HINT = f'if you trust where the file comes from, pass --trust-pickle (or set {TRUST_ENV}=1) to run its code'


class NetworkPickleError(ValueError):
    """The file is not a network pickle this code can read; the message says what it is instead."""


def trust_pickle_option(command):
    """Click decorator: the tools' --trust-pickle flag, which sets STYLEGAN_TRUST_PICKLE for this process
    and the processes it starts."""

    def enable(_ctx, _param, value):
        if value:
            os.environ[TRUST_ENV] = '1'
    return click.option('--trust-pickle', is_flag=True, expose_value=False, callback=enable,
                        help='Run the code network pickles carry, for networks the safe loader cannot rebuild '
                             '(custom variants); only for files you trust (docs/security.md)')(command)


def load_network_pkl(f, force_fp16=False, trust_pickle=None):
    """Reads a network pickle from the binary file object `f`.

    Returns a dict with 'G', 'D', 'G_ema', 'augment_pipe' and 'training_set_kwargs' (missing
    entries are None). `f` may also be a weights file of export_weights.py (safetensors), or a TensorFlow
    StyleGAN2 / StyleGAN2-ADA pickle, converted on the fly (training/tf_conversion.py).
    With `force_fp16`, networks are rebuilt to run their highest
    resolutions in float16 (num_fp16_res=4, conv_clamp=256; fc_clamp=256 for CREPS) with the same weights.
    `trust_pickle`: run the code the pickle carries (None: as STYLEGAN_TRUST_PICKLE says; default no).
    """
    name = getattr(f, 'name', 'the network pickle')
    if trust_pickle is None:
        trust_pickle = safe_pickle.trusts_pickles()
    f, head = _peek(f, 9)
    if weights_file.is_weights_file(head):
        try:
            data = weights_file.load(f.read(), name=name)
        except weights_file.WeightsFileError as e:
            raise NetworkPickleError(str(e)) from None
    elif trust_pickle:
        data = _load_trusted(f, name)
    else:
        data = _load_safely(f, name)
    if tf_conversion.is_tf_network_tuple(data):
        try:
            data = tf_conversion.convert_tf_pickle(data, name=name)
        except tf_conversion.TFConversionError as e:
            raise NetworkPickleError(str(e)) from None

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


def load_pose_model_pkl(f, trust_pickle=None):
    """Reads a pose-model pickle of train_pose.py from the binary file object `f`, safely unless trusted (as
    load_network_pkl). Returns its dict: 'P' (training.networks_pose.PoseToLatent), 'generator_sha256',
    'layout', 'fps' and the training options; NetworkPickleError (one line) for anything else."""
    name = getattr(f, 'name', 'the pose model')
    if trust_pickle is None:
        trust_pickle = safe_pickle.trusts_pickles()
    f, _head = _peek(f, 9)
    data = _load_trusted(f, name) if trust_pickle else _load_safely(f, name)
    model = data.get(POSE_MODEL_KEY) if isinstance(data, dict) else None
    if not isinstance(model, torch.nn.Module) or type(model).__name__ != 'PoseToLatent':
        raise NetworkPickleError(f'{name} is not a pose model of train_pose.py (a pickle with a PoseToLatent '
                                 f'network under {POSE_MODEL_KEY!r})')
    for key, kind in (('generator_sha256', str), ('layout', str), ('fps', float)):
        if not isinstance(data.get(key), kind):
            raise NetworkPickleError(f'{name} is a pose model without its {key!r} record; retrain it with train_pose.py')
    return data


def _peek(f, size):
    """(a file object reading from the start, its first `size` bytes)."""
    head = f.read(size)
    try:
        f.seek(-len(head), io.SEEK_CUR)
        return f, head
    except (OSError, ValueError, AttributeError):  # Not seekable: keep the rest in memory.
        return io.BytesIO(head + f.read()), head


class _TrustedUnpickler(pickle.Unpickler):
    """pickle's own unpickler, except that TensorFlow-era networks are read as data (their code cannot run here)."""

    def find_class(self, module, name):
        if (module, name) == ('dnnlib.tflib.network', 'Network'):
            return safe_pickle.TFNetworkRecord
        return super().find_class(module, name)


def _load_trusted(f, name):
    """pickle.load, running whatever the pickle carries."""
    try:
        return _TrustedUnpickler(f).load()
    except ModuleNotFoundError as e:
        raise NetworkPickleError(f'{name} needs the Python module {e.name!r}, which is not available; '
                                 f'it is not a StyleGAN network pickle or needs that package installed') from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as e:
        raise NetworkPickleError(f'{name} is not a readable network pickle ({type(e).__name__}: {e})') from None


def _load_safely(f, name):
    """The restricted unpickler, then every recorded network rebuilt as this project's class."""
    from training import network_rebuild  # Not at the top: the networks need not load for a refusal.
    try:
        data = safe_pickle.load(f)
    except safe_pickle.UnsafePickleError as e:
        raise NetworkPickleError(f'{name} was refused: {e}, so loading it would run code; {TRUST_HINT}') from None
    except safe_pickle.MalformedPickleError as e:
        raise NetworkPickleError(f'{name}: {e}') from None
    if not isinstance(data, dict):
        return data  # Refused with the type named by the caller.

    unknown_sources = set()
    for key in NETWORK_KEYS + ('augment_pipe', POSE_MODEL_KEY):
        value = data.get(key)
        if isinstance(value, safe_pickle.RecordedObject):
            unknown_sources |= _sources(value) - set(network_rebuild.known_source_hashes())
            try:
                data[key] = network_rebuild.rebuild(value, what=key)
            except network_rebuild.RebuildError as e:
                raise NetworkPickleError(f'{name}: {e}; {TRUST_HINT}') from None
    if unknown_sources:
        print(f'Note: {name} carries network code this project does not know (sha256 '
              f'{", ".join(sorted(h[:12] for h in unknown_sources))}); it was not run: the networks were rebuilt as '
              f'this project\'s classes from their recorded arguments and weights (--trust-pickle runs that code instead).',
              file=sys.stderr)
    return data


def _sources(recorded):
    """SHA-256 of every module source embedded in a recorded object and its recorded submodules."""
    found = set()
    stack = [recorded]
    while stack:
        node = stack.pop()
        if isinstance(node, safe_pickle.RecordedObject):
            if node.source_sha256 is not None:
                found.add(node.source_sha256)
            state = node.state if isinstance(node.state, dict) else {}
        elif isinstance(node, torch.nn.Module):
            state = node.__dict__
        else:
            continue
        children = state.get('_modules')
        if isinstance(children, dict):
            stack.extend(children.values())
    return found


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

# ----------------------------------------------------------------------------


@click.command()
@click.option('--source', help='Network pickle to read: path or URL (TensorFlow or PyTorch)', required=True,
              metavar='PATH')
@click.option('--dest', help='Where to write the PyTorch network pickle', required=True, metavar='PATH')
@click.option('--force-fp16', help='Rebuild the networks to run their 4 highest resolutions in float16',
              type=bool, default=False, is_flag=False, flag_value=True, show_default=True, metavar='BOOL')
@trust_pickle_option
def convert_network_pickle(source, dest, force_fp16):
    """Convert a network pickle of an earlier release into a PyTorch network pickle of this project.

    Reads the TensorFlow StyleGAN2 and StyleGAN2-ADA pickles (G, D and Gs: configs E and F, conditional or not,
    any resolution) as well as PyTorch pickles. StyleGAN (1), StyleGAN2 configs A-D and the comparison methods
    of StyleGAN2-ADA are not convertible.

    Example:

    \b
    python legacy.py \\
        --source=https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/stylegan2-cat-config-f.pkl \\
        --dest=stylegan2-cat-config-f.pkl
    """
    if not dnnlib.util.is_url(source, allow_file_urls=True) and not os.path.isfile(source):
        raise click.ClickException(f'--source: no such file: {source}')
    print(f'Loading "{source}"...')
    try:
        with dnnlib.util.open_url(source) as f:
            data = load_network_pkl(f, force_fp16=force_fp16)
    except (NetworkPickleError, dnnlib.util.DownloadError, OSError) as e:
        raise click.ClickException(f'--source: {e}') from None
    print(f'Saving "{dest}"...')
    try:
        if os.path.dirname(dest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
        dnnlib.util.write_atomically(dest, lambda f: pickle.dump(data, f))
    except OSError as e:
        raise click.ClickException(f'--dest: cannot write {dest}: {e.strerror or e}') from None
    print('Done.')


if __name__ == '__main__':
    convert_network_pickle()  # pylint: disable=no-value-for-parameter

# ----------------------------------------------------------------------------
