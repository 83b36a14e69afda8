"""Networks of the TensorFlow StyleGAN2 and StyleGAN2-ADA releases, converted to this project's networks.

Those releases pickle a tuple (G, D, Gs) of `dnnlib.tflib.network.Network` objects. Each one's state holds
its constructor arguments (`static_kwargs`), its sub-networks (`components`, e.g. `mapping` and `synthesis`)
and its variables as (scope-relative name, array) pairs in TensorFlow layout. torch_utils.safe_pickle reads
them as `TFNetworkRecord`s without running the graph-building source they carry; this module builds the
matching networks_stylegan2 Generator and Discriminator and copies the variables into them.

Layout differences handled here: dense weights are [in, out] (ours [out, in]); convolution kernels are
[kh, kw, in, out] (ours [out, in, kh, kw]); upsampling convolutions ran as transposed convolutions, so their
kernels are mirrored; the style affine's bias had 1 added at run time; constant noise maps and the 4x4
input carry a leading batch axis.
"""

import copy

import numpy as np
import torch

import dnnlib
from torch_utils import safe_pickle

# ----------------------------------------------------------------------------

OLDEST_VERSION = 4  # Network format of StyleGAN2 and StyleGAN2-ADA; older ones hold StyleGAN (1) networks.

# Graph-building functions whose networks these converters reproduce (StyleGAN2: networks_stylegan2.py;
# StyleGAN2-ADA: networks.py). Progressive-growing variants (StyleGAN2 configs A-D) differ in layout.
GENERATOR_FUNCS = {'G_main'}
MAPPING_FUNCS = {'G_mapping'}
SYNTHESIS_FUNCS = {'G_synthesis_stylegan2', 'G_synthesis'}
DISCRIMINATOR_FUNCS = {'D_stylegan2', 'D_main'}


class TFConversionError(ValueError):
    """A TensorFlow network that cannot be converted; the message says why."""


def is_tf_network_tuple(data):
    """Whether an unpickled object is the (G, D, Gs) tuple of the TensorFlow releases."""
    return (isinstance(data, tuple) and len(data) == 3
            and all(isinstance(net, safe_pickle.TFNetworkRecord) for net in data))


def convert_tf_pickle(data, name='the pickle'):
    """(G, D, Gs) records -> the dict a PyTorch network pickle holds (augment pipe and dataset unknown)."""
    assert is_tf_network_tuple(data)
    tf_G, tf_D, tf_Gs = data
    return dict(G=convert_generator(tf_G, name=name, what='G'),
                D=convert_discriminator(tf_D, name=name, what='D'),
                G_ema=convert_generator(tf_Gs, name=name, what='Gs'),
                augment_pipe=None,
                training_set_kwargs=None)

# ----------------------------------------------------------------------------
# Reading the records.


def _state(record, name, what):
    if not isinstance(record, safe_pickle.TFNetworkRecord):
        raise TFConversionError(f'{name}: {what} of the TensorFlow pickle is a {type(record).__name__}, not a network')
    state = getattr(record, 'state', None)
    if not isinstance(state, dict):
        raise TFConversionError(f'{name}: the TensorFlow network {what} has no recorded state (damaged pickle)')
    version = state.get('version')
    if not isinstance(version, int):
        raise TFConversionError(f'{name}: the TensorFlow network {what} has no format version (damaged pickle)')
    if version < OLDEST_VERSION:
        raise TFConversionError(f'{name}: the TensorFlow network {what} has format version {version}, from before '
                                f'StyleGAN2; only StyleGAN2 and StyleGAN2-ADA networks (version {OLDEST_VERSION} and '
                                f'later) can be converted')
    for key, kind in (('static_kwargs', dict), ('components', dict), ('variables', (list, tuple))):
        if not isinstance(state.get(key), kind):
            raise TFConversionError(f'{name}: the TensorFlow network {what} lacks its {key} (damaged pickle)')
    return state


def _check_func(state, allowed, name, what):
    func = state.get('build_func_name')
    if func not in allowed:
        raise TFConversionError(f'{name}: the TensorFlow network {what} was built by {func!r}, which this converter '
                                f'does not know (it reads {", ".join(sorted(allowed))}: StyleGAN2 configs E/F and '
                                f'StyleGAN2-ADA)')


def tf_variables(record, name='the pickle', what='the network'):
    """{'component/.../variable': float32 array} over a record and its components, names as in TensorFlow."""
    found = {}
    pending = [('', record, what)]
    seen = set()
    while pending:
        prefix, node, label = pending.pop()
        if id(node) in seen:  # Only a crafted pickle nests a network inside itself.
            raise TFConversionError(f'{name}: the TensorFlow network {label} contains itself (damaged pickle)')
        seen.add(id(node))
        state = _state(node, name, label)
        for entry in state['variables']:
            if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str)):
                raise TFConversionError(f'{name}: a variable of the TensorFlow network {label} is not a (name, value) '
                                        f'pair (damaged pickle)')
            var_name, value = entry
            numeric = isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in 'fiub'
            if not (numeric or isinstance(value, (float, int))):
                raise TFConversionError(f'{name}: the variable {prefix + var_name} of the TensorFlow network is a '
                                        f'{type(value).__name__} of {getattr(value, "dtype", "objects")}, not an array '
                                        f'of numbers')
            found[prefix + var_name] = np.asarray(value, dtype=np.float32)
        for component_name, component in state['components'].items():
            pending.append((f'{prefix}{component_name}/', component, f'{label}/{component_name}'))
    return found


class _Kwargs:
    """The static kwargs of a TensorFlow network, read one by one so that unknown ones can be named."""

    def __init__(self, static_kwargs, name, what):
        self.values = dict(static_kwargs)
        self.read = set()
        self.name = name
        self.what = what

    def get(self, key, default=None):
        self.read.add(key)
        value = self.values.get(key, None)
        return default if value is None else value

    def ignore(self, *keys):
        """Run-time settings of the TensorFlow graph with no counterpart in a constructor here."""
        self.read.update(keys)

    def check_all_read(self):
        unknown = sorted(set(self.values) - self.read)
        if unknown:
            raise TFConversionError(f'{self.name}: the TensorFlow network {self.what} was built with '
                                    f'{unknown[0]}={self.values[unknown[0]]!r}, which this converter does not '
                                    f'know how to reproduce')

# ----------------------------------------------------------------------------
# Weight layouts.


def _dense(value):
    return value.T                              # [in, out] -> [out, in]


def _conv(value):
    return value.transpose(3, 2, 0, 1)          # [kh, kw, in, out] -> [out, in, kh, kw]


def _up_conv(value):
    return _conv(value[::-1, ::-1])             # Transposed convolution: the kernel mirrored.


def _style_bias(value):
    return value + 1                            # TensorFlow added the 1 after the affine layer.


def _fill(module, values, name, what):
    """Copies {parameter or buffer name: array} into `module`; every tensor but fixed filters must be covered."""
    targets = dict(module.named_parameters())
    targets.update(dict(module.named_buffers()))
    fixed = {key for key in targets if key.endswith('resample_filter')}
    missing = sorted(set(targets) - set(values) - fixed)
    assert not missing, missing  # The tables below cover every tensor of the networks they build.
    with torch.no_grad():
        for key, value in values.items():
            target = targets[key]
            value = np.array(value, dtype=np.float32)  # A copy: contiguous even where the layout was mirrored.
            if tuple(value.shape) != tuple(target.shape):
                raise TFConversionError(f'{name}: the TensorFlow network {what} holds an array of shape '
                                        f'{list(value.shape)} for {key}, where its settings give {list(target.shape)}'
                                        f' (damaged pickle, or a variant this converter does not know)')
            target.copy_(torch.from_numpy(value))


def _build(network_class, kwargs, record, values_of, name, what):
    """The network of `kwargs` (eval mode, frozen) holding the record's variables, laid out by `values_of`."""
    network = network_class(**copy.deepcopy(kwargs)).eval().requires_grad_(False)
    _fill(network, values_of(network, tf_variables(record, name=name, what=what), name, what), name, what)
    return network


def _take(tf_vars, key, name, what):
    if key not in tf_vars:
        raise TFConversionError(f'{name}: the TensorFlow network {what} has no variable {key!r}; it is not a '
                                f'StyleGAN2 / StyleGAN2-ADA network of the layout its settings describe')
    return tf_vars[key]

# ----------------------------------------------------------------------------
# Generator.


def generator_kwargs(static_kwargs, name='the pickle', what='G', synthesis_func='G_synthesis'):
    """The networks_stylegan2.Generator arguments of a TensorFlow G_main's static kwargs (`synthesis_func` tells
    the release: StyleGAN2's mapping defaults to 512 features, StyleGAN2-ADA's to the W size)."""
    kw = _Kwargs(static_kwargs, name, what)
    stylegan2 = (synthesis_func == 'G_synthesis_stylegan2')
    kwargs = dnnlib.EasyDict(
        z_dim=kw.get('latent_size', 512),
        c_dim=kw.get('label_size', 0),
        w_dim=kw.get('dlatent_size', 512),
        img_resolution=kw.get('resolution', 1024),
        img_channels=kw.get('num_channels', 3),
        channel_base=_channel_base(kw),
        channel_max=kw.get('fmap_max', 512),
        num_fp16_res=kw.get('num_fp16_res', 0),
        conv_clamp=kw.get('conv_clamp', None),
        architecture=kw.get('architecture', 'skip'),
        resample_filter=list(kw.get('resample_kernel', [1, 3, 3, 1])),
        use_noise=kw.get('use_noise', True),
        activation=kw.get('nonlinearity', 'lrelu'),
        mapping_kwargs=dnnlib.EasyDict(
            num_layers=kw.get('mapping_layers', 8),
            embed_features=kw.get('label_fmaps', None),
            layer_features=kw.get('mapping_fmaps', 512 if stylegan2 else None),
            activation=kw.get('mapping_nonlinearity', 'lrelu'),
            lr_multiplier=kw.get('mapping_lrmul', 0.01),
            w_avg_beta=_w_avg_beta(kw),
        ),
    )
    _require_defaults(kw, normalize_latents=True)
    # Sampling settings of the TensorFlow graph; here they are arguments of the forward pass.
    kw.ignore('truncation_psi', 'truncation_cutoff', 'truncation_psi_val', 'truncation_cutoff_val',
              'style_mixing_prob', 'randomize_noise', 'is_training', 'is_validation', 'return_dlatents',
              'fused_modconv', 'structure', 'conditioning', 'dtype', 'is_template_graph', 'components',
              'mapping_func', 'synthesis_func', 'dlatent_broadcast',
              'fmap_const')  # A constant of another width fails the shape check with a clear message.
    kw.check_all_read()
    _check_geometry(kwargs, kw)
    return kwargs


def _require_defaults(kw, **defaults):
    """Settings that only their default value makes convertible (variants this project has no layout for)."""
    for key, default in defaults.items():
        value = kw.get(key, default)
        if value != default:
            raise TFConversionError(f'{kw.name}: the TensorFlow network {kw.what} was built with {key}={value!r}, '
                                    f'which this converter does not know how to reproduce')


def _w_avg_beta(kw):
    """The decay of the W average; None (not tracked) keeps the recorded average fixed, as a decay of 1 does."""
    for key in ('dlatent_avg_beta', 'w_avg_beta'):
        kw.read.add(key)
        if key in kw.values:
            return 1 if kw.values[key] is None else kw.values[key]
    return 0.995


def _channel_base(kw):
    """Our channel_base from fmap_base; TensorFlow's channel formula matches ours only for its default decay."""
    fmap_decay = kw.get('fmap_decay', 1.0)
    fmap_min = kw.get('fmap_min', 1)
    if fmap_decay != 1.0 or fmap_min != 1:
        raise TFConversionError(f'{kw.name}: the TensorFlow network {kw.what} was built with fmap_decay={fmap_decay}, '
                                f'fmap_min={fmap_min}; only the defaults (1.0, 1) have a channel layout here')
    return kw.get('fmap_base', 16384) * 2


def _check_geometry(kwargs, kw):
    res = kwargs.img_resolution
    if not (isinstance(res, int) and res >= 4 and res & (res - 1) == 0):
        raise TFConversionError(f'{kw.name}: the TensorFlow network {kw.what} has resolution {res!r}, '
                                f'not a power of two of at least 4')
    if kwargs.architecture not in ('orig', 'skip', 'resnet'):
        raise TFConversionError(f'{kw.name}: the TensorFlow network {kw.what} has architecture '
                                f'{kwargs.architecture!r}; known: orig, skip, resnet')


def convert_generator(record, name='the pickle', what='G'):
    """A TensorFlow G_main record -> networks_stylegan2.Generator with its weights (eval mode, frozen)."""
    from training import networks_stylegan2
    state = _state(record, name, what)
    _check_func(state, GENERATOR_FUNCS, name, what)
    for component, allowed in (('mapping', MAPPING_FUNCS), ('synthesis', SYNTHESIS_FUNCS)):
        if component not in state['components']:
            raise TFConversionError(f'{name}: the TensorFlow network {what} has no {component} component')
        _check_func(_state(state['components'][component], name, f'{what}/{component}'), allowed, name,
                    f'{what}/{component}')
    synthesis_func = state['components']['synthesis'].state.get('build_func_name')
    kwargs = generator_kwargs(state['static_kwargs'], name=name, what=what, synthesis_func=synthesis_func)
    return _build(networks_stylegan2.Generator, kwargs, record, _generator_values, name, what)


def _generator_values(G, tf_vars, name, what):
    take = lambda key: _take(tf_vars, key, name, what)  # noqa: E731
    values = {}
    mapping = G.mapping
    if hasattr(mapping, 'w_avg'):
        values['mapping.w_avg'] = take('dlatent_avg')
    if 'mapping/LabelConcat/weight' in tf_vars:
        raise TFConversionError(f'{name}: the TensorFlow network {what} is conditioned the StyleGAN2 way (labels '
                                f'concatenated to z before normalisation), which has no counterpart here; '
                                f'conditional networks of StyleGAN2-ADA convert')
    if G.c_dim > 0:
        values['mapping.embed.weight'] = _dense(take('mapping/LabelEmbed/weight'))
        values['mapping.embed.bias'] = take('mapping/LabelEmbed/bias')
    for idx in range(mapping.num_layers):
        values[f'mapping.fc{idx}.weight'] = _dense(take(f'mapping/Dense{idx}/weight'))
        values[f'mapping.fc{idx}.bias'] = take(f'mapping/Dense{idx}/bias')

    def modulated(ours, scope, kernel=_conv, noise_index=None):
        values[f'{ours}.weight'] = kernel(take(f'{scope}/weight'))
        values[f'{ours}.bias'] = take(f'{scope}/bias')
        values[f'{ours}.affine.weight'] = _dense(take(f'{scope}/mod_weight'))
        values[f'{ours}.affine.bias'] = _style_bias(take(f'{scope}/mod_bias'))
        if noise_index is not None and G.synthesis.b4.conv1.use_noise:
            values[f'{ours}.noise_strength'] = take(f'{scope}/noise_strength')
            values[f'{ours}.noise_const'] = take(f'synthesis/noise{noise_index}')[0, 0]

    for res in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f'b{res}')
        ours = f'synthesis.b{res}'
        scope = f'synthesis/{res}x{res}'
        log2 = int(np.log2(res))
        if res == 4:
            values[f'{ours}.const'] = take(f'{scope}/Const/const')[0]
            modulated(f'{ours}.conv1', f'{scope}/Conv', noise_index=0)
        else:
            modulated(f'{ours}.conv0', f'{scope}/Conv0_up', kernel=_up_conv, noise_index=2 * log2 - 5)
            modulated(f'{ours}.conv1', f'{scope}/Conv1', noise_index=2 * log2 - 4)
        if hasattr(block, 'torgb'):
            modulated(f'{ours}.torgb', f'{scope}/ToRGB')
        if hasattr(block, 'skip'):
            values[f'{ours}.skip.weight'] = _up_conv(take(f'{scope}/Skip/weight'))
    return values

# ----------------------------------------------------------------------------
# Discriminator.


def discriminator_kwargs(static_kwargs, name='the pickle', what='D', func='D_main'):
    """The networks_stylegan2.Discriminator arguments of a TensorFlow discriminator's static kwargs (`func`:
    D_stylegan2 of StyleGAN2, whose minibatch groups default to 4, or D_main of StyleGAN2-ADA: the whole batch)."""
    kw = _Kwargs(static_kwargs, name, what)
    stylegan2 = (func == 'D_stylegan2')
    activation = kw.get('nonlinearity', 'lrelu')
    kwargs = dnnlib.EasyDict(
        c_dim=kw.get('label_size', 0),
        img_resolution=kw.get('resolution', 1024),
        img_channels=kw.get('num_channels', 3),
        architecture=kw.get('architecture', 'resnet'),
        channel_base=_channel_base(kw),
        channel_max=kw.get('fmap_max', 512),
        num_fp16_res=kw.get('num_fp16_res', 0),
        conv_clamp=kw.get('conv_clamp', None),
        cmap_dim=kw.get('mapping_fmaps', None),
        block_kwargs=dnnlib.EasyDict(
            activation=activation,
            resample_filter=list(kw.get('resample_kernel', [1, 3, 3, 1])),
            freeze_layers=kw.get('freeze_layers', 0),
        ),
        mapping_kwargs=dnnlib.EasyDict(
            num_layers=kw.get('mapping_layers', 0),
            embed_features=kw.get('mapping_fmaps', None),
            layer_features=kw.get('mapping_fmaps', None),
            activation=activation,
            lr_multiplier=kw.get('mapping_lrmul', 0.1),
        ),
        epilogue_kwargs=dnnlib.EasyDict(
            mbstd_group_size=kw.get('mbstd_group_size', 4 if stylegan2 else None),
            mbstd_num_channels=kw.get('mbstd_num_features', 1),
            activation=activation,
        ),
    )
    if stylegan2 and kwargs.c_dim > 0:
        raise TFConversionError(f'{name}: the TensorFlow network {what} is conditioned the StyleGAN2 way (one output '
                                f'per label), which has no counterpart here; conditional networks of StyleGAN2-ADA '
                                f'convert')
    # StyleGAN2-ADA's comparison methods: convertible only when switched off.
    _require_defaults(kw, augment_strength=0, use_pagan=False, pagan_num=16, pagan_fade=0.5, score_size=1,
                      score_max=1, use_spectral_norm=False, adaptive_dropout=0)
    kw.ignore('structure', 'conditioning', 'is_template_graph', 'components', 'dtype')
    kw.check_all_read()
    _check_geometry(kwargs, kw)
    return kwargs


def convert_discriminator(record, name='the pickle', what='D'):
    """A TensorFlow discriminator record -> networks_stylegan2.Discriminator with its weights."""
    from training import networks_stylegan2
    state = _state(record, name, what)
    _check_func(state, DISCRIMINATOR_FUNCS, name, what)
    kwargs = discriminator_kwargs(state['static_kwargs'], name=name, what=what, func=state['build_func_name'])
    return _build(networks_stylegan2.Discriminator, kwargs, record, _discriminator_values, name, what)


def _discriminator_values(D, tf_vars, name, what):
    take = lambda key: _take(tf_vars, key, name, what)  # noqa: E731
    values = {}

    def layer(ours, scope, kernel):
        values[f'{ours}.weight'] = kernel(take(f'{scope}/weight'))
        values[f'{ours}.bias'] = take(f'{scope}/bias')

    for res in D.block_resolutions:
        block = getattr(D, f'b{res}')
        scope = f'{res}x{res}'
        if hasattr(block, 'fromrgb'):
            layer(f'b{res}.fromrgb', f'{scope}/FromRGB', _conv)
        layer(f'b{res}.conv0', f'{scope}/Conv0', _conv)
        layer(f'b{res}.conv1', f'{scope}/Conv1_down', _conv)
        if hasattr(block, 'skip'):
            values[f'b{res}.skip.weight'] = _conv(take(f'{scope}/Skip/weight'))
    if D.c_dim > 0:
        layer('mapping.embed', 'LabelEmbed', _dense)
        for idx in range(D.mapping.num_layers):
            layer(f'mapping.fc{idx}', f'Mapping{idx}', _dense)
    if hasattr(D.b4, 'fromrgb'):
        layer('b4.fromrgb', '4x4/FromRGB', _conv)
    layer('b4.conv', '4x4/Conv', _conv)
    layer('b4.fc', '4x4/Dense0', _dense)
    layer('b4.out', 'Output', _dense)
    return values

# ----------------------------------------------------------------------------
