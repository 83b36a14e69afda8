"""Safe loading of network pickles: hostile pickles built here are refused without running anything (through
legacy.load_network_pkl and the tools), official-format networks of every family load through the safe path
into this project's classes with the outputs of the trusted path, weights files round-trip exactly, and
mutated pickles and weights files fail only with the documented error."""

import contextlib
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import textwrap

import numpy as np
import pytest
import torch

import legacy
from helpers import FIXTURES_DIR, REPO_ROOT, relative_error, run_python
from torch_utils import persistence
from torch_utils import safe_pickle
from training import network_rebuild
from training import weights_file

# ----------------------------------------------------------------------------
# Helpers.


def tiny_sg2(seed=0):
    from training import networks_stylegan2
    torch.manual_seed(seed)
    G = networks_stylegan2.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                                     mapping_kwargs=dict(num_layers=2), channel_base=64, channel_max=16)
    D = networks_stylegan2.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=16)
    return G.eval(), D.eval()


@contextlib.contextmanager
def foreign_source(*modules, suffix='\n# The same network as written by another code base.\n'):
    """Pickles written inside embed a different module source, as the official releases' pickles do."""
    classes = [value for module in modules for value in vars(module).values()
               if isinstance(value, type) and persistence.is_persistent(value)]
    saved = [(cls, cls._orig_module_src) for cls in classes]
    try:
        for cls, src in saved:
            cls._orig_module_src = src + suffix
        yield
    finally:
        for cls, src in saved:
            cls._orig_module_src = src


def load(data, trust=False):
    return legacy.load_network_pkl(io.BytesIO(data), trust_pickle=trust)


class Payload:
    """Pickles as fn(*args): a function call the unpickler would make."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class PersistentMeta:
    """Pickles as a persistent object described by `meta` (what torch_utils.persistence writes)."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return persistence._reconstruct_persistent_obj, (self.meta,)


def evil_source(marker, class_name='Generator'):
    return textwrap.dedent(f'''
        open({str(marker)!r}, 'w').write('ran')
        import torch
        class {class_name}(torch.nn.Module):
            pass
    ''')


def hostile_pickles(marker):
    """name -> pickle bytes that run code creating `marker` when loaded the ordinary way."""
    G, _D = tiny_sg2()
    meta = G.__reduce__()[1][0]
    shadow = dict(meta, module_src=evil_source(marker))                       # Our class name and state, evil source.
    wrong = dict(meta, module_src=evil_source(marker, 'Evil'), class_name='Evil', state=dict(_init_args=(), _init_kwargs={}))
    nested = pickle.dumps(Payload(os.system, f'touch {marker}'))
    cases = {
        'os.system': Payload(os.system, f'touch {marker}'),
        'eval': Payload(eval, f'open({str(marker)!r}, "w")'),
        'exec': Payload(exec, f'open({str(marker)!r}, "w")'),
        'builtins.open': Payload(open, str(marker), 'w'),
        'module source of an unknown class': PersistentMeta(wrong),
        'nested pickle in a tensor storage': Payload(torch.storage._load_from_bytes, nested),
        'torch.load payload': Payload(torch.load, io.BytesIO(nested)),
    }
    result = {}
    for name, payload in cases.items():
        data = dict(G=payload, D=None, G_ema=payload, augment_pipe=None, training_set_kwargs=None)
        if 'nested' in name or 'torch.load' in name:
            data = dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=dict(extra=payload))
        result[name] = pickle.dumps(data)
    result['class shadowing ours, arguments changed'] = pickle.dumps(dict(
        G=PersistentMeta(dict(shadow, state=dict(shadow['state'], _init_kwargs=dict(meta['state']['_init_kwargs'], w_dim=9)))),
        D=None, G_ema=None))
    return result

# ----------------------------------------------------------------------------
# Hostile pickles.


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp('hostile')
    marker = folder / 'side-effect'
    return marker, hostile_pickles(marker)


def test_hostile_pickles_run_nothing_and_are_refused(hostile):
    marker, payloads = hostile
    for name, data in payloads.items():
        with pytest.raises(legacy.NetworkPickleError) as info:
            load(data)
        message = str(info.value)
        assert '\n' not in message and ('refused' in message or 'does not match' in message or 'not a class' in message), (name, message)
        assert '--trust-pickle' in message, (name, message)
        assert not marker.exists(), f'{name}: code ran'


def test_the_hostile_pickles_do_run_code_when_trusted(hostile, tmp_path):
    """The payloads are real: loaded the ordinary way, they create the marker."""
    marker, payloads = hostile
    for name in ('os.system', 'builtins.open', 'module source of an unknown class'):
        with contextlib.suppress(Exception):
            load(payloads[name], trust=True)
        assert marker.exists(), name
        marker.unlink()


def test_shadowing_class_with_our_arguments_is_rebuilt_without_running_its_source(tmp_path, capsys):
    marker = tmp_path / 'side-effect'
    G, _D = tiny_sg2()
    meta = G.__reduce__()[1][0]
    data = pickle.dumps(dict(G=PersistentMeta(dict(meta, module_src=evil_source(marker))), D=None, G_ema=None))
    loaded = load(data)['G']
    assert not marker.exists()
    assert type(loaded).__module__ == 'training.networks_stylegan2'
    z = torch.randn([2, 8])
    assert torch.equal(loaded.eval()(z, None, noise_mode='const'), G(z, None, noise_mode='const'))
    note = capsys.readouterr().err
    assert note.count('\n') == 1 and 'does not know' in note and '--trust-pickle' in note


@pytest.mark.parametrize('tool', ['gen_images', 'calc_metrics', 'train', 'export_weights'])
def test_tools_refuse_hostile_pickles_in_one_line(hostile, tmp_path, tool):
    marker, payloads = hostile
    path = tmp_path / 'hostile.pkl'
    path.write_bytes(payloads['os.system'])
    args = {
        'gen_images': ['gen_images.py', f'--network={path}', '--seeds=0', f'--outdir={tmp_path / "out"}'],
        'calc_metrics': ['calc_metrics.py', f'--network={path}', '--metrics=fid50k_full', '--data=missing.zip'],
        'train': ['train.py', f'--outdir={tmp_path / "runs"}', '--cfg=stylegan2', f'--data={tmp_path / "data.zip"}',
                  '--gpus=1', '--batch=4', '--gamma=1', f'--resume={path}', '--metrics=none'],
        'export_weights': ['export_weights.py', f'--network={path}', f'--dest={tmp_path / "w.safetensors"}'],
    }[tool]
    if tool == 'train':
        from test_train import write_dataset
        write_dataset(tmp_path / 'data.zip')
    result = run_python(args)
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('Error')]
    assert len(errors) == 1 and 'posix.system' in errors[0] and '--trust-pickle' in errors[0], result.stderr
    assert not marker.exists()
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'runs').exists() and not (tmp_path / 'w.safetensors').exists()

# ----------------------------------------------------------------------------
# Every family through the safe path, as official pickles (foreign source).


def fixture_networks(name):
    """(G, D or None, io) of a fixture with its reference weights."""
    import json
    with open(os.path.join(FIXTURES_DIR, f'{name}.json')) as f:
        meta = json.load(f)
    module = {'sg2': 'training.networks_stylegan2', 'sg3t': 'training.networks_stylegan3',
              'creps': 'training.networks_creps'}[name.split('-')[0]]
    import importlib
    G = importlib.import_module(module).Generator(**meta['G_init_kwargs'])
    D = None
    with np.load(os.path.join(FIXTURES_DIR, f'{name}.npz')) as data:
        G.load_state_dict({k[2:]: torch.from_numpy(data[k]) for k in data.files if k.startswith('G.')})
        if meta.get('D_init_kwargs'):
            from training.networks_stylegan2 import Discriminator
            D = Discriminator(**meta['D_init_kwargs'])
            D.load_state_dict({k[2:]: torch.from_numpy(data[k]) for k in data.files if k.startswith('D.')})
        io_arrays = {k[3:]: torch.from_numpy(data[k]) for k in data.files if k.startswith('io.')}
    return G.eval(), (D.eval() if D is not None else None), io_arrays


@pytest.mark.parametrize('name', ['sg2-32-uncond', 'sg3t-32-uncond', 'creps-32-uncond', 'sg3r-tiny'])
def test_every_family_loads_safely_with_the_outputs_of_the_trusted_path(name, capsys):
    import importlib
    if name == 'sg3r-tiny':
        from training import networks_stylegan3
        torch.manual_seed(1)
        G = networks_stylegan3.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=512,
                                         channel_max=16, conv_kernel=1, use_radial_filters=True, num_layers=6,
                                         num_critical=2, margin_size=4, mapping_kwargs=dict(num_layers=2)).eval()
        D, io_arrays = None, dict(z=torch.randn([2, 8]), c=torch.zeros([2, 0]))
    else:
        G, D, io_arrays = fixture_networks(name)
    families = [importlib.import_module(m) for m in network_rebuild.FAMILIES]
    with foreign_source(*families):
        data = pickle.dumps(dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=None))
    safe, trusted = load(data), load(data, trust=True)
    assert type(trusted['G_ema']).__module__.startswith('_imported_module_')  # The trusted path ran the embedded code.
    assert type(safe['G_ema']).__module__.startswith('training.')
    assert 'does not know' in capsys.readouterr().err
    z, c = io_arrays['z'], io_arrays['c']
    with torch.no_grad():
        for psi in (1, 0.7):
            out_safe = safe['G_ema'](z, c, truncation_psi=psi, noise_mode='const')
            out_trusted = trusted['G_ema'](z, c, truncation_psi=psi, noise_mode='const')
            assert relative_error(out_safe, out_trusted) < 1e-6
            if 'img_const' in io_arrays and psi == 1:
                assert relative_error(out_safe, io_arrays['img_const']) < 1e-4  # The fixture's official output.
        if D is not None and 'd_input' in io_arrays:
            assert relative_error(safe['D'](io_arrays['d_input'], c), trusted['D'](io_arrays['d_input'], c)) < 1e-6
    for key in ('G', 'G_ema', 'D'):
        if trusted[key] is not None:
            ours, theirs = dict(safe[key].state_dict()), dict(trusted[key].state_dict())
            assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_own_pickles_load_safely_without_a_note(tmp_path, capsys):
    G, D = tiny_sg2()
    data = load(pickle.dumps(dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=dict(path='x.zip'))))
    assert capsys.readouterr().err == ''
    assert data['training_set_kwargs'].path == 'x.zip' and not data['G'].training
    x = torch.randn([2, 3, 16, 16])
    assert torch.equal(data['D'](x, None), D(x, None))


def test_known_sources_list_every_earlier_version_of_the_network_modules():
    if shutil.which('git') is None or not os.path.isdir(os.path.join(REPO_ROOT, '.git')):
        pytest.skip('no git history here')
    known = network_rebuild.known_source_hashes()
    for path in [module.replace('.', '/') + '.py' for module in network_rebuild.FAMILIES]:
        commits = subprocess.run(['git', 'log', '--format=%H', '--', path], cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
        for commit in commits:
            text = subprocess.run(['git', 'show', f'{commit}:{path}'], cwd=REPO_ROOT, capture_output=True).stdout
            digest = hashlib.sha256(text).hexdigest()
            assert digest in known, f'{path} at {commit[:10]} ({digest}) is missing from training/known_sources.txt'

# ----------------------------------------------------------------------------
# Weights files.


def test_weights_file_round_trip_is_exact(tmp_path):
    from training import augment
    G, D = tiny_sg2(seed=3)
    pipe = augment.AugmentPipe(xflip=1, rotate=1)
    pipe.p.fill_(0.25)
    pkl = tmp_path / 'net.pkl'
    pkl.write_bytes(pickle.dumps(dict(G=G, D=D, G_ema=G, augment_pipe=pipe, training_set_kwargs=dict(path='x.zip'))))
    dest = tmp_path / 'net.safetensors'
    result = run_python(['export_weights.py', f'--network={pkl}', f'--dest={dest}'])
    assert result.returncode == 0, result.stderr
    with open(dest, 'rb') as f:
        data = legacy.load_network_pkl(f)
    for key, module in dict(G=G, D=D, G_ema=G, augment_pipe=pipe).items():
        ours, theirs = dict(module.state_dict()), dict(data[key].state_dict())
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), key
    assert data['training_set_kwargs'].path == 'x.zip'
    result = run_python(['gen_images.py', f'--network={dest}', '--seeds=1', f'--outdir={tmp_path / "a"}'])
    assert result.returncode == 0, result.stderr
    result = run_python(['gen_images.py', f'--network={pkl}', '--seeds=1', f'--outdir={tmp_path / "b"}'])
    assert (tmp_path / 'a' / 'seed0001.png').read_bytes() == (tmp_path / 'b' / 'seed0001.png').read_bytes()


def bad_weights_files(tmp_path):
    G, _D = tiny_sg2()
    path = tmp_path / 'w.safetensors'
    weights_file.save(str(path), dict(G=G, G_ema=G))
    good = path.read_bytes()
    import json
    import struct
    length = struct.unpack('<Q', good[:8])[0]
    header = json.loads(good[8:8 + length])
    description = json.loads(header['__metadata__']['stylegan'])

    def with_description(change):
        d = json.loads(json.dumps(description))
        change(d)
        h = dict(header, __metadata__=dict(stylegan=json.dumps(d)))
        text = json.dumps(h).encode()
        return struct.pack('<Q', len(text)) + text + good[8 + length:]

    return {
        'truncated': good[:len(good) // 2],
        'class outside the families': with_description(lambda d: d['networks']['G'].update({'class': 'os.system'})),
        'arguments that do not fit the tensors': with_description(lambda d: d['networks']['G']['init_kwargs'].update(w_dim=16)),
        'future version': with_description(lambda d: d.update(version=99)),
        'huge network described': with_description(lambda d: d['networks']['G']['init_kwargs'].update(channel_base=2**40, channel_max=2**20)),
        'no description': struct.pack('<Q', 2) + b'{}',
    }


def test_bad_weights_files_are_refused_in_one_line(tmp_path):
    for name, data in bad_weights_files(tmp_path).items():
        with pytest.raises(legacy.NetworkPickleError) as info:
            load(data)
        assert '\n' not in str(info.value), name

# ----------------------------------------------------------------------------
# Fuzzing: mutated pickles and weights files fail only with NetworkPickleError, run nothing, never hang.

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

settings.register_profile('ci', max_examples=int(os.environ.get('FUZZ_EXAMPLES', 60)), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope='module')
def fuzz_seeds(tmp_path_factory):
    G, D = tiny_sg2()
    tmp = tmp_path_factory.mktemp('fuzz')
    weights_file.save(str(tmp / 'w.safetensors'), dict(G=G, D=D, G_ema=G))
    return [pickle.dumps(dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=dict(path='x'))),
            pickle.dumps(dict(G=G, D=None, G_ema=None), protocol=2),
            (tmp / 'w.safetensors').read_bytes()]


def mutate(data, edits):
    data = bytearray(data)
    for kind, position, value in edits:
        if len(data) == 0:
            break
        position %= len(data)
        if kind == 'flip':
            data[position] ^= (value % 255) + 1
        elif kind == 'cut':
            del data[position:]
        elif kind == 'insert':
            data[position:position] = bytes([value % 256]) * (1 + value % 7)
        elif kind == 'delete':
            del data[position:position + 1 + value % 64]
    return bytes(data)


@settings(settings.get_profile('ci'))
@given(seed_index=st.integers(0, 2), edits=st.lists(st.tuples(st.sampled_from(['flip', 'cut', 'insert', 'delete']),
                                                                st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=4))
@example(seed_index=0, edits=[('flip', 524278, 0)])  # A damaged storage stream: torch.load raised AssertionError.
def test_fuzzed_files_fail_only_with_the_documented_error(fuzz_seeds, seed_index, edits):
    data = mutate(fuzz_seeds[seed_index], edits)
    try:
        result = load(data)
    except legacy.NetworkPickleError as err:
        assert '\n' not in str(err)
        return
    assert isinstance(result, dict) and any(isinstance(result[k], torch.nn.Module) for k in ('G', 'D', 'G_ema'))


def test_restricted_unpickler_names_what_it_refuses():
    with pytest.raises(safe_pickle.UnsafePickleError, match='subprocess.Popen') as info:
        safe_pickle.loads(pickle.dumps(Payload(subprocess.Popen, ['true'])))
    assert info.value.module == 'subprocess' and info.value.name == 'Popen'
