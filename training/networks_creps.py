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
    b = layer.bias
    if b is not None:
        b = b.to(x.dtype)
        if layer.bias_gain != 1:
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
        in_features,                # Number of input features.
        out_features,               # Number of output features.
        bias            = True,     # Apply additive bias before the activation function?
        weight_norm     = True,     # Scale the weight by 1 / sqrt(in_features) at runtime (equalised lr)?
        activation      = 'linear', # Activation function: 'relu', 'lrelu', etc.
        lr_multiplier   = 1,        # Learning rate multiplier.
        bias_init       = 0,        # Initial value for the additive bias.
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        # Storing weight / lr_multiplier and multiplying back at runtime scales its effective learning rate.
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / (np.sqrt(in_features) if weight_norm else 1)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        """[batch_size, in_features] -> [batch_size, out_features]."""
        w = self.weight.to(x.dtype)
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        # The weight gain scales the product (batch_size rows) rather than the weight (out_features rows).
        if self.activation == 'linear' and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t(), alpha=float(self.weight_gain))
        x = x.matmul(w.t()).mul_(float(self.weight_gain))
        return bias_act.bias_act(x, b, act=self.activation)

    def extra_repr(self):
        return f'in_features={self.in_features:d}, out_features={self.out_features:d}, activation={self.activation:s}'

# ----------------------------------------------------------------------------
# Mapping network (that of StyleGAN2).


@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Input latent (Z) dimensionality, 0 = no latent.
        c_dim,                      # Conditioning label (C) dimensionality, 0 = no label.
        w_dim,                      # Intermediate latent (W) dimensionality.
        num_ws,                     # Number of intermediate latents to output, None = do not broadcast.
        num_layers      = 8,        # Number of mapping layers.
        embed_features  = None,     # Label embedding dimensionality, None = same as w_dim.
        layer_features  = None,     # Number of intermediate features in the mapping layers, None = same as w_dim.
        activation      = 'lrelu',  # Activation function: 'relu', 'lrelu', etc.
        lr_multiplier   = 0.01,     # Learning rate multiplier for the mapping layers.
        w_avg_beta      = 0.998,    # Decay for tracking the moving average of W during training, None = do not track.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features_list = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features_list[idx], features_list[idx + 1],
                                        activation=activation, lr_multiplier=lr_multiplier)
            setattr(self, f'fc{idx}', layer)

        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        """Maps z (and the label c) to W, broadcast to [N, num_ws, w_dim] unless num_ws is None.

        `update_emas=True` moves w_avg towards the batch mean (the training loop asks for it in the D
        phase, as for the other generators of this project). Truncation pulls the first
        `truncation_cutoff` ws (all when None) towards w_avg: w_avg + truncation_psi * (w - w_avg).
        """
        x = None
        with torch.autograd.profiler.record_function('input'):
            if self.z_dim > 0:
                misc.assert_shape(z, [None, self.z_dim])
                x = normalize_2nd_moment(z.to(torch.float32))
            if self.c_dim > 0:
                misc.assert_shape(c, [None, self.c_dim])
                y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
                x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        if update_emas and self.w_avg_beta is not None:
            with torch.autograd.profiler.record_function('update_w_avg'):
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            with torch.autograd.profiler.record_function('broadcast'):
                x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            with torch.autograd.profiler.record_function('truncate'):
                assert self.w_avg_beta is not None, 'truncation needs the tracked w_avg (w_avg_beta is None)'
                if self.num_ws is None or truncation_cutoff is None:
                    x = self.w_avg.lerp(x, truncation_psi)
                else:
                    x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self):
        return f'z_dim={self.z_dim:d}, c_dim={self.c_dim:d}, w_dim={self.w_dim:d}, num_ws={self.num_ws}'

# ----------------------------------------------------------------------------
# Synthesis layers.


def _check_weight_layout(channels_last):
    if channels_last:
        raise ValueError('channels_last=True is not supported: the weights of fully connected layers are 2-D '
                         'and have no channels-last layout (leave fp16_channels_last=False)')


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                    # Number of input channels.
        out_channels,                   # Number of output channels.
        w_dim,                          # Intermediate latent (W) dimensionality.
        activation      = 'lrelu',      # Activation function: 'relu', 'lrelu', etc.
        fc_clamp        = None,         # Clamp the output of fully connected layers to +-X, None = disable clamping.
        channels_last   = False,        # Channels-last weights; refused (2-D weights have no such layout).
    ):
        _check_weight_layout(channels_last)
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.activation = activation
        self.fc_clamp = fc_clamp
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        # Styles start at 1 (bias_init=1) so that the layer starts as an unmodulated, demodulated layer.
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode='random', gain=1):
        """[N, in_channels, ...] -> [N, out_channels, ...]; CREPS has no noise, `noise_mode` is only checked."""
        assert noise_mode in ['random', 'const', 'none']
        misc.assert_shape(x, [None, self.in_channels] + [None] * (x.ndim - 2))
        styles = self.affine(w)
        x = modulated_fc(x=x, weight=self.weight, styles=styles)
        act_gain = self.act_gain * gain
        act_clamp = self.fc_clamp * gain if self.fc_clamp is not None else None
        return _bias_act_on_fresh(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self):
        return ' '.join([
            f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d},',
            f'w_dim={self.w_dim:d}, activation={self.activation:s}'])


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
        channels,           # Number of output channels.
        w_dim,              # Intermediate latent (W) dimensionality.
        resolution,         # Number of coordinates along each axis (the image resolution).
        rank        = 8,    # Rank of the output bi-line.
        bandwidth   = 10,   # Standard deviation of the Fourier feature frequencies.
    ):
        super().__init__()
        self.channels = channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.rank = rank
        self.bandwidth = bandwidth

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
        return ' '.join([
            f'channels={self.channels:d}, w_dim={self.w_dim:d}, rank={self.rank}',
            f'resolution={self.resolution:d}, bandwidth={self.bandwidth:0.2f}'])


@persistence.persistent_class
class ToResLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                # Number of input channels.
        out_channels,               # Number of output channels (bi-line channels, or image channels).
        w_dim,                      # Intermediate latent (W) dimensionality.
        fc_clamp        = None,     # Clamp the output to +-X, None = disable clamping.
        channels_last   = False,    # Channels-last weights; refused (2-D weights have no such layout).
    ):
        _check_weight_layout(channels_last)
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.fc_clamp = fc_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels)

    def forward(self, x, w):
        # Without demodulation the He gain has to be applied explicitly; folding it into the styles is cheapest.
        styles = self.affine(w) * self.weight_gain
        x = modulated_fc(x=x, weight=self.weight, styles=styles, demodulate=False)
        return _bias_act_on_fresh(x, self.bias.to(x.dtype), clamp=self.fc_clamp)

    def extra_repr(self):
        return f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, w_dim={self.w_dim:d}'


@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    def __init__(self,
        in_channels,                        # Number of input channels, 1 = first block (Fourier input).
        out_channels,                       # Number of output channels.
        w_dim,                              # Intermediate latent (W) dimensionality.
        resolution,                         # Number of coordinates per axis (the image resolution).
        is_last,                            # Is this the last block?
        res_channels        = None,         # Number of output channels of ToRes.
        architecture        = 'skip',       # 'skip': every block has a ToRes; 'orig': only the last one.
        fc_clamp            = 256,          # Clamp the output of fully connected layers to +-X, None = disable clamping.
        use_fp16            = False,        # Use FP16 for this block (on CUDA)?
        fp16_channels_last  = False,        # Channels-last weights with FP16; refused (2-D weights).
        **layer_kwargs,                     # Arguments for SynthesisLayer.
    ):
        assert architecture in ['orig', 'skip']
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.res_channels = res_channels
        self.is_last = is_last
        # The first block runs as 'orig': it has a ToRes (built for 'skip'), but uses it only when it is last.
        self.architecture = architecture if in_channels > 1 else 'orig'
        self.use_fp16 = use_fp16
        self.channels_last = (use_fp16 and fp16_channels_last)
        self.num_fc = 0
        self.num_tores = 0

        common_kwargs = dict(w_dim=w_dim, fc_clamp=fc_clamp, channels_last=self.channels_last)
        if in_channels == 1:
            self.input = SynthesisInput(out_channels, w_dim=w_dim, resolution=resolution)
        else:
            self.fc0 = SynthesisLayer(in_channels, out_channels, **common_kwargs, **layer_kwargs)
            self.num_fc += 1
        self.fc1 = SynthesisLayer(out_channels, out_channels, **common_kwargs, **layer_kwargs)
        self.num_fc += 1

        if is_last or architecture == 'skip':
            self.tores = ToResLayer(out_channels, res_channels, **common_kwargs)
            self.num_tores += 1

    def forward(self, x, res, ws, force_fp32=False, update_emas=False, **layer_kwargs):
        """Returns (features, accumulated ToRes output in float32 or None).

        `ws`: [N, (first block) + num_fc + num_tores, w_dim]: the input's w, one per layer, one for ToRes.
        """
        _ = update_emas  # The synthesis network tracks no statistics.
        misc.assert_shape(ws, [None, (self.in_channels == 1) + self.num_fc + self.num_tores, self.w_dim])
        w_iter = iter(ws.unbind(dim=1))
        use_fp16 = self.use_fp16 and not force_fp32 and ws.device.type == 'cuda'  # float16 is slow on the CPU.
        dtype = torch.float16 if use_fp16 else torch.float32

        if self.in_channels == 1:
            x = self.input(next(w_iter)).to(dtype)
        else:
            misc.assert_shape(x, [ws.shape[0], self.in_channels] + [None] * (x.ndim - 2))
            x = x.to(dtype)
            x = self.fc0(x, next(w_iter), **layer_kwargs)
        x = self.fc1(x, next(w_iter), **layer_kwargs)

        if self.is_last or self.architecture == 'skip':
            y = self.tores(x, next(w_iter)).to(torch.float32)
            res = res + y if res is not None else y

        assert x.dtype == dtype
        assert res is None or res.dtype == torch.float32
        return x, res

    def extra_repr(self):
        return f'resolution={self.resolution:d}, architecture={self.architecture:s}'

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
        w_dim,                      # Intermediate latent (W) dimensionality.
        img_resolution,             # Output image resolution.
        img_channels,               # Number of color channels.
        biline_channels = 32,       # Number of channels of the bi-lines produced by ToRes.
        channel_base    = 32768,    # Overall multiplier for the number of channels.
        channel_max     = 512,      # Maximum number of channels in any layer.
        num_fp16_res    = 0,        # Use FP16 (on CUDA) for the blocks of the N highest resolutions.
        **block_kwargs,             # Arguments for SynthesisBlock.
    ):
        assert img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0
        assert channel_base > 4 and channel_max > 1 and biline_channels > img_channels
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.biline_channels = biline_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        # The blocks are named after the resolution of StyleGAN2, but all of them sample img_resolution
        # coordinates; the width schedule is StyleGAN2's. ws: the input's w, one per layer, and the
        # last ToRes' (each other ToRes shares its w with the next block's first layer).
        self.num_ws = 1
        for res in self.block_resolutions:
            in_channels = channels_dict[res // 2] if res > 4 else 1
            is_last = (res == self.img_resolution)
            block = SynthesisBlock(in_channels, channels_dict[res], w_dim=w_dim, resolution=img_resolution,
                res_channels=biline_channels, is_last=is_last, use_fp16=(res >= fp16_resolution), **block_kwargs)
            self.num_ws += block.num_fc
            if is_last:
                self.num_ws += block.num_tores
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
        block_ws = []
        with torch.autograd.profiler.record_function('split_ws'):
            misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
            ws = ws.to(torch.float32)
            w_idx = 0
            for res in self.block_resolutions:
                block = getattr(self, f'b{res}')
                block_ws.append(ws.narrow(1, w_idx, (res == 4) + block.num_fc + block.num_tores))
                w_idx += block.num_fc

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
        return ' '.join([
            f'w_dim={self.w_dim:d}, num_ws={self.num_ws:d},',
            f'img_resolution={self.img_resolution:d}, img_channels={self.img_channels:d},',
            f'num_fp16_res={self.num_fp16_res:d}'])


@persistence.persistent_class
class Generator(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Input latent (Z) dimensionality.
        c_dim,                      # Conditioning label (C) dimensionality.
        w_dim,                      # Intermediate latent (W) dimensionality.
        img_resolution,             # Output resolution.
        img_channels,               # Number of output color channels.
        mapping_kwargs      = {},   # Arguments for MappingNetwork.
        **synthesis_kwargs,         # Arguments for SynthesisNetwork.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
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
