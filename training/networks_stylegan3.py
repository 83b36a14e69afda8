"""Generator architecture of "Alias-Free Generative Adversarial Networks" (StyleGAN3, arXiv 2106.12423).

Configurations T (translation equivariant) and R (rotation equivariant: `conv_kernel=1`,
`use_radial_filters=True`). State-dict names and shapes match the official release, so weights
load one to one; this module imports only the documented `torch_utils` surface so that it can be
embedded in network pickles.
"""

import numpy as np
import scipy.signal
import scipy.special
import torch
from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import bias_act
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import filtered_lrelu

#----------------------------------------------------------------------------

@misc.profiled_function
def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """Scales `x` to unit root-mean-square along `dim`."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()

#----------------------------------------------------------------------------

@misc.profiled_function
def modulated_conv2d(
    x,                  # Input activations: [batch_size, in_channels, in_height, in_width].
    w,                  # Shared weights: [out_channels, in_channels, kernel_height, kernel_width].
    s,                  # Styles: [batch_size, in_channels].
    demodulate  = True, # Scale every output channel of every sample to unit expected magnitude?
    padding     = 0,    # Padding of the convolution, in pixels.
    input_gain  = None, # Optional extra input scale, broadcastable to [batch_size, in_channels].
):
    """Convolution whose weights are scaled per sample by `s` (and optionally demodulated).

    Mathematically, sample n is convolved with w[o,i] * s[n,i] * input_gain * d[n,o], where d
    normalises every output channel; the scales along the input channels are applied to the
    activations and d to the output, so that the whole batch shares one ordinary convolution.
    """
    batch_size = int(x.shape[0])
    out_channels, in_channels, kh, kw = w.shape
    misc.assert_shape(w, [out_channels, in_channels, kh, kw])
    misc.assert_shape(x, [batch_size, in_channels, None, None])
    misc.assert_shape(s, [batch_size, in_channels])

    # Everything the demodulation needs is the energy of every (out, in) kernel slice. Normalising
    # w and s up front (as if w were divided by its RMS per output channel) cancels out in exact
    # arithmetic; it matters for the range of reduced-precision activations.
    weight_scale = None
    out_scale = None
    if demodulate:
        w_energy = w.square().sum(dim=[2, 3])                               # [O, I]
        weight_scale = (w_energy.sum(dim=1) / (in_channels * kh * kw)).rsqrt()  # [O]: 1 / RMS of w[o].
        s = s * s.square().mean().rsqrt()
        dcoefs = ((s.square() @ w_energy.t()) * weight_scale.square() + 1e-8).rsqrt()  # [N, O]
        out_scale = dcoefs * weight_scale
    in_scale = s if input_gain is None else s * input_gain

    if kh == 1 and kw == 1 and padding == 0:
        # A 1x1 convolution is a matrix product: modulating the (small) weights per sample is
        # cheaper than two passes over the activations.
        sample_weight = w.reshape(1, out_channels, in_channels) * in_scale.unsqueeze(1)
        if out_scale is not None:
            sample_weight = sample_weight * out_scale.unsqueeze(2)
        sample_weight = sample_weight.to(x.dtype)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # Channels-last in, channels-last out: the product of [pixels, in] and [in, out] matrices.
            y = torch.matmul(x.permute(0, 2, 3, 1).reshape(batch_size, -1, in_channels), sample_weight.transpose(1, 2))
            return y.reshape(batch_size, *x.shape[2:], out_channels).permute(0, 3, 1, 2)
        y = torch.matmul(sample_weight, x.reshape(batch_size, in_channels, -1))
        return y.reshape(batch_size, out_channels, *x.shape[2:])

    weight = w
    if out_scale is not None and x.dtype != torch.float32:
        # Reduced precision: convolve with the normalised weights to keep the output in range.
        weight = w * weight_scale.reshape(-1, 1, 1, 1)
        out_scale = dcoefs
    x = x * in_scale.to(x.dtype).reshape(batch_size, in_channels, 1, 1)
    x = conv2d_gradfix.conv2d(input=x, weight=weight.to(x.dtype), padding=padding)
    if out_scale is not None:
        out_scale = out_scale.to(x.dtype).reshape(batch_size, out_channels, 1, 1)
        # In place when autograd does not need the convolution output (inference).
        x = x * out_scale if (x.requires_grad or out_scale.requires_grad) else x.mul_(out_scale)
    return x

#----------------------------------------------------------------------------

@misc.profiled_function
def design_lowpass_filter(
    numtaps,            # Number of taps per axis; 1 means no filter.
    cutoff,             # Cutoff frequency, in the units of `fs`.
    width,              # Width of the transition band (twice the half-width), in the units of `fs`.
    fs,                 # Sampling rate.
    radial  = False,    # Rotation-invariant 2-D filter instead of a separable 1-D one?
):
    """Kaiser-windowed lowpass filter: 1-D (separable) or radial 2-D (jinc); None for numtaps=1."""
    assert numtaps >= 1
    if numtaps == 1:
        return None
    if not radial:
        taps = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        return torch.as_tensor(taps, dtype=torch.float32)

    # Ideal circular lowpass: the inverse Fourier transform of a disc is a jinc function,
    # proportional to J1(2*pi*cutoff*r) / r; its value at r=0 is the limit pi*cutoff.
    coords = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(coords, coords))
    safe_r = np.where(r == 0, 1, r)
    taps = np.where(r == 0, np.pi * cutoff, scipy.special.j1(2 * np.pi * cutoff * safe_r) / safe_r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    taps = taps * np.outer(window, window)
    taps = taps / np.sum(taps)
    return torch.as_tensor(taps, dtype=torch.float32)

#----------------------------------------------------------------------------

@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    def __init__(self,
        in_features,                # Number of input features.
        out_features,               # Number of output features.
        activation      = 'linear', # Activation function: 'relu', 'lrelu', etc.
        bias            = True,     # Apply additive bias before the activation function?
        lr_multiplier   = 1,        # Learning rate multiplier.
        weight_init     = 1,        # Initial standard deviation of the weight tensor.
        bias_init       = 0,        # Initial value of the additive bias (scalar or [out_features]).
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        # Equalised learning rate: parameters are stored divided by their runtime gain.
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        bias_init = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
        self.bias = torch.nn.Parameter(torch.from_numpy(bias_init / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
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

#----------------------------------------------------------------------------

@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Input latent (Z) dimensionality.
        c_dim,                      # Conditioning label (C) dimensionality, 0 = no labels.
        w_dim,                      # Intermediate latent (W) dimensionality.
        num_ws,                     # Number of intermediate latents to output.
        num_layers      = 2,        # Number of mapping layers.
        lr_multiplier   = 0.01,     # Learning rate multiplier for the mapping layers.
        w_avg_beta      = 0.998,    # Decay for tracking the moving average of W during training.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        # The label embedding, when present, is as wide as W and concatenated to z.
        self.embed = FullyConnectedLayer(self.c_dim, self.w_dim) if self.c_dim > 0 else None
        features = [self.z_dim + (self.w_dim if self.c_dim > 0 else 0)] + [self.w_dim] * self.num_layers
        for idx, in_features, out_features in zip(range(num_layers), features[:-1], features[1:]):
            layer = FullyConnectedLayer(in_features, out_features, activation='lrelu', lr_multiplier=lr_multiplier)
            setattr(self, f'fc{idx}', layer)
        self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        misc.assert_shape(z, [None, self.z_dim])
        if truncation_cutoff is None:
            truncation_cutoff = self.num_ws

        x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            misc.assert_shape(c, [x.shape[0], self.c_dim])
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        # Broadcast to every layer, then pull the first `truncation_cutoff` towards the average.
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self):
        return f'z_dim={self.z_dim:d}, c_dim={self.c_dim:d}, w_dim={self.w_dim:d}, num_ws={self.num_ws:d}'

#----------------------------------------------------------------------------

@persistence.persistent_class
class SynthesisInput(torch.nn.Module):
    def __init__(self,
        w_dim,          # Intermediate latent (W) dimensionality.
        channels,       # Number of output channels.
        size,           # Output spatial size: int or [width, height].
        sampling_rate,  # Output sampling rate.
        bandwidth,      # Output bandwidth (largest frequency of the Fourier features).
    ):
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = np.broadcast_to(np.asarray(size), [2])
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth

        # Frequencies uniformly distributed inside the disc of radius `bandwidth`: normalise
        # Gaussian samples to the unit circle, then give them a radius with density ~ r.
        freqs = torch.randn([self.channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        phases = torch.rand([self.channels]) - 0.5

        self.weight = torch.nn.Parameter(torch.randn([self.channels, self.channels]))
        # Per-sample rotation (cos, sin) and translation (x, y), starting at the identity.
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer('transform', torch.eye(3, 3))  # User transform of the output image.
        self.register_buffer('freqs', freqs)
        self.register_buffer('phases', phases)

    def forward(self, w):
        misc.assert_shape(w, [None, self.w_dim])
        batch_size = w.shape[0]

        # Rotation and translation predicted from w, normalised so that the rotation is orthonormal.
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rotation = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch_size, 1, 1])
        rotation[:, 0, 0] = t[:, 0]
        rotation[:, 0, 1] = -t[:, 1]
        rotation[:, 1, 0] = t[:, 1]
        rotation[:, 1, 1] = t[:, 0]
        translation = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch_size, 1, 1])
        translation[:, 0, 2] = -t[:, 2]
        translation[:, 1, 2] = -t[:, 3]
        transforms = rotation @ translation @ self.transform.unsqueeze(0)  # [batch, 3, 3]

        # Moving the sampling grid by an affine map = transforming the frequencies and phases.
        freqs = self.freqs.unsqueeze(0) @ transforms[:, :2, :2]  # [batch, channel, 2]
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ transforms[:, :2, 2:]).squeeze(2)

        # Fade out frequencies that the sampling rate cannot represent (they only appear when the
        # user transform scales the image).
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        # Pixel centres, in units where the sampling rate is `sampling_rate` and the origin is the
        # centre of the image.
        width, height = int(self.size[0]), int(self.size[1])
        grid_x = (torch.arange(width, device=w.device, dtype=torch.float32) + (0.5 - width / 2)) / self.sampling_rate
        grid_y = (torch.arange(height, device=w.device, dtype=torch.float32) + (0.5 - height / 2)) / self.sampling_rate

        fx = freqs[:, :, 0, None, None]
        fy = freqs[:, :, 1, None, None]
        x = fx * grid_x.reshape(1, 1, 1, width) + fy * grid_y.reshape(1, 1, height, 1) + phases[:, :, None, None]
        x = torch.sin(x * (2 * np.pi)) * amplitudes[:, :, None, None]  # [batch, channel, height, width]

        # Trainable 1x1 mixing of the features.
        weight = self.weight / np.sqrt(self.channels)
        x = torch.matmul(weight, x.reshape(batch_size, self.channels, height * width))
        x = x.reshape(batch_size, self.channels, height, width)
        misc.assert_shape(x, [batch_size, self.channels, int(self.size[1]), int(self.size[0])])
        return x

    def extra_repr(self):
        return '\n'.join([
            f'w_dim={self.w_dim:d}, channels={self.channels:d}, size={list(self.size)},',
            f'sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}'])

#----------------------------------------------------------------------------

@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    def __init__(self,
        w_dim,                          # Intermediate latent (W) dimensionality.
        is_torgb,                       # Is this the final ToRGB layer?
        is_critically_sampled,          # Does this layer use critical sampling?
        use_fp16,                       # Does this layer use FP16 (on CUDA)?

        # Input & output specifications.
        in_channels,                    # Number of input channels.
        out_channels,                   # Number of output channels.
        in_size,                        # Input spatial size: int or [width, height].
        out_size,                       # Output spatial size: int or [width, height].
        in_sampling_rate,               # Input sampling rate.
        out_sampling_rate,              # Output sampling rate.
        in_cutoff,                      # Input cutoff frequency.
        out_cutoff,                     # Output cutoff frequency.
        in_half_width,                  # Input transition band half-width.
        out_half_width,                 # Output transition band half-width.

        # Hyperparameters.
        conv_kernel         = 3,        # Convolution kernel size (ignored for ToRGB, which uses 1).
        filter_size         = 6,        # Low-pass filter size relative to the lower resolution.
        lrelu_upsampling    = 2,        # Relative sampling rate for the leaky ReLU.
        use_radial_filters  = False,    # Radially symmetric downsampling filter (config R)?
        conv_clamp          = 256,      # Clamp the output to [-X, +X], None = disable clamping.
        magnitude_ema_beta  = 0.999,    # Decay rate for the moving average of input magnitudes.
    ):
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_size = np.broadcast_to(np.asarray(in_size), [2])
        self.out_size = np.broadcast_to(np.asarray(out_size), [2])
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        # The leaky ReLU runs at a higher rate so that its new high frequencies can be removed.
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff = in_cutoff
        self.out_cutoff = out_cutoff
        self.in_half_width = in_half_width
        self.out_half_width = out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        # Trainable parameters and the running input magnitude.
        self.affine = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([self.out_channels, self.in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([self.out_channels]))
        self.register_buffer('magnitude_ema', torch.ones([]))

        # Upsampling filter: lowpass at the input cutoff, designed at the temporary rate.
        self.up_factor = int(np.rint(self.tmp_sampling_rate / self.in_sampling_rate))
        assert self.in_sampling_rate * self.up_factor == self.tmp_sampling_rate
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not self.is_torgb else 1
        self.register_buffer('up_filter', design_lowpass_filter(
            numtaps=self.up_taps, cutoff=self.in_cutoff, width=self.in_half_width * 2, fs=self.tmp_sampling_rate))

        # Downsampling filter: lowpass at the output cutoff; radial for config R except in the
        # critically sampled layers.
        self.down_factor = int(np.rint(self.tmp_sampling_rate / self.out_sampling_rate))
        assert self.out_sampling_rate * self.down_factor == self.tmp_sampling_rate
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not self.is_torgb else 1
        self.down_radial = use_radial_filters and not self.is_critically_sampled
        self.register_buffer('down_filter', design_lowpass_filter(
            numtaps=self.down_taps, cutoff=self.out_cutoff, width=self.out_half_width * 2, fs=self.tmp_sampling_rate,
            radial=self.down_radial))

        # Padding that maps the convolution output (in_size + conv_kernel - 1) exactly to out_size
        # through upsampling, both filters and downsampling.
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]

    def forward(self, x, w, noise_mode='random', force_fp32=False, update_emas=False):
        assert noise_mode in ['random', 'const', 'none']  # StyleGAN3 has no noise inputs.
        misc.assert_shape(x, [None, self.in_channels, int(self.in_size[1]), int(self.in_size[0])])
        misc.assert_shape(w, [x.shape[0], self.w_dim])

        if update_emas:
            with torch.autograd.profiler.record_function('update_magnitude_ema'):
                magnitude_cur = x.detach().to(torch.float32).square().mean()
                self.magnitude_ema.copy_(magnitude_cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()

        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * (self.conv_kernel ** 2)))

        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and x.device.type == 'cuda') else torch.float32
        x = modulated_conv2d(x=x.to(dtype), w=self.weight, s=styles, padding=self.conv_kernel - 1,
            demodulate=(not self.is_torgb), input_gain=input_gain)

        # ToRGB is linear: no upsampling, no nonlinearity, unit gain.
        gain = 1 if self.is_torgb else np.sqrt(2)
        slope = 1 if self.is_torgb else 0.2
        x = filtered_lrelu.filtered_lrelu(x=x, fu=self.up_filter, fd=self.down_filter, b=self.bias.to(x.dtype),
            up=self.up_factor, down=self.down_factor, padding=self.padding, gain=gain, slope=slope, clamp=self.conv_clamp)

        misc.assert_shape(x, [None, self.out_channels, int(self.out_size[1]), int(self.out_size[0])])
        assert x.dtype == dtype
        return x

    def extra_repr(self):
        return '\n'.join([
            f'w_dim={self.w_dim:d}, is_torgb={self.is_torgb},',
            f'is_critically_sampled={self.is_critically_sampled}, use_fp16={self.use_fp16},',
            f'in_sampling_rate={self.in_sampling_rate:g}, out_sampling_rate={self.out_sampling_rate:g},',
            f'in_cutoff={self.in_cutoff:g}, out_cutoff={self.out_cutoff:g},',
            f'in_half_width={self.in_half_width:g}, out_half_width={self.out_half_width:g},',
            f'in_size={list(self.in_size)}, out_size={list(self.out_size)},',
            f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}'])

#----------------------------------------------------------------------------

@misc.profiled_function
def synthesis_schedule(
    img_resolution,     # Output resolution.
    img_channels,       # Number of output channels.
    channel_base,       # Overall multiplier for the number of channels.
    channel_max,        # Maximum number of channels in any layer.
    num_layers,         # Number of synthesis layers, excluding ToRGB.
    num_critical,       # Number of critically sampled layers at the end.
    first_cutoff,       # Cutoff frequency of the first layer (f_{c,0}).
    first_stopband,     # Minimum stopband of the first layer (f_{t,0}).
    last_stopband_rel,  # Minimum stopband of the last layer, relative to its cutoff.
    margin_size,        # Number of additional pixels outside the image.
):
    """Per-layer cutoffs, stopbands, sampling rates, transition half-widths, sizes and channel counts.

    Cutoff and stopband grow geometrically from the first layer up to the last non-critical one
    and then stay at the output's Nyquist values (paper, Appendix F); sampling rates are the
    smallest powers of two not below twice the stopband (at most the output resolution).
    Entry i describes the output of layer i; entry 0 also describes the input layer.
    """
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution  # The last layer and ToRGB work on the image without margin.
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return dict(cutoffs=cutoffs, stopbands=stopbands, sampling_rates=sampling_rates,
        half_widths=half_widths, sizes=sizes, channels=channels)

#----------------------------------------------------------------------------

@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    def __init__(self,
        w_dim,                          # Intermediate latent (W) dimensionality.
        img_resolution,                 # Output image resolution.
        img_channels,                   # Number of color channels.
        channel_base        = 32768,    # Overall multiplier for the number of channels.
        channel_max         = 512,      # Maximum number of channels in any layer.
        num_layers          = 14,       # Total number of layers, excluding Fourier features and ToRGB.
        num_critical        = 2,        # Number of critically sampled layers at the end.
        first_cutoff        = 2,        # Cutoff frequency of the first layer (f_{c,0}).
        first_stopband      = 2**2.1,   # Minimum stopband of the first layer (f_{t,0}).
        last_stopband_rel   = 2**0.3,   # Minimum stopband of the last layer, expressed relative to the cutoff.
        margin_size         = 10,       # Number of additional pixels outside the image.
        output_scale        = 0.25,     # Scale factor for the output image.
        num_fp16_res        = 4,        # Use FP16 for the N highest resolutions.
        **layer_kwargs,                 # Arguments for SynthesisLayer.
    ):
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res

        schedule = synthesis_schedule(img_resolution=img_resolution, img_channels=img_channels,
            channel_base=channel_base, channel_max=channel_max, num_layers=num_layers, num_critical=num_critical,
            first_cutoff=first_cutoff, first_stopband=first_stopband, last_stopband_rel=last_stopband_rel,
            margin_size=margin_size)
        cutoffs = schedule['cutoffs']
        sampling_rates = schedule['sampling_rates']
        half_widths = schedule['half_widths']
        sizes = schedule['sizes']
        channels = schedule['channels']

        self.input = SynthesisInput(
            w_dim=self.w_dim, channels=int(channels[0]), size=int(sizes[0]),
            sampling_rate=sampling_rates[0], bandwidth=cutoffs[0])
        self.layer_names = []
        for idx in range(self.num_layers + 1):
            prev = max(idx - 1, 0)
            is_torgb = (idx == self.num_layers)
            is_critically_sampled = (idx >= self.num_layers - self.num_critical)
            use_fp16 = (sampling_rates[idx] * (2 ** self.num_fp16_res) > self.img_resolution)
            layer = SynthesisLayer(
                w_dim=self.w_dim, is_torgb=is_torgb, is_critically_sampled=is_critically_sampled, use_fp16=use_fp16,
                in_channels=int(channels[prev]), out_channels=int(channels[idx]),
                in_size=int(sizes[prev]), out_size=int(sizes[idx]),
                in_sampling_rate=int(sampling_rates[prev]), out_sampling_rate=int(sampling_rates[idx]),
                in_cutoff=cutoffs[prev], out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev], out_half_width=half_widths[idx],
                **layer_kwargs)
            name = f'L{idx}_{layer.out_size[0]}_{layer.out_channels}'
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws, **layer_kwargs):
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32).unbind(dim=1)

        x = self.input(ws[0])
        if x.device.type == 'cpu':
            # On the CPU the layers run channels-last: the convolutions are faster so, and the
            # filtered_lrelu kernel is vectorised over channels. The image comes back contiguous.
            x = x.contiguous(memory_format=torch.channels_last)
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, **layer_kwargs)
        if self.output_scale != 1:
            x = x * self.output_scale

        misc.assert_shape(x, [None, self.img_channels, self.img_resolution, self.img_resolution])
        return x.to(torch.float32).contiguous()

    def extra_repr(self):
        return '\n'.join([
            f'w_dim={self.w_dim:d}, num_ws={self.num_ws:d},',
            f'img_resolution={self.img_resolution:d}, img_channels={self.img_channels:d},',
            f'num_layers={self.num_layers:d}, num_critical={self.num_critical:d},',
            f'margin_size={self.margin_size:d}, num_fp16_res={self.num_fp16_res:d}'])

#----------------------------------------------------------------------------

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
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        img = self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
        return img

#----------------------------------------------------------------------------
