"""Stand-ins for the network pickles of the TensorFlow StyleGAN2 / StyleGAN2-ADA releases, and a NumPy
reference of the arithmetic their TensorFlow graphs perform.

A pickle is the tuple (G, D, Gs) of `dnnlib.tflib.network.Network` objects; each pickles its state: version,
name, static_kwargs, components (sub-networks), build_module_src, build_func_name and variables (a list of
(name relative to the network's scope, array in TensorFlow layout)). The reference below follows the public
graph definitions step by step in TensorFlow's own layouts: dense weights [in, out], kernels [kh, kw, in, out],
weights scaled at run time by lrmul / sqrt(fan_in), upsampling convolutions as transposed convolutions of the
mirrored kernel followed by a FIR filter, downsampling ones as a FIR filter followed by a strided convolution.
"""

import contextlib
import pickle
import sys
import types

import numpy as np

SQRT2 = np.sqrt(2)

# ----------------------------------------------------------------------------
# Writing pickles.


class _Network:
    """Pickles as dnnlib.tflib.network.Network with the given state (its __module__ is set below)."""

    def __init__(self, state):
        self._state = state

    def __getstate__(self):
        return self._state

    def __setstate__(self, state):
        self._state = state


@contextlib.contextmanager
def _tflib_module():
    """Makes dnnlib.tflib.network.Network importable by name while pickling, as the TensorFlow releases had it."""
    names = ('dnnlib.tflib', 'dnnlib.tflib.network')
    saved = {name: sys.modules.get(name) for name in names}
    module = types.ModuleType('dnnlib.tflib.network')
    module.Network = _Network
    sys.modules['dnnlib.tflib'] = types.ModuleType('dnnlib.tflib')
    sys.modules['dnnlib.tflib.network'] = module
    old = (_Network.__module__, _Network.__qualname__)
    _Network.__module__, _Network.__qualname__ = 'dnnlib.tflib.network', 'Network'
    try:
        yield
    finally:
        _Network.__module__, _Network.__qualname__ = old
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value


def to_network(state):
    """A state dict (components given as state dicts) -> a picklable stand-in network; anything else is kept,
    to make damaged pickles."""
    if not isinstance(state, dict):
        return state
    state = dict(state)
    state['components'] = {key: to_network(value) for key, value in state.get('components', {}).items()}
    return _Network(state)


def pickle_bytes(obj, protocol=3):
    with _tflib_module():
        return pickle.dumps(obj, protocol=protocol)


def write_pickle(path, states, protocol=3):
    """Writes the (G, D, Gs) state dicts as a TensorFlow-era network pickle."""
    data = pickle_bytes(tuple(to_network(state) for state in states), protocol=protocol)
    with open(path, 'wb') as f:
        f.write(data)
    return path

# ----------------------------------------------------------------------------
# Random networks.


def nf(stage, fmap_base, fmap_max):
    return int(np.clip(int(fmap_base / 2.0 ** stage), 1, fmap_max))


def _state(name, func, static_kwargs, variables, components=None, version=4):
    return dict(version=version, name=name, static_kwargs=dict(static_kwargs), components=components or {},
                build_module_src='raise RuntimeError("the build source of a network pickle must never run")\n',
                build_func_name=func, variables=list(variables.items()))


def make_states(seed=0, resolution=16, label_size=0, g_architecture='skip', d_architecture='resnet',
                latent_size=8, mapping_layers=2, fmap_base=32, fmap_max=8, mbstd_group_size=2, flavour='ada',
                extra_g_kwargs=None):
    """State dicts (G, D, Gs) of a tiny random network of the TensorFlow releases, with the kwargs the training
    scripts record. flavour 'ada' (networks.py of StyleGAN2-ADA) or 'sg2' (networks_stylegan2.py of StyleGAN2)."""
    rng = np.random.default_rng(seed)
    normal = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    log2 = int(np.log2(resolution))
    channels = lambda stage: nf(stage, fmap_base, fmap_max)  # noqa: E731
    common = dict(num_channels=3, resolution=resolution, label_size=label_size, fmap_base=fmap_base,
                  fmap_max=fmap_max)

    g_kwargs = dict(common, latent_size=latent_size, dlatent_size=latent_size, mapping_layers=mapping_layers,
                    architecture=g_architecture, **(extra_g_kwargs or {}))
    if flavour == 'sg2':
        g_kwargs['mapping_fmaps'] = latent_size

    def generator(name_seed):
        mapping = {}
        if label_size:
            mapping['LabelEmbed/weight'] = normal(label_size, latent_size)
            mapping['LabelEmbed/bias'] = normal(latent_size) * 0.1
        in_features = latent_size * (2 if label_size else 1)
        for idx in range(mapping_layers):
            mapping[f'Dense{idx}/weight'] = normal(in_features, latent_size) * 100  # Stored as N(0, 1/lrmul).
            mapping[f'Dense{idx}/bias'] = normal(latent_size)
            in_features = latent_size
        synthesis = {}

        def modulated(scope, kernel, in_channels, out_channels, noise_shape=None):
            synthesis[f'{scope}/weight'] = normal(kernel, kernel, in_channels, out_channels)
            synthesis[f'{scope}/bias'] = normal(out_channels) * 0.1
            synthesis[f'{scope}/mod_weight'] = normal(latent_size, in_channels)
            synthesis[f'{scope}/mod_bias'] = normal(in_channels) * 0.1
            if noise_shape is not None:
                synthesis[f'{scope}/noise_strength'] = np.float32(rng.standard_normal() * 0.3)

        synthesis['4x4/Const/const'] = normal(1, channels(1), 4, 4)
        modulated('4x4/Conv', 3, channels(1), channels(1), noise_shape=4)
        if g_architecture == 'skip' or log2 == 2:
            modulated('4x4/ToRGB', 1, channels(1), 3)
        for res_log2 in range(3, log2 + 1):
            res = 2 ** res_log2
            in_c, out_c = channels(res_log2 - 2), channels(res_log2 - 1)
            modulated(f'{res}x{res}/Conv0_up', 3, in_c, out_c, noise_shape=res)
            modulated(f'{res}x{res}/Conv1', 3, out_c, out_c, noise_shape=res)
            if g_architecture == 'resnet':
                synthesis[f'{res}x{res}/Skip/weight'] = normal(1, 1, in_c, out_c)
            if g_architecture == 'skip' or res_log2 == log2:
                modulated(f'{res}x{res}/ToRGB', 1, out_c, 3)
        for idx in range(2 * log2 - 3):
            size = 2 ** ((idx + 5) // 2)
            synthesis[f'noise{idx}'] = normal(1, 1, size, size)
        own = {'dlatent_avg': normal(latent_size)}
        if flavour == 'sg2':
            own['lod'] = np.float32(0)
        components = dict(
            mapping=_state('G_mapping', 'G_mapping', g_kwargs, mapping),
            synthesis=_state('G_synthesis', 'G_synthesis' if flavour == 'ada' else 'G_synthesis_stylegan2',
                             g_kwargs, synthesis))
        return _state(name_seed, 'G_main', g_kwargs, own, components)

    d_kwargs = dict(common, architecture=d_architecture)
    if mbstd_group_size is not None:  # None: not recorded, so the release's default applies.
        d_kwargs['mbstd_group_size'] = mbstd_group_size
    d_vars = {}

    def layer(scope, kernel, in_channels, out_channels, bias=True):
        shape = (kernel, kernel, in_channels, out_channels) if kernel else (in_channels, out_channels)
        d_vars[f'{scope}/weight'] = normal(*shape)
        if bias:
            d_vars[f'{scope}/bias'] = normal(out_channels) * 0.1

    for res_log2 in range(log2, 2, -1):
        res = 2 ** res_log2
        if d_architecture == 'skip' or res_log2 == log2:
            layer(f'{res}x{res}/FromRGB', 1, 3, channels(res_log2 - 1))
        layer(f'{res}x{res}/Conv0', 3, channels(res_log2 - 1), channels(res_log2 - 1))
        layer(f'{res}x{res}/Conv1_down', 3, channels(res_log2 - 1), channels(res_log2 - 2))
        if d_architecture == 'resnet':
            layer(f'{res}x{res}/Skip', 1, channels(res_log2 - 1), channels(res_log2 - 2), bias=False)
    if d_architecture == 'skip':
        layer('4x4/FromRGB', 1, 3, channels(1))
    layer('4x4/Conv', 3, channels(1) + 1, channels(1))
    layer('4x4/Dense0', 0, channels(1) * 16, channels(0))
    cmap_dim = channels(0)
    if label_size:
        layer('LabelEmbed', 0, label_size, cmap_dim)
    layer('Output', 0, channels(0), cmap_dim if label_size else 1)
    D = _state('D', 'D_main' if flavour == 'ada' else 'D_stylegan2', d_kwargs, d_vars)

    G = generator('G')
    Gs = generator('Gs')
    Gs['name'] = 'Gs'
    return G, D, Gs


def variables(state, prefix=''):
    """{full name: array} of a state dict and its components (component names joined with '/')."""
    found = {prefix + name: value for name, value in state['variables']}
    for name, component in state['components'].items():
        found.update(variables(component, prefix + name + '/'))
    return found

# ----------------------------------------------------------------------------
# NumPy reference of the TensorFlow graphs (float64, NCHW, as the releases ran them).


def _fir_kernel(taps=(1, 3, 3, 1), gain=1):
    k = np.asarray(taps, dtype=np.float64)
    k = np.outer(k, k)
    return k / k.sum() * gain


def _dense(x, weight, bias=None, lrmul=1.0, act='linear'):
    x = x.reshape(x.shape[0], -1)
    y = x @ (weight.astype(np.float64) * (lrmul / np.sqrt(weight.shape[0])))
    return _bias_act(y, bias, lrmul=lrmul, act=act)


def _bias_act(x, bias=None, lrmul=1.0, act='linear', clamp=None):
    if bias is not None:
        shape = [1, -1] + [1] * (x.ndim - 2)
        x = x + bias.astype(np.float64).reshape(shape) * lrmul
    if act == 'lrelu':
        x = np.where(x >= 0, x, x * 0.2) * SQRT2
    if clamp is not None:
        x = np.clip(x, -clamp, clamp)
    return x


def _normalize(x):
    return x / np.sqrt(np.mean(np.square(x), axis=1, keepdims=True) + 1e-8)


def _correlate(x, kernel, stride=1):
    """VALID cross-correlation; kernel [kh, kw, in, out]."""
    kh, kw = kernel.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum('nihwab,abio->nohw', windows, kernel)


def _conv_same(x, kernel):
    pad = kernel.shape[0] // 2
    return _correlate(np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)]), kernel)


def _upfirdn(x, k, up=1, down=1, pad0=0, pad1=0):
    """Zero insertion, padding (negative: cropping), true convolution with k, decimation."""
    n, c, h, w = x.shape
    if up > 1:
        spread = np.zeros([n, c, h * up, w * up])
        spread[:, :, ::up, ::up] = x
        x = spread
    x = np.pad(x, [(0, 0), (0, 0), (max(pad0, 0), max(pad1, 0)), (max(pad0, 0), max(pad1, 0))])
    x = x[:, :, max(-pad0, 0):x.shape[2] - max(-pad1, 0), max(-pad0, 0):x.shape[3] - max(-pad1, 0)]
    flipped = k[::-1, ::-1]
    windows = np.lib.stride_tricks.sliding_window_view(x, flipped.shape, axis=(2, 3))
    x = np.einsum('nchwab,ab->nchw', windows, flipped)
    return x[:, :, ::down, ::down]


def _conv_transpose_stride2(x, kernel):
    """tf.nn.conv2d_transpose, stride 2, VALID, of a filter [kh, kw, out, in]: every input pixel scatters the
    filter into the output."""
    kh, kw, out_channels, _ = kernel.shape
    n, _, h, w = x.shape
    y = np.zeros([n, out_channels, (h - 1) * 2 + kh, (w - 1) * 2 + kw])
    for i in range(kh):
        for j in range(kw):
            y[:, :, i:i + 2 * h - 1:2, j:j + 2 * w - 1:2] += np.einsum('nchw,oc->nohw', x, kernel[i, j])
    return y


def _upsample_conv(x, weight):
    """upsample_conv_2d: the kernel mirrored and its channel axes swapped, a stride-2 transposed convolution,
    then the FIR filter (gain 4) with the releases' paddings."""
    kernel = weight[::-1, ::-1].transpose(0, 1, 3, 2)
    x = _conv_transpose_stride2(x, kernel)
    p = (4 - 2) - (weight.shape[0] - 1)
    return _upfirdn(x, _fir_kernel(gain=4), pad0=(p + 1) // 2 + 1, pad1=p // 2 + 1)


def _conv_downsample(x, weight):
    """conv_downsample_2d: the FIR filter with the releases' paddings, then a stride-2 convolution."""
    p = (4 - 2) + (weight.shape[0] - 1)
    x = _upfirdn(x, _fir_kernel(), pad0=(p + 1) // 2, pad1=p // 2)
    return _correlate(x, weight, stride=2)


def _upsample(x):
    return _upfirdn(x, _fir_kernel(gain=4), up=2, pad0=2, pad1=1)


def _weight(value):
    value = value.astype(np.float64)
    return value / np.sqrt(np.prod(value.shape[:-1]))


def reference_mapping(tf_vars, z, c, num_layers, mapping_layers, psi=1.0, cutoff=None):
    x = _normalize(z.astype(np.float64))
    if c is not None and c.shape[1] > 0:
        y = _dense(c.astype(np.float64), tf_vars['mapping/LabelEmbed/weight'], tf_vars['mapping/LabelEmbed/bias'])
        x = np.concatenate([x, _normalize(y)], axis=1)
    for idx in range(mapping_layers):
        x = _dense(x, tf_vars[f'mapping/Dense{idx}/weight'], tf_vars[f'mapping/Dense{idx}/bias'], lrmul=0.01,
                   act='lrelu')
    ws = np.repeat(x[:, None, :], num_layers, axis=1)
    if psi != 1:
        avg = tf_vars['dlatent_avg'].astype(np.float64)
        layer_psi = np.array([psi if cutoff is None or idx < cutoff else 1.0 for idx in range(num_layers)])
        ws = avg + (ws - avg) * layer_psi[None, :, None]
    return ws


def _modulated(tf_vars, scope, x, w, demodulate=True, up=False, noise=None, act='lrelu', clamp=None):
    mod_weight = tf_vars[f'{scope}/mod_weight']
    s = _dense(w, mod_weight, tf_vars[f'{scope}/mod_bias']) + 1                       # [N, I]
    weight = _weight(tf_vars[f'{scope}/weight'])                                         # [k, k, I, O]
    x = x * s[:, :, None, None]
    x = _upsample_conv(x, weight) if up else _conv_same(x, weight)
    if demodulate:
        styled = weight[None] * s[:, None, None, :, None]                                # [N, k, k, I, O]
        x = x / np.sqrt(np.sum(np.square(styled), axis=(1, 2, 3)) + 1e-8)[:, :, None, None]
    if noise is not None:
        x = x + noise.astype(np.float64) * np.float64(tf_vars[f'{scope}/noise_strength'])
    return _bias_act(x, tf_vars[f'{scope}/bias'], act=act, clamp=clamp)


def reference_synthesis(tf_vars, ws, resolution, architecture='skip', use_noise=True, clamp=None):
    """The image of G_synthesis for dlatents ws [N, num_layers, dlatent], with the recorded constant noise."""
    log2 = int(np.log2(resolution))
    noise = (lambda idx: tf_vars[f'synthesis/noise{idx}'][0, 0]) if use_noise else (lambda idx: None)

    def torgb(x, y, res_log2):
        t = _modulated(tf_vars, f'synthesis/{2 ** res_log2}x{2 ** res_log2}/ToRGB', x, ws[:, res_log2 * 2 - 3],
                       demodulate=False, act='linear', clamp=clamp)
        return t if y is None else y + t

    const = tf_vars['synthesis/4x4/Const/const'].astype(np.float64)
    x = np.repeat(const, ws.shape[0], axis=0)
    x = _modulated(tf_vars, 'synthesis/4x4/Conv', x, ws[:, 0], noise=noise(0), clamp=clamp)
    y = torgb(x, None, 2) if architecture == 'skip' or log2 == 2 else None
    for res_log2 in range(3, log2 + 1):
        scope = f'synthesis/{2 ** res_log2}x{2 ** res_log2}'
        t = x
        x = _modulated(tf_vars, f'{scope}/Conv0_up', x, ws[:, res_log2 * 2 - 5], up=True,
                       noise=noise(res_log2 * 2 - 5), clamp=clamp)
        x = _modulated(tf_vars, f'{scope}/Conv1', x, ws[:, res_log2 * 2 - 4], noise=noise(res_log2 * 2 - 4),
                       clamp=clamp)
        if architecture == 'resnet':
            t = _upsample_conv(t, _weight(tf_vars[f'{scope}/Skip/weight']))
            x = (x + t) / SQRT2
        if architecture == 'skip':
            y = _upsample(y)
        if architecture == 'skip' or res_log2 == log2:
            y = torgb(x, y, res_log2)
    return y


def reference_discriminator(tf_vars, img, c, resolution, architecture='resnet', mbstd_group_size=4,
                            mapping_layers=0, clamp=None):
    """D's logits [N, 1] for images [N, 3, R, R] (StyleGAN2-ADA's D_main)."""
    log2 = int(np.log2(resolution))
    x = None
    img = img.astype(np.float64)

    def conv(scope, inputs, down=False):
        weight = _weight(tf_vars[f'{scope}/weight'])
        out = _conv_downsample(inputs, weight) if down else _conv_same(inputs, weight)
        return _bias_act(out, tf_vars[f'{scope}/bias'], act='lrelu', clamp=clamp)

    for res_log2 in range(log2, 2, -1):
        scope = f'{2 ** res_log2}x{2 ** res_log2}'
        if architecture == 'skip' or res_log2 == log2:
            t = conv(f'{scope}/FromRGB', img)
            x = t if x is None else x + t
        t = x
        x = conv(f'{scope}/Conv0', x)
        x = conv(f'{scope}/Conv1_down', x, down=True)
        if architecture == 'skip':
            img = _upfirdn(img, _fir_kernel(), down=2, pad0=1, pad1=1)
        if architecture == 'resnet':
            t = _conv_downsample(t, _weight(tf_vars[f'{scope}/Skip/weight']))
            x = (x + t) / SQRT2
    if architecture == 'skip':
        x = x + conv('4x4/FromRGB', img)

    n, channels, h, w = x.shape
    group = n if mbstd_group_size is None else min(mbstd_group_size, n)
    y = x.reshape(group, -1, 1, channels, h, w)
    y = y - y.mean(axis=0)
    y = np.sqrt(np.square(y).mean(axis=0) + 1e-8)
    y = y.mean(axis=(2, 3, 4)).reshape(-1, 1, 1, 1)
    x = np.concatenate([x, np.tile(y, [group, 1, h, w])], axis=1)

    x = conv('4x4/Conv', x)
    x = _dense(x, tf_vars['4x4/Dense0/weight'], tf_vars['4x4/Dense0/bias'], act='lrelu')
    x = _dense(x, tf_vars['Output/weight'], tf_vars['Output/bias'])
    if c is not None and c.shape[1] > 0:
        cmap = _normalize(_dense(c.astype(np.float64), tf_vars['LabelEmbed/weight'], tf_vars['LabelEmbed/bias']))
        for idx in range(mapping_layers):
            cmap = _dense(cmap, tf_vars[f'Mapping{idx}/weight'], tf_vars[f'Mapping{idx}/bias'], lrmul=0.1,
                          act='lrelu')
        x = np.sum(x * cmap, axis=1, keepdims=True) / np.sqrt(cmap.shape[1])
    return x

# ----------------------------------------------------------------------------
