"""CREPS generator ("Efficient Scale-Invariant Generator with Column-Row Entangled Pixel Synthesis",
Nguyen, Le, Tran, CVPR 2023, arXiv 2303.14157), with the constructor arguments and state-dict layout of
the public release, so weights and pickles are interchangeable.

The synthesis network has no spatial convolutions. Every layer acts on a *bi-line*: row and column
encodings of shape [N, C, L, 2 * rank] (slots :rank describe the rows, rank: the columns) sampled at
L = img_resolution coordinates in [0, 1]. A Fourier-feature input produces the first bi-line; modulated
fully connected layers transform it. The ToRes layers of the blocks accumulate a thin bi-line whose
product, F[n, c, y, x] = 1/2 sum_k row[n, c, y, k] col[n, c, x, k], is a 2-D feature map; those maps are
summed through small per-resolution MLP decoders, and a last decoder and two per-pixel synthesis blocks
turn the sum into the image. Every output pixel is a function of its two coordinates alone, so the same
weights render any grid.

Any-resolution rendering: `with rendering_scale(G, 2): img = G(z, c)` renders at twice the training
resolution by resampling the coordinate grid to int(img_resolution * scale) points in [0, 1]. It swaps
the `coords` buffer of every SynthesisInput, so it works as well for pickles of the public release,
whose SynthesisInput is this module's class (see SynthesisInput). `is_creps(G)` tells whether a network
can do it.

This module is embedded in network pickles and executed standalone when they are loaded, so it
imports nothing but numpy, torch, `torch_utils.misc`, `torch_utils.persistence` and `torch_utils.ops`.
"""

import contextlib

import numpy as np
import torch
from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import bias_act

# bias_act on the freshly computed output of a layer: this project's op library may then work in place
# (bias_act.bias_act_); elsewhere (this module run by another code base) the plain op.
_bias_act_on_fresh = getattr(bias_act, 'bias_act_', bias_act.bias_act)

# ----------------------------------------------------------------------------
# Functional building blocks.


def _describe(module, *names):
    """extra_repr text: the named attributes of `module` as name=value."""
    return ', '.join(f'{name}={getattr(module, name)}' for name in names)


@misc.profiled_function
def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """Scales `x` so that its mean square along `dim` is 1."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _num_positions(x):
    """Number of positions (product of the axes after the channels) of [N, C, ...] activations."""
    return int(np.prod(x.shape[2:], dtype=np.int64))


@misc.profiled_function
def modulated_fc(
    x,                      # Input activations: [batch_size, in_channels, ...] (any trailing axes).
    weight,                 # Shared weight: [out_channels, in_channels].
    styles,                 # Per-sample modulation: [batch_size, in_channels].
    demodulate      = True, # Normalise each output row of the per-sample weight to unit norm?
):
    """Fully connected layer over axis 1 of `x` whose weight is scaled per sample and input channel.

    Sample n uses w[n, o, i] = weight[o, i] * styles[n, i] (times d[n, o] = 1 / ||w[n, o, :]|| when
    demodulating): the per-sample weights are tiny, so one batched matrix product does the layer.
    """
    batch_size = x.shape[0]
    out_channels, in_channels = weight.shape
    misc.assert_shape(weight, [out_channels, in_channels])
    misc.assert_shape(x, [batch_size, in_channels] + [None] * (x.ndim - 2))
    misc.assert_shape(styles, [batch_size, in_channels])

    # Rescale before float16 arithmetic; demodulation cancels the scale exactly.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / np.sqrt(in_channels) / weight.norm(float('inf'), dim=1, keepdim=True))
        styles = styles / styles.norm(float('inf'), dim=1, keepdim=True)

    w = weight.unsqueeze(0) * styles.unsqueeze(1)  # [N, O, I]
    if demodulate:
        # sum_i (weight[o, i] * s[n, i])^2 as one small matrix product.
        dcoefs = (styles.square() @ weight.square().t() + 1e-8).rsqrt()  # [N, O]
        w = w * dcoefs.unsqueeze(2)
    y = torch.matmul(w.to(x.dtype), x.reshape(batch_size, in_channels, _num_positions(x)))
    return y.reshape(batch_size, out_channels, *x.shape[2:])


@misc.profiled_function
def fully_connected_per_pixel(layer, x):
    """A FullyConnectedLayer applied at every position of `x`: [N, in_features, ...] -> [N, out_features, ...].

    The same function as `layer(x)` on the positions laid out as rows, without moving the channels last.
    """
    batch_size = x.shape[0]
    misc.assert_shape(x, [batch_size, layer.in_features] + [None] * (x.ndim - 2))
    w = layer.weight.to(x.dtype) * layer.weight_gain
    b = None if layer.bias is None else layer.bias.to(x.dtype)
    if b is not None and layer.bias_gain != 1:
        b = b * layer.bias_gain
    # A batched product keeps the positions contiguous (torch.matmul would transpose the activations).
    y = torch.bmm(w.unsqueeze(0).expand(batch_size, -1, -1), x.reshape(batch_size, layer.in_features, _num_positions(x)))
    y = _bias_act_on_fresh(y, b, act=layer.activation)
    return y.reshape(batch_size, layer.out_features, *x.shape[2:])


@misc.profiled_function
def biline_product(lines, rows=slice(None)):
    """The 2-D feature map of a bi-line, [N, C, L, 2 * rank] -> [N, C, L, L], or the given range of its rows.

    F[n, c, y, x] = sum_k r[n, c, y, k] * q[n, c, x, k] / 2, with r the row slots (:rank) and q the column
    slots (rank:); the official code scales both by sqrt(1/2) before the product.
    """
    rank = lines.shape[-1] // 2
    misc.assert_shape(lines, [None, None, None, 2 * rank])
    row_slots = lines[:, :, rows, :rank] * 0.5
    col_slots = lines[..., rank:]
    return torch.matmul(row_slots, col_slots.transpose(-2, -1))

# ----------------------------------------------------------------------------
# Layers with equalised learning rate: parameters are stored at unit scale and multiplied by their
# He gain at runtime, so every parameter learns at the same pace under Adam.


@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    def __init__(self,
        in_features,                # Width of the input.
        out_features,               # Width of the output.
        bias            = True,     # Add a learned bias.
        weight_norm     = True,     # Equalised learning rate (the 1/sqrt(in_features) gain); off in ToRes.
        activation      = 'linear', # Activation after the bias.
        lr_multiplier   = 1,        # Learning rate of this layer relative to the others.
        bias_init       = 0,        # Starting value of the bias.
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        # Stored divided by lr_multiplier and multiplied back when used: Adam's steps shrink by that factor.
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = None
        if bias:
            self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init)))
        fan_in_scale = np.sqrt(in_features) if weight_norm else 1
        self.weight_gain = lr_multiplier / fan_in_scale
        self.bias_gain = lr_multiplier

    def forward(self, x):
        """[batch_size, in_features] -> [batch_size, out_features]."""
        weight = self.weight.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        if bias is not None and self.bias_gain != 1:
            bias = bias * self.bias_gain
        gain = float(self.weight_gain)  # Applied to the product, which has fewer rows than the weight.
        if bias is not None and self.activation == 'linear':
            return torch.addmm(bias.unsqueeze(0), x, weight.t(), alpha=gain)
        return bias_act.bias_act(x.matmul(weight.t()).mul_(gain), bias, act=self.activation)

    def extra_repr(self):
        return _describe(self, 'in_features', 'out_features', 'activation')


@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Width of z; 0 for none.
        c_dim,                      # Width of the label c; 0 for none.
        w_dim,                      # Width of w.
        num_ws,                     # Copies of w to output; None: one w per sample, not broadcast.
        num_layers      = 8,        # Fully connected layers.
        embed_features  = None,     # Width of the embedded label; None: w_dim.
        layer_features  = None,     # Width of the hidden layers; None: w_dim.
        activation      = 'lrelu',  # Activation of every layer.
        lr_multiplier   = 0.01,     # Learning rate of the layers relative to the rest of G.
        w_avg_beta      = 0.998,    # Decay of the running average of w (the truncation centre); None: not kept.
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws, self.num_layers, self.w_avg_beta = num_ws, num_layers, w_avg_beta

        label_width = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        hidden_width = w_dim if layer_features is None else layer_features
        widths = [z_dim + label_width] + [hidden_width] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, label_width)
        for idx in range(num_layers):
            setattr(self, f'fc{idx}', FullyConnectedLayer(widths[idx], widths[idx + 1], activation=activation,
                                                          lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        """Maps z (and the label c) to W, broadcast to [N, num_ws, w_dim] unless num_ws is None.

        Truncation pulls the first `truncation_cutoff` ws (all when None) towards w_avg:
        w_avg + truncation_psi * (w - w_avg).
        """
        with torch.autograd.profiler.record_function('input'):
            inputs = []  # Each normalised on its own, then side by side.
            if self.z_dim > 0:
                misc.assert_shape(z, [None, self.z_dim])
                inputs.append(normalize_2nd_moment(z.to(torch.float32)))
            if self.c_dim > 0:
                misc.assert_shape(c, [None, self.c_dim])
                inputs.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
            w = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        for idx in range(self.num_layers):
            w = getattr(self, f'fc{idx}')(w)

        if update_emas and self.w_avg_beta is not None:
            self._follow_w_avg(w.detach())
        ws = w if self.num_ws is None else w.unsqueeze(1).repeat([1, self.num_ws, 1])  # One copy per layer.
        return ws if truncation_psi == 1 else self._truncate(ws, truncation_psi, truncation_cutoff)

    def _follow_w_avg(self, w):
        """Moves w_avg a step (1 - w_avg_beta) towards the batch's mean w."""
        with torch.autograd.profiler.record_function('update_w_avg'):
            self.w_avg.copy_(w.mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

    def _truncate(self, ws, psi, cutoff):
        assert self.w_avg_beta is not None, 'truncation needs the tracked w_avg (w_avg_beta is None)'
        with torch.autograd.profiler.record_function('truncate'):
            if self.num_ws is None or cutoff is None:
                return self.w_avg.lerp(ws, psi)
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], psi)
            return ws

    def extra_repr(self):
        return _describe(self, 'z_dim', 'c_dim', 'w_dim', 'num_ws')


# ----------------------------------------------------------------------------
# Synthesis layers.


def _check_weight_layout(channels_last):
    if channels_last:
        raise ValueError('channels_last=True is not supported: the weights of fully connected layers are 2-D '
                         'and have no channels-last layout (leave fp16_channels_last=False)')


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                    # Channels in.
        out_channels,                   # Channels out.
        w_dim,                          # Width of w, from which the styles come.
        activation      = 'lrelu',      # Activation after the bias.
        fc_clamp        = None,         # Outputs clamped to +-this; None: no clamping.
        channels_last   = False,        # Refused: 2-D weights have no channels-last layout.
    ):
        _check_weight_layout(channels_last)
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.activation, self.fc_clamp = activation, fc_clamp
        self.act_gain = bias_act.activation_funcs[activation].def_gain
        # Styles start at 1 (bias_init=1): at first the layer is a plain, demodulated one.
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode='random', gain=1):
        """[N, in_channels, ...] -> [N, out_channels, ...]; CREPS has no noise, `noise_mode` is only checked."""
        assert noise_mode in ('random', 'const', 'none')
        misc.assert_shape(x, [None, self.in_channels] + [None] * (x.ndim - 2))
        mixed = modulated_fc(x=x, weight=self.weight, styles=self.affine(w))
        clamp = None if self.fc_clamp is None else self.fc_clamp * gain
        return _bias_act_on_fresh(mixed, self.bias.to(mixed.dtype), act=self.activation, gain=self.act_gain * gain,
                                  clamp=clamp)

    def extra_repr(self):
        return _describe(self, 'in_channels', 'out_channels', 'w_dim', 'activation')


class SynthesisInput(torch.nn.Module):
    """Fourier features of the 1-D coordinates, modulated per sample: the first bi-line [N, C, L, 2 * rank].

    Not a persistent class, exactly as in the public release: pickles of either code base store it by
    reference as `training.networks_creps.SynthesisInput`, so a pickle made by the public code unpickles
    into this class with the attributes that code set. The attribute, buffer and parameter names and
    the function computed from them are therefore those of the public release, and forward() uses no
    other attribute. `coords` ([1, L, 2, 1]: the L sample positions along the rows and the columns) is
    what `rendering_scale` replaces.
    """

    def __init__(self,
        channels,           # Channels of the bi-line it produces.
        w_dim,              # Width of w, which sets the amplitudes.
        resolution,         # Coordinates per axis (the image resolution).
        rank        = 8,    # Rank of the bi-line.
        bandwidth   = 10,   # Standard deviation of the random frequencies.
    ):
        super().__init__()
        self.channels, self.w_dim, self.resolution = channels, w_dim, resolution
        self.rank, self.bandwidth = rank, bandwidth

        # One frequency per (channel pair, rank slot); the same frequencies serve rows and columns.
        freqs = torch.randn([1, channels // 2 * rank]) * bandwidth
        self.register_buffer('freqs', freqs)
        self.register_buffer('coords', grid_coordinates(resolution))
        self.weight = torch.nn.Parameter(torch.randn([1, channels, 1, 2 * rank]))
        self.affine = FullyConnectedLayer(w_dim, channels * 2 * rank, bias_init=1)

    def forward(self, w):
        misc.assert_shape(w, [None, self.w_dim])
        misc.assert_shape(self.coords, [1, None, 2, 1])
        batch_size = w.shape[0]
        num_points = self.coords.shape[1]
        half = self.channels // 2

        # Phases t = 2 pi * coordinate * frequency, laid out [C / 2, L, (axis, rank)]; channels :C/2 carry
        # sin(t) and C/2: carry cos(t) = sin(t + pi/2). They do not depend on the sample.
        t = self.coords[0] * self.freqs[0]  # [L, 2, C/2 * rank]
        t = t.reshape(num_points, 2, half, self.rank).permute(2, 0, 1, 3) * (np.pi * 2)
        t = t.reshape(half, num_points, 2 * self.rank)
        x = torch.sin(torch.cat([t, t + np.pi / 2], dim=0))  # [C, L, 2 * rank]

        # Per-sample amplitude of every (channel, axis, rank slot).
        weight = self.weight * self.affine(w).reshape(batch_size, self.channels, 1, 2 * self.rank)
        x = x.unsqueeze(0) * weight / np.sqrt(self.channels)
        misc.assert_shape(x, [batch_size, self.channels, num_points, 2 * self.rank])
        return x

    def extra_repr(self):
        return _describe(self, 'channels', 'w_dim', 'rank', 'resolution', 'bandwidth')


@persistence.persistent_class
class ToResLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                # Feature channels in.
        out_channels,               # Channels out: bi-line channels, or the image's.
        w_dim,                      # Width of w, from which the styles come.
        fc_clamp        = None,     # Outputs clamped to +-this; None: no clamping.
        channels_last   = False,    # Refused: 2-D weights have no channels-last layout.
    ):
        _check_weight_layout(channels_last)
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.fc_clamp = fc_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels)

    def forward(self, x, w):
        # No demodulation here, so the He gain must be applied; on the styles it costs least.
        mixed = modulated_fc(x=x, weight=self.weight, styles=self.affine(w) * self.weight_gain, demodulate=False)
        return _bias_act_on_fresh(mixed, self.bias.to(mixed.dtype), clamp=self.fc_clamp)

    def extra_repr(self):
        return _describe(self, 'in_channels', 'out_channels', 'w_dim')


@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    def __init__(self,
        in_channels,                        # Channels from the previous block; 1 for the first (Fourier input).
        out_channels,                       # Channels this block produces.
        w_dim,                              # Width of each w.
        resolution,                         # Coordinates per axis (the image resolution).
        is_last,                            # The final block (which always has a ToRes).
        res_channels        = None,         # Channels of the ToRes output.
        architecture        = 'skip',       # 'skip': every block has a ToRes; 'orig': only the last one.
        fc_clamp            = 256,          # Layer outputs clamped to +-this; None: no clamping.
        use_fp16            = False,        # Run the block in float16 (GPUs only).
        fp16_channels_last  = False,        # Refused: 2-D weights have no channels-last layout.
        **layer_kwargs,                     # Passed on to the SynthesisLayers.
    ):
        assert architecture in ('orig', 'skip')
        super().__init__()
        self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
        self.res_channels, self.is_last = res_channels, is_last
        # The first block works as 'orig': it has a ToRes (built for 'skip') but uses it only when it is last.
        self.architecture = architecture if in_channels > 1 else 'orig'
        self.use_fp16 = use_fp16
        self.channels_last = (use_fp16 and fp16_channels_last)

        first = (in_channels == 1)
        per_layer = dict(w_dim=w_dim, fc_clamp=fc_clamp, channels_last=self.channels_last)
        if first:
            self.input = SynthesisInput(out_channels, w_dim=w_dim, resolution=resolution)
        else:
            self.fc0 = SynthesisLayer(in_channels, out_channels, **per_layer, **layer_kwargs)
        self.fc1 = SynthesisLayer(out_channels, out_channels, **per_layer, **layer_kwargs)
        self.num_fc = 1 if first else 2
        self.num_tores = 1 if (is_last or architecture == 'skip') else 0
        if self.num_tores:
            self.tores = ToResLayer(out_channels, res_channels, **per_layer)

    def forward(self, x, res, ws, force_fp32=False, update_emas=False, **layer_kwargs):
        """Returns (features, accumulated ToRes output in float32 or None).

        `ws`: [N, (first block) + num_fc + num_tores, w_dim]: the input's w, one per layer, one for ToRes.
        """
        _ = update_emas  # Nothing here keeps running statistics.
        first = (self.in_channels == 1)
        misc.assert_shape(ws, [None, int(first) + self.num_fc + self.num_tores, self.w_dim])
        layer_ws = iter(ws.unbind(dim=1))
        reduced = self.use_fp16 and not force_fp32 and ws.device.type == 'cuda'  # float16 is slow on the CPU.
        dtype = torch.float16 if reduced else torch.float32

        if first:
            x = self.input(next(layer_ws)).to(dtype)
        else:
            misc.assert_shape(x, [ws.shape[0], self.in_channels] + [None] * (x.ndim - 2))
            x = self.fc0(x.to(dtype), next(layer_ws), **layer_kwargs)
        x = self.fc1(x, next(layer_ws), **layer_kwargs)

        if self.is_last or self.architecture == 'skip':  # 'orig' first blocks skip their ToRes.
            lines = self.tores(x, next(layer_ws)).to(torch.float32)
            res = lines if res is None else res + lines
        assert x.dtype == dtype and (res is None or res.dtype == torch.float32)
        return x, res

    def extra_repr(self):
        return _describe(self, 'resolution', 'architecture')

# ----------------------------------------------------------------------------
# Synthesis network and generator.


_BAND_BYTES = 8 << 20  # Bytes of the widest per-pixel activation of one band of the inference pixel stage.


def _decoder(biline_channels):
    """Per-pixel MLP biline_channels -> 2x -> 4x -> 2x -> 1x, leaky ReLU after every layer."""
    widths = [biline_channels, biline_channels * 2, biline_channels * 4, biline_channels * 2, biline_channels]
    return torch.nn.Sequential(*[FullyConnectedLayer(i, o, activation='lrelu') for i, o in zip(widths[:-1], widths[1:])])


def _decode(decoder, x):
    for layer in decoder:
        x = fully_connected_per_pixel(layer, x)
    return x


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    def __init__(self,
        w_dim,                      # Width of each w.
        img_resolution,             # Side of the output image, a power of two of at least 4.
        img_channels,               # Channels of the output image.
        biline_channels = 32,       # Channels of the bi-lines the ToRes layers produce.
        channel_base    = 32768,    # Blocks named after resolution r get channel_base / r channels...
        channel_max     = 512,      # ...but no more than this.
        num_fp16_res    = 0,        # How many of the highest-named blocks run in float16 (GPUs only).
        **block_kwargs,             # Passed on to every SynthesisBlock.
    ):
        log2 = int(np.log2(img_resolution))
        assert 2 ** log2 == img_resolution >= 4, 'img_resolution is a power of two of at least 4'
        assert channel_base > 4 and channel_max > 1 and biline_channels > img_channels
        super().__init__()
        self.w_dim, self.img_channels = w_dim, img_channels
        self.img_resolution, self.img_resolution_log2 = img_resolution, log2
        self.biline_channels, self.num_fp16_res = biline_channels, num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        width = lambda res: min(channel_base // res, channel_max)  # noqa: E731
        lowest_fp16_res = max(2 ** (log2 + 1 - num_fp16_res), 8)

        # The blocks carry StyleGAN2's resolution names and width schedule, but every one samples
        # img_resolution coordinates. ws: one for the input, one per layer, and the last ToRes' (the other
        # ToRes layers read the w of the next block's first layer).
        self.num_ws = 1
        for res in self.block_resolutions:
            block = SynthesisBlock(width(res // 2) if res > 4 else 1, width(res), w_dim=w_dim,
                                   resolution=img_resolution, res_channels=biline_channels,
                                   is_last=(res == img_resolution), use_fp16=(res >= lowest_fp16_res), **block_kwargs)
            self.num_ws += block.num_fc + (block.num_tores if block.is_last else 0)
            setattr(self, f'b{res}', block)

        # One decoder per block after the first; the first bi-line product starts the sum, so the
        # decoder of the second block (like the first block's ToRes) is never used, as in the release.
        for res in self.block_resolutions[1:]:
            setattr(self, f'decoder_{res}', _decoder(biline_channels))
        self.decoder_last = _decoder(biline_channels)
        self.decoder_img = FullyConnectedLayer(biline_channels, img_channels)

        # Two per-pixel blocks refine the image; they always use FP16 on CUDA unless force_fp32.
        self.block0 = SynthesisBlock(biline_channels, biline_channels * 4, w_dim=w_dim, resolution=img_resolution,
            res_channels=img_channels, is_last=False, use_fp16=True, fc_clamp=256)
        self.block1 = SynthesisBlock(biline_channels * 4, biline_channels * 2, w_dim=w_dim, resolution=img_resolution,
            res_channels=img_channels, is_last=True, use_fp16=True, fc_clamp=256)

    def forward(self, ws, **block_kwargs):
        """ws: [N, num_ws, w_dim] -> image [N, img_channels, L, L] in float32 (L = img_resolution unless rendering_scale)."""
        blocks = [getattr(self, f'b{res}') for res in self.block_resolutions]
        with torch.autograd.profiler.record_function('split_ws'):
            misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
            ws = ws.to(torch.float32)
            # The first block also reads the input's w, in front of its own.
            counts = [int(res == 4) + block.num_fc + block.num_tores for res, block in zip(self.block_resolutions, blocks)]
            starts = np.cumsum([0] + [block.num_fc for block in blocks])
            block_ws = [ws.narrow(1, int(start), count) for start, count in zip(starts, counts)]

        # Line stage: the bi-line (the running sum of the ToRes outputs) after every block that has one.
        x = lines = None
        stages = []
        for res, cur_ws in zip(self.block_resolutions, block_ws):
            x, lines = getattr(self, f'b{res}')(x, lines, cur_ws, **block_kwargs)
            if lines is not None:
                stages.append((res, lines))

        # Pixel stage: every pixel depends on its row and column of the bi-lines only. Without autograd it
        # runs on bands of rows, so that memory does not grow with the per-pixel features of the whole image.
        num_points = stages[0][1].shape[2]
        band = num_points
        if not (torch.is_grad_enabled() and any(t.requires_grad for t in [ws, x])):
            row_bytes = max(ws.shape[0], 1) * num_points * self.biline_channels * 4 * 4  # The widest per-pixel activation, float32.
            band = max(_BAND_BYTES // row_bytes, 1)
        last_ws = ws[:, -1:].expand(-1, 3, -1)  # Both per-pixel blocks use the last w for all their layers.
        bands = [self._render_rows(stages, slice(r, min(r + band, num_points)), last_ws, block_kwargs)
                 for r in range(0, num_points, band)]
        return torch.cat(bands, dim=2) if len(bands) > 1 else bands[0]

    def _render_rows(self, stages, rows, last_ws, block_kwargs):
        """The image rows `rows` from the bi-lines of `stages`: [(res, lines [N, C, L, 2 * rank])]."""
        feature = None
        for res, lines in stages:
            new_feature = biline_product(lines, rows)
            if feature is None:
                feature = new_feature
            else:
                feature = _decode(getattr(self, f'decoder_{res}'), feature)
                feature = feature.add_(new_feature) if not feature.requires_grad else feature + new_feature
        feature = _decode(self.decoder_last, feature)
        img = fully_connected_per_pixel(self.decoder_img, feature)
        feature, img = self.block0(feature, img, last_ws, **block_kwargs)
        feature, img = self.block1(feature, img, last_ws, **block_kwargs)
        return img

    def extra_repr(self):
        return _describe(self, 'w_dim', 'num_ws', 'img_resolution', 'img_channels', 'num_fp16_res')


@persistence.persistent_class
class Generator(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Width of the input latent z.
        c_dim,                      # Width of the label c; 0 for unconditional networks.
        w_dim,                      # Width of the intermediate latent w.
        img_resolution,             # Side of the output image.
        img_channels,               # Channels of the output image.
        mapping_kwargs      = {},   # Passed on to the MappingNetwork.
        **synthesis_kwargs,         # Passed on to the SynthesisNetwork.
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)

# ----------------------------------------------------------------------------
# Any-resolution rendering. These functions recognise CREPS inputs by class name and buffer layout,
# not by identity, so they also work on networks whose classes come from a pickle's embedded source.


def grid_coordinates(num_points, device=None):
    """The `coords` buffer of a SynthesisInput: num_points positions in [0, 1] for both axes, [1, L, 2, 1]."""
    coords = torch.linspace(0, 1, num_points, device=device).reshape(1, -1, 1, 1)
    return coords.repeat(1, 1, 2, 1)


def _coordinate_inputs(module):
    """The CREPS SynthesisInput modules inside `module` (itself included)."""
    if not isinstance(module, torch.nn.Module):
        return []
    inputs = []
    for m in module.modules():
        coords = m._buffers.get('coords', None)
        if type(m).__name__ == 'SynthesisInput' and isinstance(coords, torch.Tensor) and coords.ndim == 4 \
                and coords.shape[0] == 1 and tuple(coords.shape[2:]) == (2, 1) \
                and isinstance(getattr(m, 'resolution', None), (int, np.integer)):
            inputs.append(m)
    return inputs


def is_creps(G):
    """True if `G` (a generator or any module containing a CREPS synthesis network) can render at other scales."""
    return len(_coordinate_inputs(G)) > 0


def _check_scale(scale):
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise ValueError(f'scale must be a number, not {type(scale).__name__}')
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f'scale must be a positive finite number, not {scale}')


def scaled_resolution(resolution, scale):
    """The side length, in pixels, of a rendering at `scale` times `resolution`: int(resolution * scale).

    Raises ValueError if `scale` is not a positive finite number or the result is below one pixel.
    """
    _check_scale(scale)
    size = int(resolution * scale)
    if size < 1:
        raise ValueError(f'scale {scale} gives int({resolution} * {scale}) = {size} pixels; '
                         f'the smallest scale for this network is {1 / resolution:g}')
    return size


def rendering_resolution(G, scale):
    """The side length of the images that `G` renders under `rendering_scale(G, scale)`; ValueError as there."""
    _check_scale(scale)
    inputs = _coordinate_inputs(G)
    if inputs:
        return scaled_resolution(inputs[0].resolution, scale)
    if scale != 1:
        raise ValueError(f'{type(G).__name__} is not a CREPS network: only CREPS renders at scales other '
                         f'than 1 (got scale {scale})')
    return int(G.img_resolution)


@contextlib.contextmanager
def rendering_scale(G, scale):
    """Context manager: inside it, the CREPS network `G` renders at `scale` times its training resolution.

    The coordinate grid of every SynthesisInput in `G` is resampled to int(img_resolution * scale) points
    in [0, 1] (both axes) and restored on exit, also after an exception. Scale 1 leaves any network
    untouched. Raises ValueError if `scale` is not a positive finite number, and for a scale other than 1
    if `G` is not a CREPS network or the grid would have no point. Nested scales do not compound: each is
    relative to the training resolution. A copy or pickle of `G` made inside the block keeps the scaled grid.
    """
    _check_scale(scale)
    if scale == 1:
        yield G
        return
    rendering_resolution(G, scale)  # Refuses other networks and grids of no point.
    saved = []
    try:
        for m in _coordinate_inputs(G):
            saved.append((m, m.coords))
            m.coords = grid_coordinates(scaled_resolution(m.resolution, scale), device=m.coords.device)
        yield G
    finally:
        for m, old in reversed(saved):
            m.coords = old

# ----------------------------------------------------------------------------
