"""Generator architecture of "Alias-Free Generative Adversarial Networks" (StyleGAN3, arXiv 2106.12423).

Configurations T (translation equivariant) and R (rotation equivariant: `conv_kernel=1`,
`use_radial_filters=True`). State-dict names and shapes match the official release, so weights
load one to one; this module imports only the documented `torch_utils` surface so that it can be
embedded in network pickles.

Layout: stateless helpers first (modulation, filter design, the per-layer frequency schedule), then
the modules from the smallest (a dense layer) to the whole generator.
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
# Stateless helpers.

@misc.profiled_function
def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """Scales `x` to unit root-mean-square along `dim`."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


@misc.profiled_function
def modulated_conv2d(x, w, s, demodulate=True, padding=0, input_gain=None):
    """Convolution whose weights are scaled per sample by the styles `s` (and optionally demodulated).

    x: [N, I, H, W] activations; w: [O, I, kh, kw] shared weights; s: [N, I] styles; padding in pixels;
    input_gain: optional extra input scale, broadcastable to [N, I].

    Sample n is convolved with w[o,i] * s[n,i] * input_gain * d[n,o], where d gives every output
    channel unit expected magnitude. The input-channel scales are applied to the activations and d to
    the output, so the whole batch shares one ordinary convolution instead of a grouped one.
    """
    out_channels, in_channels, kh, kw = w.shape
    batch_size = int(x.shape[0])
    misc.assert_shape(x, [batch_size, in_channels, None, None])
    misc.assert_shape(w, [out_channels, in_channels, kh, kw])
    misc.assert_shape(s, [batch_size, in_channels])

    # Demodulation depends on w only through the energy of each (out, in) kernel slice. Dividing w
    # by its RMS per output channel and s by its overall RMS cancels out exactly; it only keeps
    # reduced-precision activations in range.
    weight_scale = None
    out_scale = None
    if demodulate:
        slice_energy = w.square().sum(dim=[2, 3])                                   # [O, I]
        weight_scale = (slice_energy.sum(dim=1) / (in_channels * kh * kw)).rsqrt()  # [O]
        s = s * s.square().mean().rsqrt()
        dcoefs = ((s.square() @ slice_energy.t()) * weight_scale.square() + 1e-8).rsqrt()  # [N, O]
        out_scale = dcoefs * weight_scale
    in_scale = s if input_gain is None else s * input_gain

    if kh == 1 and kw == 1 and padding == 0:
        return _modulated_matmul(x, w, in_scale, out_scale)

    kernel = w
    if out_scale is not None and x.dtype != torch.float32:
        # Reduced precision: convolve with the RMS-normalised kernel so that the output stays in range.
        kernel = w * weight_scale.reshape(-1, 1, 1, 1)
        out_scale = dcoefs
    x = x * in_scale.to(x.dtype).reshape(batch_size, in_channels, 1, 1)
    x = conv2d_gradfix.conv2d(input=x, weight=kernel.to(x.dtype), padding=padding)
    if out_scale is None:
        return x
    out_scale = out_scale.to(x.dtype).reshape(batch_size, out_channels, 1, 1)
    if x.requires_grad or out_scale.requires_grad:
        return x * out_scale
    return x.mul_(out_scale)  # Inference: nobody needs the unscaled output.


def _modulated_matmul(x, w, in_scale, out_scale):
    """The 1x1, unpadded case of modulated_conv2d as a batched matrix product.

    The (small) weights are modulated per sample, which is cheaper than two passes over the activations.
    """
    batch_size, in_channels = x.shape[:2]
    out_channels = w.shape[0]
    per_sample = w.reshape(1, out_channels, in_channels) * in_scale.unsqueeze(1)
    if out_scale is not None:
        per_sample = per_sample * out_scale.unsqueeze(2)
    per_sample = per_sample.to(x.dtype)
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        # Keep the channels-last layout: [pixels, I] @ [I, O] per sample.
        pixels = x.permute(0, 2, 3, 1).reshape(batch_size, -1, in_channels)
        y = torch.matmul(pixels, per_sample.transpose(1, 2))
        return y.reshape(batch_size, *x.shape[2:], out_channels).permute(0, 3, 1, 2)
    y = torch.matmul(per_sample, x.reshape(batch_size, in_channels, -1))
    return y.reshape(batch_size, out_channels, *x.shape[2:])


@misc.profiled_function
def design_lowpass_filter(numtaps, cutoff, width, fs, radial=False):
    """Kaiser-windowed lowpass filter as a float32 tensor, or None when numtaps is 1 (no filtering).

    `cutoff` and the transition band `width` are in the units of the sampling rate `fs`. The filter is
    1-D (applied separably), or, with `radial`, a rotation-invariant 2-D [numtaps, numtaps] one.
    """
    assert numtaps >= 1
    if numtaps == 1:
        return None
    if radial:
        taps = _radial_lowpass_taps(numtaps, cutoff, width, fs)
    else:
        taps = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
    return torch.as_tensor(taps, dtype=torch.float32)


def _radial_lowpass_taps(numtaps, cutoff, width, fs):
    """Windowed jinc: the disc-shaped ideal lowpass, with the 1-D Kaiser window applied on both axes."""
    # The inverse Fourier transform of a disc of radius `cutoff` is J1(2*pi*cutoff*r) / r (up to
    # scale), whose limit at r = 0 is pi*cutoff.
    offsets = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    radius = np.hypot(*np.meshgrid(offsets, offsets))
    at_centre = radius == 0
    nonzero_radius = np.where(at_centre, 1, radius)
    jinc = np.where(at_centre, np.pi * cutoff, scipy.special.j1(2 * np.pi * cutoff * nonzero_radius) / nonzero_radius)
    kaiser = np.kaiser(numtaps, scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2))))
    windowed = jinc * np.outer(kaiser, kaiser)
    return windowed / np.sum(windowed)


def _geometric_steps(first, last, progress):
    """Values from `first` (progress 0) to `last` (progress 1), evenly spaced on a log scale."""
    return first * (last / first) ** progress


@misc.profiled_function
def synthesis_schedule(img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical,
        first_cutoff, first_stopband, last_stopband_rel, margin_size):
    """Per-layer cutoffs, stopbands, sampling rates, transition half-widths, sizes and channel counts.

    The arguments mean what they mean for SynthesisNetwork. Entry i describes the output of layer i;
    entry 0 also describes the input layer. Cutoff and stopband grow geometrically up to the last
    layer that is not critically sampled and then stay at the output's Nyquist values (paper,
    Appendix F); a sampling rate is the smallest power of two not below twice the stopband, capped
    at the output resolution.
    """
    progress = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    nyquist = img_resolution / 2
    cutoffs = _geometric_steps(first_cutoff, nyquist, progress)
    stopbands = _geometric_steps(first_stopband, nyquist * last_stopband_rel, progress)

    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution  # The last layer and ToRGB work on the image itself, without margin.
    # Fewer channels where the cutoff, and so the amount of detail, is high.
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return dict(cutoffs=cutoffs, stopbands=stopbands, sampling_rates=sampling_rates,
        half_widths=half_widths, sizes=sizes, channels=channels)


def _width_height(size):
    """An int or [width, height] as a [width, height] array."""
    return np.broadcast_to(np.asarray(size), [2])


def _describe(module, *names):
    """extra_repr text: the named attributes of `module` as name=value (arrays as lists, floats short)."""
    def shown(value):
        if isinstance(value, np.ndarray):
            return str(value.tolist())
        if isinstance(value, (float, np.floating)):
            return f'{value:g}'
        return str(value)
    return ', '.join(f'{name}={shown(getattr(module, name))}' for name in names)

#----------------------------------------------------------------------------
# Modules.

@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with an equalised learning rate and an optional fused bias and activation."""

    def __init__(self,
        in_features,                    # Width of the input.
        out_features,                   # Width of the output.
        activation          = 'linear', # Nonlinearity after the bias, by its bias_act name.
        bias                = True,     # Learn an additive bias?
        lr_multiplier       = 1,        # Scales the effective learning rate of both parameters.
        weight_init         = 1,        # Standard deviation of the initial weights.
        bias_init           = 0,        # Initial bias: one value, or one per output feature.
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        # Parameters are stored divided by the gain applied at run time; that is the equalised learning rate.
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        if bias:
            initial_bias = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features]) / lr_multiplier
            self.bias = torch.nn.Parameter(torch.from_numpy(initial_bias))
        else:
            self.bias = None
        self.weight_gain, self.bias_gain = lr_multiplier / np.sqrt(in_features), lr_multiplier

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

#----------------------------------------------------------------------------

@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    """Maps a latent z (and a label c) to the intermediate latent w, repeated for every synthesis layer."""

    def __init__(self,
        z_dim,                          # Width of the latent z.
        c_dim,                          # Width of the label c; 0 for an unconditional network.
        w_dim,                          # Width of w.
        num_ws,                         # How many copies of w the output holds.
        num_layers          = 2,        # Depth of the MLP.
        lr_multiplier       = 0.01,     # Learning-rate scale of every layer here.
        w_avg_beta          = 0.998,    # Decay of the running average of w (the truncation centre).
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta

        # A label is embedded as wide as w and concatenated to z.
        conditional = self.c_dim > 0
        self.embed = FullyConnectedLayer(self.c_dim, self.w_dim) if conditional else None
        widths = [self.z_dim + (self.w_dim if conditional else 0)] + [self.w_dim] * self.num_layers
        for idx in range(num_layers):
            fc = FullyConnectedLayer(widths[idx], widths[idx + 1], activation='lrelu', lr_multiplier=lr_multiplier)
            setattr(self, f'fc{idx}', fc)
        self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        """ws [batch_size, num_ws, w_dim]; the first `truncation_cutoff` are pulled towards w_avg."""
        misc.assert_shape(z, [None, self.z_dim])
        x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            misc.assert_shape(c, [x.shape[0], self.c_dim])
            x = torch.cat([x, normalize_2nd_moment(self.embed(c.to(torch.float32)))], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        if update_emas:
            batch_mean = x.detach().mean(dim=0)
            self.w_avg.copy_(batch_mean.lerp(self.w_avg, self.w_avg_beta))

        ws = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            num_truncated = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :num_truncated] = self.w_avg.lerp(ws[:, :num_truncated], truncation_psi)
        return ws

    def extra_repr(self):
        return _describe(self, 'z_dim', 'c_dim', 'w_dim', 'num_ws')

#----------------------------------------------------------------------------

def _random_fourier_basis(count, bandwidth):
    """`count` frequencies uniformly distributed over the disc of radius `bandwidth`, and phases in [-1/2, 1/2)."""
    # Dividing a 2-D Gaussian sample by its length r leaves a uniform direction; dividing once more by
    # exp(r^2 / 4) makes the length exp(-r^2 / 4), whose density on [0, 1] is 2 * length: uniform over the disc.
    freqs = torch.randn([count, 2])
    length = freqs.square().sum(dim=1, keepdim=True).sqrt()
    freqs /= length * length.square().exp().pow(0.25)
    freqs *= bandwidth
    return freqs, torch.rand([count]) - 0.5


@persistence.persistent_class
class SynthesisInput(torch.nn.Module):
    """Fourier features: sinusoids whose frequencies are rotated and shifted per sample (and by `transform`)."""

    def __init__(self,
        w_dim,                          # Width of w, which sets the rotation and translation.
        channels,                       # How many sinusoids (output channels).
        size,                           # Output size in pixels: one int or [width, height].
        sampling_rate,                  # Pixels per unit length of the output grid.
        bandwidth,                      # Radius of the disc the frequencies are drawn from.
    ):
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, _width_height(size)
        self.sampling_rate, self.bandwidth = sampling_rate, bandwidth

        freqs, phases = _random_fourier_basis(self.channels, bandwidth)
        self.weight = torch.nn.Parameter(torch.randn([self.channels, self.channels]))
        # Predicts (cos, sin, x, y) of the per-sample transform; it starts at the identity.
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        # `transform` is the user's (inverse) transform of the output image, identity by default.
        for name, value in [('transform', torch.eye(3, 3)), ('freqs', freqs), ('phases', phases)]:
            self.register_buffer(name, value)

    def _sample_transforms(self, w):
        """[batch, 3, 3] map from output coordinates to where the sinusoids are evaluated: R(w) @ T(w) @ transform."""
        params = self.affine(w)
        params = params / params[:, :2].norm(dim=1, keepdim=True)  # An orthonormal rotation.
        cos, sin, shift_x, shift_y = params.unbind(dim=1)
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        rotation = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=1).reshape(-1, 3, 3)
        translation = torch.stack([one, zero, -shift_x, zero, one, -shift_y, zero, zero, one], dim=1).reshape(-1, 3, 3)
        return rotation @ translation @ self.transform.unsqueeze(0)

    def _pixel_centres(self, count, device):
        """Coordinates of `count` pixel centres around the image centre, in units of 1 / sampling_rate."""
        return (torch.arange(count, device=device, dtype=torch.float32) + (0.5 - count / 2)) / self.sampling_rate

    def forward(self, w):
        """[batch_size, channels, height, width] features for the given w."""
        misc.assert_shape(w, [None, self.w_dim])
        batch_size = w.shape[0]

        # Moving the sampling grid by an affine map is the same as moving the frequencies and phases.
        transforms = self._sample_transforms(w)
        freqs = self.freqs.unsqueeze(0) @ transforms[:, :2, :2]  # [batch, channel, 2]
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ transforms[:, :2, 2:]).squeeze(2)
        # A user transform that scales up can push frequencies past what the grid can represent: fade them.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        width, height = int(self.size[0]), int(self.size[1])
        along_x = freqs[:, :, 0, None, None] * self._pixel_centres(width, w.device).reshape(1, 1, 1, width)
        along_y = freqs[:, :, 1, None, None] * self._pixel_centres(height, w.device).reshape(1, 1, height, 1)
        waves = torch.sin((along_x + along_y + phases[:, :, None, None]) * (2 * np.pi))
        waves = waves * amplitudes[:, :, None, None]  # [batch, channel, height, width]

        # Learned 1x1 mixing of the sinusoids.
        mixing = self.weight / np.sqrt(self.channels)
        out = torch.matmul(mixing, waves.reshape(batch_size, self.channels, height * width))
        out = out.reshape(batch_size, self.channels, height, width)
        misc.assert_shape(out, [batch_size, self.channels, int(self.size[1]), int(self.size[0])])
        return out

    def extra_repr(self):
        return _describe(self, 'w_dim', 'channels', 'size', 'sampling_rate', 'bandwidth')

#----------------------------------------------------------------------------

def _integer_ratio(high_rate, low_rate):
    """high_rate / low_rate, which must be a whole number."""
    ratio = int(np.rint(high_rate / low_rate))
    assert low_rate * ratio == high_rate
    return ratio


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    """Modulated convolution, then bias, upsampling, leaky ReLU, lowpass and downsampling in one op.

    The ToRGB layer is the linear special case: a 1x1 convolution without resampling.
    """

    def __init__(self,
        w_dim,                          # Width of w, which sets the styles.
        is_torgb,                       # The final, linear ToRGB layer?
        is_critically_sampled,          # Cutoff at Nyquist (the last layers)? Never radial then.
        use_fp16,                       # Run in float16 (on CUDA only)?

        # Signal at both ends.
        in_channels,                    # Channels of the input.
        out_channels,                   # Channels of the output.
        in_size,                        # Input size in pixels: one int or [width, height].
        out_size,                       # Output size in pixels: one int or [width, height].
        in_sampling_rate,               # Sampling rate of the input.
        out_sampling_rate,              # Sampling rate of the output.
        in_cutoff,                      # Highest frequency the input carries.
        out_cutoff,                     # Highest frequency the output may carry.
        in_half_width,                  # Half the transition band of the upsampling filter.
        out_half_width,                 # Half the transition band of the downsampling filter.

        # Settings.
        conv_kernel         = 3,        # Kernel size of the convolution (ToRGB always uses 1).
        filter_size         = 6,        # Filter length, in samples of the lower of the two rates.
        lrelu_upsampling    = 2,        # How much faster than its ends the nonlinearity runs.
        use_radial_filters  = False,    # Rotation-invariant downsampling filter (config R)?
        conv_clamp          = 256,      # Output clamped to [-conv_clamp, conv_clamp]; None = no clamp.
        magnitude_ema_beta  = 0.999,    # Decay of the running mean square of the input.
    ):
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb, self.is_critically_sampled, self.use_fp16 = is_torgb, is_critically_sampled, use_fp16
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = _width_height(in_size), _width_height(out_size)
        self.in_sampling_rate, self.out_sampling_rate = in_sampling_rate, out_sampling_rate
        # The nonlinearity creates frequencies above both Nyquist limits; running it at a higher rate
        # lets the downsampling filter remove them instead of letting them alias.
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff, self.out_cutoff = in_cutoff, out_cutoff
        self.in_half_width, self.out_half_width = in_half_width, out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp, self.magnitude_ema_beta = conv_clamp, magnitude_ema_beta

        self.affine = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1)
        kernel_shape = [self.out_channels, self.in_channels, self.conv_kernel, self.conv_kernel]
        self.weight = torch.nn.Parameter(torch.randn(kernel_shape))
        self.bias = torch.nn.Parameter(torch.zeros([self.out_channels]))
        self.register_buffer('magnitude_ema', torch.ones([]))

        # Both filters run at the temporary rate; a side whose rate does not change needs none, nor
        # does ToRGB. The critically sampled layers keep separable filters even in config R.
        filtered = not self.is_torgb
        self.up_factor = _integer_ratio(self.tmp_sampling_rate, self.in_sampling_rate)
        self.up_taps = filter_size * self.up_factor if (filtered and self.up_factor > 1) else 1
        self.register_buffer('up_filter', design_lowpass_filter(numtaps=self.up_taps,
            cutoff=self.in_cutoff, width=self.in_half_width * 2, fs=self.tmp_sampling_rate))
        self.down_factor = _integer_ratio(self.tmp_sampling_rate, self.out_sampling_rate)
        self.down_taps = filter_size * self.down_factor if (filtered and self.down_factor > 1) else 1
        self.down_radial = use_radial_filters and not self.is_critically_sampled
        self.register_buffer('down_filter', design_lowpass_filter(numtaps=self.down_taps,
            cutoff=self.out_cutoff, width=self.out_half_width * 2, fs=self.tmp_sampling_rate, radial=self.down_radial))

        # Padding such that the convolution output (in_size + conv_kernel - 1 pixels) ends up exactly
        # out_size pixels after upsampling, both filters and downsampling. The extra up_factor in the
        # split centres the samples of both rates on the same points.
        conv_size = self.in_size + self.conv_kernel - 1
        pad_total = (self.out_size - 1) * self.down_factor + 1 - conv_size * self.up_factor + (self.up_taps + self.down_taps - 2)
        pad_before = (pad_total + self.up_factor) // 2
        pad_after = pad_total - pad_before
        self.padding = [int(pad_before[0]), int(pad_after[0]), int(pad_before[1]), int(pad_after[1])]

    def _update_magnitude_ema(self, x):
        """Tracks the mean square of the input; its inverse square root is the input gain."""
        with torch.autograd.profiler.record_function('update_magnitude_ema'):
            mean_square = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(mean_square.lerp(self.magnitude_ema, self.magnitude_ema_beta))

    def forward(self, x, w, noise_mode='random', force_fp32=False, update_emas=False):
        """One layer; noise_mode is accepted (and checked) for StyleGAN2 compatibility only."""
        assert noise_mode in ['random', 'const', 'none']
        misc.assert_shape(x, [None, self.in_channels, int(self.in_size[1]), int(self.in_size[0])])
        misc.assert_shape(w, [x.shape[0], self.w_dim])
        if update_emas:
            self._update_magnitude_ema(x)

        input_gain = self.magnitude_ema.rsqrt()
        styles = self.affine(w)
        if self.is_torgb:
            # ToRGB is not demodulated; this gain stands in for the fan-in normalisation.
            styles = styles * (1 / np.sqrt(self.in_channels * (self.conv_kernel ** 2)))
        half_precision = self.use_fp16 and not force_fp32 and x.device.type == 'cuda'
        dtype = torch.float16 if half_precision else torch.float32
        x = modulated_conv2d(x=x.to(dtype), w=self.weight, s=styles, padding=self.conv_kernel - 1,
            demodulate=(not self.is_torgb), input_gain=input_gain)

        # ToRGB stays linear: slope 1 and unit gain.
        if self.is_torgb:
            gain, slope = 1, 1
        else:
            gain, slope = np.sqrt(2), 0.2
        x = filtered_lrelu.filtered_lrelu(x=x, fu=self.up_filter, fd=self.down_filter, b=self.bias.to(x.dtype),
            up=self.up_factor, down=self.down_factor, padding=self.padding, gain=gain, slope=slope, clamp=self.conv_clamp)

        misc.assert_shape(x, [None, self.out_channels, int(self.out_size[1]), int(self.out_size[0])])
        assert x.dtype == dtype
        return x

    def extra_repr(self):
        rows = [('w_dim', 'is_torgb', 'is_critically_sampled', 'use_fp16'),
            ('in_channels', 'out_channels', 'in_size', 'out_size'),
            ('in_sampling_rate', 'out_sampling_rate', 'in_cutoff', 'out_cutoff', 'in_half_width', 'out_half_width')]
        return ',\n'.join(_describe(self, *row) for row in rows)

#----------------------------------------------------------------------------

@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    """Fourier-feature input, then num_layers synthesis layers and ToRGB, one w each."""

    def __init__(self,
        w_dim,                          # Width of w.
        img_resolution,                 # Height and width of the output image.
        img_channels,                   # Channels of the output image.
        channel_base        = 32768,    # Channels are channel_base / 2 divided by the layer's cutoff...
        channel_max         = 512,      # ...but at most this many.
        num_layers          = 14,       # Synthesis layers between the input and ToRGB.
        num_critical        = 2,        # How many of the last layers are critically sampled.
        first_cutoff        = 2,        # Cutoff of the input layer.
        first_stopband      = 2**2.1,   # Stopband of the input layer.
        last_stopband_rel   = 2**0.3,   # Stopband of the last layer over its cutoff.
        margin_size         = 10,       # Pixels computed beyond each image border (before the last layers).
        output_scale        = 0.25,     # Multiplies the output image.
        num_fp16_res        = 4,        # Layers whose rate is within this many octaves of the output run in float16.
        **layer_kwargs,                 # Passed to every SynthesisLayer.
    ):
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2  # The input, the synthesis layers and ToRGB.
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.num_layers, self.num_critical = num_layers, num_critical
        self.margin_size, self.output_scale, self.num_fp16_res = margin_size, output_scale, num_fp16_res

        schedule = synthesis_schedule(img_resolution=img_resolution, img_channels=img_channels,
            channel_base=channel_base, channel_max=channel_max, num_layers=num_layers, num_critical=num_critical,
            first_cutoff=first_cutoff, first_stopband=first_stopband, last_stopband_rel=last_stopband_rel,
            margin_size=margin_size)
        self.input = SynthesisInput(w_dim=self.w_dim, channels=int(schedule['channels'][0]),
            size=int(schedule['sizes'][0]), sampling_rate=schedule['sampling_rates'][0], bandwidth=schedule['cutoffs'][0])
        self.layer_names = []
        for idx in range(self.num_layers + 1):
            layer = self._build_layer(idx, schedule, layer_kwargs)
            name = f'L{idx}_{layer.out_size[0]}_{layer.out_channels}'
            setattr(self, name, layer)
            self.layer_names.append(name)

    def _build_layer(self, idx, schedule, layer_kwargs):
        """Layer idx: from schedule entry idx - 1 (the input layer's for idx 0) to entry idx."""
        ends = (max(idx - 1, 0), idx)
        signal = {}
        for quantity, key, cast in [('channels', 'channels', int), ('size', 'sizes', int),
                ('sampling_rate', 'sampling_rates', int), ('cutoff', 'cutoffs', None), ('half_width', 'half_widths', None)]:
            for side, entry in zip(['in', 'out'], ends):
                value = schedule[key][entry]
                signal[f'{side}_{quantity}'] = value if cast is None else cast(value)
        return SynthesisLayer(w_dim=self.w_dim, is_torgb=(idx == self.num_layers),
            is_critically_sampled=(idx >= self.num_layers - self.num_critical),
            use_fp16=(schedule['sampling_rates'][idx] * (2 ** self.num_fp16_res) > self.img_resolution),
            **signal, **layer_kwargs)

    def forward(self, ws, **layer_kwargs):
        """Image [batch_size, img_channels, img_resolution, img_resolution] from ws [batch_size, num_ws, w_dim]."""
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        input_w, *layer_ws = ws.to(torch.float32).unbind(dim=1)

        x = self.input(input_w)
        if x.device.type == 'cpu':
            # On the CPU the layers run channels-last: the convolutions are faster so, and the
            # filtered_lrelu kernel is vectorised over channels. The image comes back contiguous.
            x = x.contiguous(memory_format=torch.channels_last)
        for name, w in zip(self.layer_names, layer_ws):
            x = getattr(self, name)(x, w, **layer_kwargs)
        img = x * self.output_scale if self.output_scale != 1 else x

        misc.assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution])
        return img.to(torch.float32).contiguous()

    def extra_repr(self):
        rows = [('w_dim', 'num_ws', 'img_resolution', 'img_channels'),
            ('num_layers', 'num_critical', 'margin_size', 'num_fp16_res')]
        return ',\n'.join(_describe(self, *row) for row in rows)

#----------------------------------------------------------------------------

@persistence.persistent_class
class Generator(torch.nn.Module):
    """The mapping network followed by the synthesis network."""

    def __init__(self,
        z_dim,                          # Width of the latent z.
        c_dim,                          # Width of the label c; 0 for an unconditional network.
        w_dim,                          # Width of w.
        img_resolution,                 # Height and width of the image.
        img_channels,                   # Channels of the image.
        mapping_kwargs      = {},       # Passed to MappingNetwork.
        **synthesis_kwargs,             # Passed to SynthesisNetwork.
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        # The synthesis network decides how many ws the mapping network has to produce.
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        """Images for latents z and labels c; synthesis_kwargs go to every synthesis layer."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)

#----------------------------------------------------------------------------
