"""StyleGAN2 generator and discriminator ("Analyzing and Improving the Image Quality of StyleGAN",
Karras et al. 2020), with the constructor arguments and state-dict layout of the official
StyleGAN2-ADA / StyleGAN3 releases, so weights and pickles are interchangeable.

This module is embedded in network pickles and executed standalone when they are loaded, so it
imports nothing but numpy, torch, `torch_utils.misc`, `torch_utils.persistence` and
`torch_utils.ops`.
"""

import numpy as np
import torch
from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import bias_act
from torch_utils.ops import conv2d_resample
from torch_utils.ops import fma
from torch_utils.ops import upfirdn2d

# ----------------------------------------------------------------------------
# Functional building blocks.


def _describe(module, *names):
    """extra_repr text: the named attributes of `module` as name=value."""
    return ', '.join(f'{name}={getattr(module, name)}' for name in names)


def resolution_log2(resolution):
    """log2 of an image side, which must be a power of two of at least 4."""
    assert resolution >= 4 and resolution & (resolution - 1) == 0, f'{resolution} is not a power of two >= 4'
    return resolution.bit_length() - 1


@misc.profiled_function
def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """Scales `x` so that its mean square along `dim` is 1."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


@misc.profiled_function
def demodulation_coefficients(weight, styles, eps=1e-8):
    """1 / norm of each output filter of `weight` scaled per input channel by `styles`: [N, O].

    sum_{i,k} (w[o,i,k] * s[n,i])^2 == sum_i s[n,i]^2 * sum_k w[o,i,k]^2, so one small matrix
    product replaces building the [N, O, I, kh, kw] tensor of per-sample weights.
    """
    weight_energy = weight.square().flatten(2).sum(dim=2)  # [O, I]; one contiguous axis reduces faster.
    return (styles.square() @ weight_energy.t() + eps).rsqrt()


@misc.profiled_function
def modulated_conv2d(
    x,                      # Input activations: [batch_size, in_channels, in_height, in_width].
    weight,                 # Shared weight: [out_channels, in_channels, kernel_height, kernel_width].
    styles,                 # Per-sample modulation: [batch_size, in_channels].
    noise           = None, # Noise added after demodulation: broadcastable to the output, or None.
    up              = 1,    # Integer upsampling factor.
    down            = 1,    # Integer downsampling factor.
    padding         = 0,    # Padding with respect to the upsampled image.
    resample_filter = None, # Low-pass filter for resampling (from upfirdn2d.setup_filter()).
    demodulate      = True, # Normalise each output filter to unit norm?
    flip_weight     = True, # False = convolution, True = correlation (matches torch.nn.functional.conv2d).
    fused_modconv   = True, # True = one grouped convolution with per-sample weights; False = scale the activations.
):
    """Convolution whose weight is scaled per sample and input channel by `styles`.

    Both layouts compute the same function: the grouped convolution is faster on CUDA for small
    batches; modulating the activations around one shared convolution is faster on the CPU.
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    misc.assert_shape(weight, [out_channels, in_channels, kh, kw])
    misc.assert_shape(x, [None, in_channels, None, None])
    misc.assert_shape(styles, [batch_size, in_channels])

    # Rescale before float16 arithmetic; demodulation cancels the scale exactly.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / np.sqrt(in_channels * kh * kw) / weight.norm(float('inf'), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float('inf'), dim=1, keepdim=True)

    dcoefs = demodulation_coefficients(weight, styles) if demodulate else None  # [N, O]

    if not fused_modconv and (kh, kw) == (1, 1) and up == 1 and down == 1 and padding == 0:
        # A 1x1 convolution (ToRGB) is a batched matrix product: per-sample weights cost nothing here
        # and save the separate pass that scales the (much larger) activations.
        w = weight.reshape(1, out_channels, in_channels) * styles.reshape(batch_size, 1, in_channels)
        if demodulate:
            w = w * dcoefs.reshape(batch_size, -1, 1)
        x = torch.matmul(w.to(x.dtype), x.reshape(batch_size, in_channels, -1)).reshape(batch_size, -1, *x.shape[2:])
        return x + noise.to(x.dtype) if noise is not None else x

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample.conv2d_resample(x=x, w=weight.to(x.dtype), f=resample_filter, up=up, down=down,
                                            padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            return fma.fma(x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1), noise.to(x.dtype))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    return _grouped_modulated_conv(x, weight, styles, dcoefs, noise, up=up, down=down, padding=padding,
                                   resample_filter=resample_filter, flip_weight=flip_weight)


def _grouped_modulated_conv(x, weight, styles, dcoefs, noise, up, down, padding, resample_filter, flip_weight):
    """The fused layout: every sample gets its own weight, and the batch becomes groups of one convolution."""
    batch_size = x.shape[0]
    _out_channels, in_channels, kh, kw = weight.shape
    per_sample = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if dcoefs is not None:
        per_sample = per_sample * dcoefs.reshape(batch_size, -1, 1, 1, 1)
    with misc.suppress_tracer_warnings():  # The batch size is a constant of the traced graph.
        groups = int(batch_size)
    misc.assert_shape(x, [groups, in_channels, None, None])
    stacked = x.reshape(1, -1, *x.shape[2:])
    out = conv2d_resample.conv2d_resample(x=stacked, w=per_sample.reshape(-1, in_channels, kh, kw).to(x.dtype),
                                          f=resample_filter, up=up, down=down, padding=padding, groups=groups,
                                          flip_weight=flip_weight)
    out = out.reshape(groups, -1, *out.shape[2:])
    return out if noise is None else out + noise.to(out.dtype)

# ----------------------------------------------------------------------------
# Layers with equalised learning rate: parameters are stored at unit scale and multiplied by
# their He gain at runtime, so every parameter learns at the same pace under Adam.


@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    def __init__(self,
        in_features,                # Width of the input.
        out_features,               # Width of the output.
        bias            = True,     # Add a learned bias.
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
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
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
class Conv2dLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                    # Channels in.
        out_channels,                   # Channels out.
        kernel_size,                    # Side of the square kernel.
        bias            = True,         # Add a learned bias before the activation.
        activation      = 'linear',     # Activation after the bias ('linear', 'relu', 'lrelu', ...).
        up              = 1,            # Upsampling factor before the convolution.
        down            = 1,            # Downsampling factor after it.
        resample_filter = [1, 3, 3, 1], # FIR taps for the resampling.
        conv_clamp      = None,         # Outputs clamped to +-this; None: no clamping.
        channels_last   = False,        # Keep the weight in channels-last layout (for float16 inputs in that layout).
        trainable       = True,         # False: weight and bias are buffers that the optimiser does not see.
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.activation = activation
        self.up, self.down = up, down
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))  # Equalised learning rate.
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        layout = torch.channels_last if channels_last else torch.contiguous_format
        initial = dict(weight=torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=layout),
                       bias=torch.zeros([out_channels]) if bias else None)
        for name, value in initial.items():
            if not trainable:
                self.register_buffer(name, value)
            else:
                setattr(self, name, None if value is None else torch.nn.Parameter(value))

    def forward(self, x, gain=1):
        weight = (self.weight * self.weight_gain).to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        # Upsampling runs as a transposed convolution, which takes the kernel as it is.
        x = conv2d_resample.conv2d_resample(x=x, w=weight, f=self.resample_filter, up=self.up, down=self.down,
                                            padding=self.padding, flip_weight=(self.up == 1))
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act.bias_act(x, bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self):
        return _describe(self, 'in_channels', 'out_channels', 'activation', 'up', 'down')

# ----------------------------------------------------------------------------
# Generator.


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


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                    # Channels in.
        out_channels,                   # Channels out.
        w_dim,                          # Width of w, from which the styles come.
        resolution,                     # Side of the output feature maps.
        kernel_size     = 3,            # Side of the square kernel.
        up              = 1,            # Upsampling factor (2 in a block's first layer).
        use_noise       = True,         # Add per-pixel noise, scaled by a learned strength.
        activation      = 'lrelu',      # Activation after the bias.
        resample_filter = [1, 3, 3, 1], # FIR taps for upsampling.
        conv_clamp      = None,         # Outputs clamped to +-this; None: no clamping.
        channels_last   = False,        # Keep the weight in channels-last layout.
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.w_dim, self.resolution = w_dim, resolution
        self.up, self.use_noise = up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        # Styles start at 1 (bias_init=1): at first the layer is a plain convolution.
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        kernel = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        self.weight = torch.nn.Parameter(kernel.to(memory_format=layout))
        if use_noise:
            self.register_buffer('noise_const', torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))  # Noise starts switched off.
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def _scaled_noise(self, batch_size, device, noise_mode):
        if not self.use_noise or noise_mode == 'none':
            return None
        if noise_mode == 'const':
            return self.noise_const * self.noise_strength
        return torch.randn([batch_size, 1, self.resolution, self.resolution], device=device) * self.noise_strength

    def forward(self, x, w, noise_mode='random', fused_modconv=True, gain=1):
        """noise_mode: 'random' = fresh noise per call, 'const' = the stored noise_const, 'none' = no noise."""
        assert noise_mode in ('random', 'const', 'none')
        input_side = self.resolution // self.up
        misc.assert_shape(x, [None, self.in_channels, input_side, input_side])
        styles = self.affine(w)
        noise = self._scaled_noise(x.shape[0], x.device, noise_mode)
        # Upsampling runs as a transposed convolution, which takes the kernel as it is.
        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act.bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self):
        return _describe(self, 'in_channels', 'out_channels', 'w_dim', 'resolution', 'up', 'activation')


@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    def __init__(self,
        in_channels,            # Feature channels in.
        out_channels,           # Image channels out.
        w_dim,                  # Width of w, from which the styles come.
        kernel_size     = 1,    # Side of the square kernel.
        conv_clamp      = None, # Outputs clamped to +-this; None: no clamping.
        channels_last   = False,# Keep the weight in channels-last layout.
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        kernel = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        self.weight = torch.nn.Parameter(kernel.to(memory_format=layout))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))

    def forward(self, x, w, fused_modconv=True):
        # No demodulation here, so the He gain must be applied; on the styles it costs least.
        styles = self.affine(w) * self.weight_gain
        rgb = modulated_conv2d(x=x, weight=self.weight, styles=styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(rgb, self.bias.to(rgb.dtype), clamp=self.conv_clamp)

    def extra_repr(self):
        return _describe(self, 'in_channels', 'out_channels', 'w_dim')


@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    def __init__(self,
        in_channels,                        # Channels from the previous block; 0 for the first block.
        out_channels,                       # Channels this block produces.
        w_dim,                              # Width of each w.
        resolution,                         # Side of this block's feature maps.
        img_channels,                       # Channels of the image being built.
        is_last,                            # The final block (which always ends with a ToRGB).
        architecture            = 'skip',   # 'orig', 'skip' (the image is summed over blocks) or 'resnet'.
        resample_filter         = [1, 3, 3, 1], # FIR taps for upsampling.
        conv_clamp              = 256,      # Convolution outputs clamped to +-this; None: no clamping.
        use_fp16                = False,    # Run the block in float16 (GPUs only).
        fp16_channels_last      = False,    # With float16, also use the channels-last memory format.
        fused_modconv_default   = True,     # fused_modconv when forward() is not told; 'inference_only': in eval.
        **layer_kwargs,                     # Passed on to the SynthesisLayers.
    ):
        assert architecture in ('orig', 'skip', 'resnet')
        super().__init__()
        self.in_channels, self.w_dim = in_channels, w_dim
        self.resolution, self.img_channels = resolution, img_channels
        self.is_last, self.architecture = is_last, architecture
        self.use_fp16 = use_fp16
        self.channels_last = (use_fp16 and fp16_channels_last)
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))

        first = (in_channels == 0)
        per_layer = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if first:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, resample_filter=resample_filter,
                                        **per_layer, **layer_kwargs)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **per_layer, **layer_kwargs)
        self.num_conv = 1 if first else 2
        self.num_torgb = 1 if (is_last or architecture == 'skip') else 0
        if self.num_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
        if not first and architecture == 'resnet':
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    def _fused_modconv(self, requested, on_gpu):
        if not on_gpu:
            return False  # Same result; on the CPU one shared convolution is the faster layout.
        if requested is None:
            requested = self.fused_modconv_default
        return (not self.training) if requested == 'inference_only' else requested

    def forward(self, x, img, ws, force_fp32=False, fused_modconv=None, update_emas=False, **layer_kwargs):
        """(features, image) after this block; `ws` holds one w per convolution and one for the ToRGB,
        [N, num_conv + num_torgb, w_dim]."""
        _ = update_emas  # Nothing here keeps running statistics.
        misc.assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        on_gpu = (ws.device.type == 'cuda')
        reduced = on_gpu and not force_fp32  # float16 convolutions are slow or missing on the CPU.
        dtype = torch.float16 if self.use_fp16 and reduced else torch.float32
        memory_format = torch.channels_last if self.channels_last and reduced else torch.contiguous_format
        fused = self._fused_modconv(fused_modconv, on_gpu)
        layer_ws = iter(ws.unbind(dim=1))

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(layer_ws), fused_modconv=fused, **layer_kwargs)
        else:
            misc.assert_shape(x, [None, self.in_channels, self.resolution // 2, self.resolution // 2])
            x = x.to(dtype=dtype, memory_format=memory_format)
            # resnet: both branches scaled by sqrt(1/2), so that their sum keeps the variance.
            shortcut = self.skip(x, gain=np.sqrt(0.5)) if self.architecture == 'resnet' else None
            x = self.conv0(x, next(layer_ws), fused_modconv=fused, **layer_kwargs)
            if shortcut is None:
                x = self.conv1(x, next(layer_ws), fused_modconv=fused, **layer_kwargs)
            else:
                x = shortcut + self.conv1(x, next(layer_ws), fused_modconv=fused, gain=np.sqrt(0.5), **layer_kwargs)

        # The image is carried between blocks in float32.
        if img is not None:
            misc.assert_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2])
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if self.num_torgb:
            rgb = self.torgb(x, next(layer_ws), fused_modconv=fused)
            rgb = rgb.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = rgb if img is None else img + rgb

        assert x.dtype == dtype and (img is None or img.dtype == torch.float32)
        return x, img

    def extra_repr(self):
        return _describe(self, 'resolution', 'architecture')


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    def __init__(self,
        w_dim,                      # Width of each w.
        img_resolution,             # Side of the output image, a power of two of at least 4.
        img_channels,               # Channels of the output image.
        channel_base    = 32768,    # Blocks at resolution r get channel_base / r channels...
        channel_max     = 512,      # ...but no more than this.
        num_fp16_res    = 4,        # How many of the highest resolutions run in float16 (GPUs only).
        **block_kwargs,             # Passed on to every SynthesisBlock.
    ):
        log2 = resolution_log2(img_resolution)
        super().__init__()
        self.w_dim, self.img_channels, self.num_fp16_res = w_dim, img_channels, num_fp16_res
        self.img_resolution, self.img_resolution_log2 = img_resolution, log2
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]  # 4, 8, ..., img_resolution.
        width = lambda res: min(channel_base // res, channel_max)  # noqa: E731
        lowest_fp16_res = max(2 ** (log2 + 1 - num_fp16_res), 8)

        # A block's ToRGB reads the same w as the next block's first convolution; only the last block's is extra.
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(width(res // 2) if res > 4 else 0, width(res), w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=(res == img_resolution),
                                   use_fp16=(res >= lowest_fp16_res), **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if block.is_last else 0)
            setattr(self, f'b{res}', block)

    def forward(self, ws, **block_kwargs):
        """ws: [N, num_ws, w_dim] -> image [N, img_channels, img_resolution, img_resolution] in float32."""
        blocks = [getattr(self, f'b{res}') for res in self.block_resolutions]
        with torch.autograd.profiler.record_function('split_ws'):
            misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
            ws = ws.to(torch.float32)
            first_w = np.cumsum([0] + [block.num_conv for block in blocks])
            per_block = [ws.narrow(1, int(start), block.num_conv + block.num_torgb)
                         for start, block in zip(first_w, blocks)]
        features = image = None
        for block, block_ws in zip(blocks, per_block):
            features, image = block(features, image, block_ws, **block_kwargs)
        return image

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
# Discriminator.


@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    def __init__(self,
        in_channels,                        # Channels from the previous block; 0 for the first block.
        tmp_channels,                       # Channels inside the block.
        out_channels,                       # Channels passed on (at half the resolution).
        resolution,                         # Side of the block's input.
        img_channels,                       # Channels of the image.
        first_layer_idx,                    # How many layers of D come before this block (for freeze_layers).
        architecture        = 'resnet',     # 'orig', 'skip' (the image enters every block) or 'resnet'.
        activation          = 'lrelu',      # Activation of the convolutions.
        resample_filter     = [1, 3, 3, 1], # FIR taps for downsampling.
        conv_clamp          = None,         # Convolution outputs clamped to +-this; None: no clamping.
        use_fp16            = False,        # Run the block in float16 (GPUs only).
        fp16_channels_last  = False,        # With float16, also use the channels-last memory format.
        freeze_layers       = 0,            # Freeze-D: this many layers of D, from the image side, do not train.
    ):
        assert in_channels in (0, tmp_channels)
        assert architecture in ('orig', 'skip', 'resnet')
        super().__init__()
        self.in_channels, self.resolution, self.img_channels = in_channels, resolution, img_channels
        self.first_layer_idx, self.architecture = first_layer_idx, architecture
        self.use_fp16 = use_fp16
        self.channels_last = (use_fp16 and fp16_channels_last)
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))

        self.num_layers = 0

        def layer(in_ch, out_ch, kernel_size, **kwargs):
            # Freeze-D counts layers across the whole discriminator, so each layer knows its global index.
            trainable = (first_layer_idx + self.num_layers >= freeze_layers)
            self.num_layers += 1
            return Conv2dLayer(in_ch, out_ch, kernel_size=kernel_size, trainable=trainable,
                               channels_last=self.channels_last, **kwargs)

        if in_channels == 0 or architecture == 'skip':
            self.fromrgb = layer(img_channels, tmp_channels, 1, activation=activation, conv_clamp=conv_clamp)
        self.conv0 = layer(tmp_channels, tmp_channels, 3, activation=activation, conv_clamp=conv_clamp)
        self.conv1 = layer(tmp_channels, out_channels, 3, activation=activation, down=2,
                           resample_filter=resample_filter, conv_clamp=conv_clamp)
        if architecture == 'resnet':
            self.skip = layer(tmp_channels, out_channels, 1, bias=False, down=2, resample_filter=resample_filter)

    def forward(self, x, img, force_fp32=False):
        """Returns (features at half resolution, image at half resolution or None)."""
        on_gpu = (x if x is not None else img).device.type == 'cuda'
        reduced = on_gpu and not force_fp32  # float16 convolutions are slow or missing on the CPU.
        dtype = torch.float16 if self.use_fp16 and reduced else torch.float32
        memory_format = torch.channels_last if self.channels_last and reduced else torch.contiguous_format

        def checked(tensor, channels):
            misc.assert_shape(tensor, [None, channels, self.resolution, self.resolution])
            return tensor.to(dtype=dtype, memory_format=memory_format)

        x = None if x is None else checked(x, self.in_channels)
        if self.in_channels == 0 or self.architecture == 'skip':
            img = checked(img, self.img_channels)
            from_image = self.fromrgb(img)
            x = from_image if x is None else x + from_image
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == 'skip' else None

        if self.architecture == 'resnet':
            # Both branches scaled by sqrt(1/2), so that their sum keeps the variance.
            shortcut = self.skip(x, gain=np.sqrt(0.5))
            x = shortcut + self.conv1(self.conv0(x), gain=np.sqrt(0.5))
        else:
            x = self.conv1(self.conv0(x))
        assert x.dtype == dtype
        return x, img

    def extra_repr(self):
        return _describe(self, 'resolution', 'architecture')


@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module):
    """Appends the standard deviation across groups of samples as extra feature maps, so that the
    discriminator can see how varied the batch is."""

    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size = group_size        # Samples per group; None: the whole batch.
        self.num_channels = num_channels    # Feature maps appended (channels are split into this many sets).

    def forward(self, x):
        batch, channels, height, width = x.shape
        with misc.suppress_tracer_warnings():  # The group size is a constant of the traced graph.
            group = batch if self.group_size is None else \
                torch.min(torch.as_tensor(self.group_size), torch.as_tensor(batch))
        sets = self.num_channels
        # Sample n is in group n % (batch // group); statistics per group member position, per channel set.
        grouped = x.reshape(group, -1, sets, channels // sets, height, width)
        spread = (grouped - grouped.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()
        maps = spread.mean(dim=[2, 3, 4]).reshape(-1, sets, 1, 1).repeat(group, 1, height, width)
        return torch.cat([x, maps], dim=1)

    def extra_repr(self):
        return _describe(self, 'group_size', 'num_channels')


@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    def __init__(self,
        in_channels,                    # Channels of the 4x4 features.
        cmap_dim,                       # Width of the mapped label; 0 for unconditional networks.
        resolution,                     # Side of the features (4).
        img_channels,                   # Channels of the image (used by 'skip').
        architecture        = 'resnet', # 'orig', 'skip' or 'resnet', as in the blocks.
        mbstd_group_size    = 4,        # Samples per minibatch standard deviation group; None: the whole batch.
        mbstd_num_channels  = 1,        # Feature maps it appends; 0: no such layer.
        activation          = 'lrelu',  # Activation of the convolution and the hidden layer.
        conv_clamp          = None,     # Convolution outputs clamped to +-this; None: no clamping.
    ):
        assert architecture in ('orig', 'skip', 'resnet')
        super().__init__()
        self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
        self.img_channels, self.architecture = img_channels, architecture

        if architecture == 'skip':
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = None
        if mbstd_num_channels > 0:
            self.mbstd = MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * (resolution ** 2), in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(self, x, img, cmap, force_fp32=False):
        """Returns logits [N, 1]; with a label, the projection of the output onto the mapped label `cmap`."""
        _ = force_fp32  # The epilogue always runs in float32.
        misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == 'skip':
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            x = x + self.fromrgb(img.to(dtype=torch.float32, memory_format=torch.contiguous_format))
        if self.mbstd is not None:
            x = self.mbstd(x)
        logits = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            # Projection discriminator: the output is compared with the mapped label.
            misc.assert_shape(cmap, [None, self.cmap_dim])
            logits = (logits * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        assert logits.dtype == torch.float32
        return logits

    def extra_repr(self):
        return _describe(self, 'resolution', 'architecture')


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    def __init__(self,
        c_dim,                          # Width of the label c; 0 for unconditional networks.
        img_resolution,                 # Side of the input images.
        img_channels,                   # Channels of the input images.
        architecture        = 'resnet', # 'orig', 'skip' or 'resnet'.
        channel_base        = 32768,    # Blocks at resolution r get channel_base / r channels...
        channel_max         = 512,      # ...but no more than this.
        num_fp16_res        = 4,        # How many of the highest resolutions run in float16 (GPUs only).
        conv_clamp          = 256,      # Convolution outputs clamped to +-this; None: no clamping.
        cmap_dim            = None,     # Width of the mapped label; None: the channels at 4x4.
        block_kwargs        = {},       # Passed on to every DiscriminatorBlock.
        mapping_kwargs      = {},       # Passed on to the label's MappingNetwork.
        epilogue_kwargs     = {},       # Passed on to the DiscriminatorEpilogue.
    ):
        log2 = resolution_log2(img_resolution)
        super().__init__()
        self.c_dim, self.img_channels = c_dim, img_channels
        self.img_resolution, self.img_resolution_log2 = img_resolution, log2
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]  # img_resolution, ..., 8; 4 is the epilogue.
        width = lambda res: min(channel_base // res, channel_max)  # noqa: E731
        lowest_fp16_res = max(2 ** (log2 + 1 - num_fp16_res), 8)
        cmap_dim = 0 if c_dim == 0 else (width(4) if cmap_dim is None else cmap_dim)

        shared = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layers_before = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(width(res) if res < img_resolution else 0, width(res), width(res // 2),
                                       resolution=res, first_layer_idx=layers_before, use_fp16=(res >= lowest_fp16_res),
                                       **block_kwargs, **shared)
            setattr(self, f'b{res}', block)
            layers_before += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(width(4), cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs, **shared)

    def forward(self, img, c, update_emas=False, **block_kwargs):
        """img: [N, img_channels, img_resolution, img_resolution], c: [N, c_dim] -> logits [N, 1]."""
        _ = update_emas  # Nothing here keeps running statistics.
        features = None
        for res in self.block_resolutions:
            features, img = getattr(self, f'b{res}')(features, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(features, img, cmap)

    def extra_repr(self):
        return _describe(self, 'c_dim', 'img_resolution', 'img_channels')

# ----------------------------------------------------------------------------
