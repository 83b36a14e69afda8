"""Adaptive discriminator augmentation (ADA): the differentiable augmentation pipeline of
"Training Generative Adversarial Networks with Limited Data" (Karras et al. 2020, Appendix B).

Every image of a batch goes through the stages below; each operation is applied to each image
independently with probability `strength * p`, where `p` is the buffer the training loop adjusts.

  1. Geometric: pixel blitting (xflip, rotate90, xint) and general transforms (scale, rotate,
     aniso, xfrac), each group composed into one 3x3 matrix per image. The blitting is applied
     exactly by moving whole pixels, with reflection at the borders. The general transforms
     reflect-pad the image, upsample it 2x with the symlet-6 wavelet lowpass, resample it
     bilinearly and downsample 2x with the time-reversed filter; an orthogonal wavelet gives
     perfect reconstruction, so a whole-pixel transform passes through this path unchanged.
  2. Color: brightness, contrast, lumaflip, hue, saturation, composed into one 4x4 matrix acting on
     homogeneous RGB, with the luma axis v = (1, 1, 1) / sqrt(3).
  3. Image-space filtering: four octave bands [0, pi/8], [pi/8, pi/4], [pi/4, pi/2], [pi/2, pi]
     with lognormal gains, normalized to keep the expected power of natural images.
  4. Corruptions: additive Gaussian noise and cutout.

Everything is differentiable with respect to the images (to any order). Only the images that
an operation touches go through its expensive path, which costs a host synchronization per stage.
The module is embedded in network pickles, so it imports nothing but numpy, torch and the
documented torch_utils surface.
"""

import numpy as np
import torch
from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import grid_sample_gradfix
from torch_utils.ops import upfirdn2d

# ----------------------------------------------------------------------------
# Wavelet filters: published decomposition lowpass coefficients of the Daubechies symlets.

SYM2_LOWPASS = [
    -0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025,
]
SYM6_LOWPASS = [
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
]

# Expected power of natural images in the four filter bands (low to high); the band gains are
# normalized against it so that filtering does not change the overall signal power on average.
BAND_EXPECTED_POWER = [10 / 13, 1 / 13, 1 / 13, 1 / 13]

# Gaussian draws at a debug percentile of exactly 0 or 1 would be infinite; clip to +-3.09 sigma.
DEBUG_GAUSSIAN_PERCENTILE_CLIP = 1e-3

# Preset augmentation strengths (the `--aug` choices of the training script).
PRESETS = dict(
    blit=dict(xflip=1, rotate90=1, xint=1),
    geom=dict(scale=1, rotate=1, aniso=1, xfrac=1),
    color=dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    filter=dict(imgfilter=1),
    noise=dict(noise=1),
    cutout=dict(cutout=1),
)
PRESETS['bg'] = dict(**PRESETS['blit'], **PRESETS['geom'])
PRESETS['bgc'] = dict(**PRESETS['bg'], **PRESETS['color'])
PRESETS['bgcf'] = dict(**PRESETS['bgc'], **PRESETS['filter'])
PRESETS['bgcfn'] = dict(**PRESETS['bgcf'], **PRESETS['noise'])
PRESETS['bgcfnc'] = dict(**PRESETS['bgcfn'], **PRESETS['cutout'])

# ----------------------------------------------------------------------------
# Filter construction (numpy, evaluated once at import).


def halfband_lowpass(wavelet_lowpass):
    """Zero-phase halfband lowpass (DC gain 1): the autocorrelation of an orthogonal wavelet's
    lowpass filter, whose response |H|^2 is power complementary and equals 1/2 at pi/2."""
    h = np.asarray(wavelet_lowpass, dtype=np.float64)
    p = np.convolve(h, h[::-1])
    return p / p.sum()


def dilate(taps, factor):
    """Inserts factor-1 zeros between taps: the response H(w) becomes H(factor * w)."""
    out = np.zeros((len(taps) - 1) * factor + 1)
    out[::factor] = taps
    return out


def centered_pad(taps, length):
    """Zero-pads an odd-length filter symmetrically to `length` taps."""
    extra = length - len(taps)
    assert extra >= 0 and extra % 2 == 0
    return np.pad(taps, [extra // 2, extra // 2])


def octave_band_filters(wavelet_lowpass, num_bands=4):
    """[num_bands, taps] zero-phase filters splitting [0, pi] into octaves, lowest band first.

    Lowpass k has cutoff pi / 2^k and is the cascade of dilated halfband filters; each band is the
    difference of two consecutive lowpass filters, so the bands sum to the unit impulse.
    """
    halfband = halfband_lowpass(wavelet_lowpass)
    lowpasses = [np.ones(1)]
    for level in range(num_bands - 1):
        lowpasses.append(np.convolve(lowpasses[-1], dilate(halfband, 2 ** level)))
    length = len(lowpasses[-1])
    lowpasses = [centered_pad(lp, length) for lp in lowpasses]
    bands = [lowpasses[-1]] + [lowpasses[k - 1] - lowpasses[k] for k in range(num_bands - 1, 0, -1)]
    return np.stack(bands)


OCTAVE_BANDS = octave_band_filters(SYM2_LOWPASS)

# ----------------------------------------------------------------------------
# Random draws: one value per image, or the value at `percentile` for every image.


def draw_uniform(batch_size, low, high, percentile, device):
    if percentile is None:
        u = torch.rand([batch_size], dtype=torch.float64, device=device)
    else:
        u = torch.full([batch_size], percentile, dtype=torch.float64, device=device)
    return low + (high - low) * u


def draw_normal(batch_size, std, percentile, device):
    if percentile is None:
        z = torch.randn([batch_size], dtype=torch.float64, device=device)
    else:
        q = min(max(percentile, DEBUG_GAUSSIAN_PERCENTILE_CLIP), 1 - DEBUG_GAUSSIAN_PERCENTILE_CLIP)
        z = torch.full([batch_size], q, dtype=torch.float64, device=device)
        z = torch.erfinv(z * 2 - 1) * np.sqrt(2)
    return z * std


def draw_lognormal2(batch_size, std, percentile, device):
    """2^N(0, std^2): a lognormal whose standard deviation is `std` octaves."""
    return torch.exp2(draw_normal(batch_size, std, percentile, device))


def draw_integer(batch_size, num_values, percentile, device):
    """Uniform over {0, ..., num_values - 1}."""
    if percentile is None:
        return torch.randint(num_values, [batch_size], device=device).to(torch.float64)
    value = min(int(np.floor(percentile * num_values)), num_values - 1)
    return torch.full([batch_size], value, dtype=torch.float64, device=device)


def draw_gate(batch_size, prob, percentile, device):
    """Which images get an operation: each with probability `prob` (a tensor or float).
    With a debug percentile, every image gets every enabled operation."""
    if percentile is not None:
        return torch.ones([batch_size], dtype=torch.bool, device=device)
    return torch.rand([batch_size], dtype=torch.float64, device=device) < prob

# ----------------------------------------------------------------------------
# Per-image transformation matrices, float64 [N, 3, 3] (2-D) or [N, 4, 4] (3-D).
# Image coordinates are in pixels, x to the right, y down, origin at the image centre.


def matrix(*rows):
    """Stacks per-image entries (tensors of shape [N] or Python numbers) into [N, R, C]."""
    batch_size = next(e.shape[0] for row in rows for e in row if isinstance(e, torch.Tensor))
    device = next(e.device for row in rows for e in row if isinstance(e, torch.Tensor))
    as_tensor = lambda e: e if isinstance(e, torch.Tensor) else torch.full([batch_size], float(e), dtype=torch.float64, device=device)
    return torch.stack([torch.stack([as_tensor(e) for e in row], dim=-1) for row in rows], dim=-2)


def translate2d(tx, ty):
    return matrix([1, 0, tx], [0, 1, ty], [0, 0, 1])


def scale2d(sx, sy):
    return matrix([sx, 0, 0], [0, sy, 0], [0, 0, 1])


def rotate2d(theta):
    """Counter-clockwise as displayed (y points down)."""
    c, s = torch.cos(theta), torch.sin(theta)
    return matrix([c, s, 0], [-s, c, 0], [0, 0, 1])


def rotate2d_quarter_turns(k):
    """rotate2d(k * pi / 2) with exact integer entries; k is an integer-valued tensor."""
    k = k.long().remainder(4)
    cos_table = torch.tensor([1.0, 0.0, -1.0, 0.0], dtype=torch.float64, device=k.device)
    sin_table = torch.tensor([0.0, 1.0, 0.0, -1.0], dtype=torch.float64, device=k.device)
    c, s = cos_table[k], sin_table[k]
    return matrix([c, s, 0], [-s, c, 0], [0, 0, 1])


def translate3d(tx, ty, tz):
    return matrix([1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1])


def scale3d(sx, sy, sz):
    return matrix([sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1])


def rotate3d(axis, theta):
    """Rotation by `theta` about the unit vector `axis` (Rodrigues' formula), homogeneous 4x4."""
    ax, ay, az = axis
    c, s = torch.cos(theta), torch.sin(theta)
    d = 1 - c
    return matrix(
        [ax * ax * d + c, ax * ay * d - az * s, ax * az * d + ay * s, 0],
        [ay * ax * d + az * s, ay * ay * d + c, ay * az * d - ax * s, 0],
        [az * ax * d - ay * s, az * ay * d + ax * s, az * az * d + c, 0],
        [0, 0, 0, 1],
    )

# ----------------------------------------------------------------------------
# Geometric resampling.


def reflect_index(index, size):
    """Maps integer coordinates onto [0, size) by mirroring about the edge pixels (no repeat)."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = index.remainder(period)
    return torch.where(index < size, index, period - index)


def reflect_pad(x, pad_left, pad_right, pad_top, pad_bottom):
    """Reflect padding of any width, equal to indexing with reflect_index(). Wider pads mirror
    in rounds of at most size - 1 pixels: every round then ends on a mirror point of the periodic
    reflection and reads only pixels that the same side already holds."""
    height, width = x.shape[2], x.shape[3]
    if height == 1 or width == 1:  # Nothing to mirror about: every coordinate maps to pixel 0.
        cols = reflect_index(torch.arange(-pad_left, width + pad_right, device=x.device), width)
        rows = reflect_index(torch.arange(-pad_top, height + pad_bottom, device=x.device), height)
        return x.index_select(3, cols).index_select(2, rows)
    pads = [pad_left, pad_right, pad_top, pad_bottom]
    limits = [width - 1, width - 1, height - 1, height - 1]
    while any(pads):
        step = [min(pad, limit) for pad, limit in zip(pads, limits)]
        x = torch.nn.functional.pad(x, step, mode='reflect')
        pads = [pad - done for pad, done in zip(pads, step)]
    return x


def index_space_affine(G, width, height):
    """Rewrites centred-coordinate matrices G as (A, t) acting on pixel indices: in = A @ out + t."""
    center = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=torch.float64, device=G.device)
    A = G[:, :2, :2]
    t = G[:, :2, 2] + center - A @ center
    return A, t


def is_pixel_blit(G, width, height):
    """[N] bool: the transform maps every output pixel exactly onto an input pixel."""
    A, t = index_space_affine(G, width, height)
    return (A == A.round()).all(dim=[1, 2]) & (t == t.round()).all(dim=1)


def blit(x, G):
    """Applies pixel-permuting transforms exactly, reading outside the image by reflection."""
    batch_size, num_channels, height, width = x.shape
    A, t = index_space_affine(G, width, height)
    A, t = A.round().long(), t.round().long()
    cols = torch.arange(width, device=x.device).reshape(1, 1, width)
    rows = torch.arange(height, device=x.device).reshape(1, height, 1)
    src_x = A[:, 0, 0, None, None] * cols + A[:, 0, 1, None, None] * rows + t[:, 0, None, None]
    src_y = A[:, 1, 0, None, None] * cols + A[:, 1, 1, None, None] * rows + t[:, 1, None, None]
    index = reflect_index(src_y, height) * width + reflect_index(src_x, width)
    index = index.reshape(batch_size, 1, height * width).expand(-1, num_channels, -1)
    return x.reshape(batch_size, num_channels, height * width).gather(2, index).reshape(x.shape)


def filter_delay(taps):
    """How far the centroid of the filter lies from its middle tap, in taps. upfirdn2d centres a
    filter on its middle tap, which is right for symmetric filters only."""
    taps = np.asarray(taps, dtype=np.float64)
    return float((np.arange(len(taps)) * taps).sum() / taps.sum() - (len(taps) - 1) / 2)


def resample(x, G, wavelet_lowpass):
    """Applies arbitrary affine transforms G (output -> input, centred pixel coordinates).

    The image is reflect-padded to cover everything the output can see, upsampled 2x with the
    wavelet lowpass, sampled bilinearly at the transformed positions of a 2x output grid that
    extends past the border by half the filter, and downsampled 2x with the time-reversed filter.
    The wavelet is not symmetric: the upsampled image lags by `delay` 2x pixels and the
    downsampler reads `delay` 2x pixels early, so both grids are offset by it. With an identity
    transform the two offsets cancel exactly and the result is the input (perfect reconstruction).
    """
    batch_size, num_channels, height, width = x.shape
    wavelet_filter = upfirdn2d.setup_filter(wavelet_lowpass, device=x.device)
    delay = filter_delay(wavelet_lowpass)
    taps = wavelet_filter.shape[0]
    ext = taps // 2        # Extra 2x output samples per side, so the downsampler never reads zeros.
    margin = taps / 4 + 1  # Input pixels per side needed by the upsampler and bilinear lookups.

    # 2x output grid in centred coordinates of the original pixel grid.
    grid_x = (torch.arange(2 * width + 2 * ext, dtype=torch.float64, device=x.device) - ext - delay - 0.5) / 2 - (width - 1) / 2
    grid_y = (torch.arange(2 * height + 2 * ext, dtype=torch.float64, device=x.device) - ext - delay - 0.5) / 2 - (height - 1) / 2

    # Padding that covers what the grid's corners see (the transform is affine).
    corners = torch.stack([grid_x[[0, -1, 0, -1]], grid_y[[0, 0, -1, -1]], torch.ones_like(grid_x[:4])])  # [3, 4]
    seen = (G @ corners)[:, :2, :]  # [N, 2, 4]
    center = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=torch.float64, device=x.device)
    lo = seen.amin(dim=[0, 2]) + center - margin
    hi = seen.amax(dim=[0, 2]) + center + margin
    lo_x, lo_y, hi_x, hi_y = torch.cat([lo, hi]).tolist()  # One host sync: the padding sizes the tensors.
    pad_left, pad_top = max(0, int(np.ceil(-lo_x))), max(0, int(np.ceil(-lo_y)))
    pad_right, pad_bottom = max(0, int(np.ceil(hi_x - (width - 1)))), max(0, int(np.ceil(hi_y - (height - 1))))
    x = reflect_pad(x, pad_left, pad_right, pad_top, pad_bottom)
    x = upfirdn2d.upsample2d(x, wavelet_filter)
    up_height, up_width = x.shape[2], x.shape[3]

    # Source positions, as normalized grid_sample coordinates of the upsampled padded image:
    # padded pixel index i lies at upsampled index 2 * i + 0.5 + delay.
    points_y, points_x = torch.meshgrid(grid_y, grid_x, indexing='ij')
    points = torch.stack([points_x, points_y, torch.ones_like(points_x)], dim=-1)  # [H2, W2, 3]
    source = torch.einsum('nij,hwj->nhwi', G[:, :2, :], points)  # [N, H2, W2, 2]
    source_x = source[..., 0] + (width - 1) / 2 + pad_left
    source_y = source[..., 1] + (height - 1) / 2 + pad_top
    grid = torch.stack([
        (2 * (2 * source_x + 0.5 + delay) + 1) / up_width - 1,
        (2 * (2 * source_y + 0.5 + delay) + 1) / up_height - 1,
    ], dim=-1)
    x = grid_sample_gradfix.grid_sample(x, grid.to(x.dtype))

    x = upfirdn2d.downsample2d(x, wavelet_filter, padding=-ext, flip_filter=True)
    misc.assert_shape(x, [batch_size, num_channels, height, width])
    return x

# ----------------------------------------------------------------------------
# Color and filtering.


def apply_color_matrix(x, C):
    """Applies homogeneous 4x4 color matrices; a grayscale image acts as gray RGB, then averaged."""
    batch_size, num_channels, height, width = x.shape
    C = C.to(x.dtype)
    if num_channels == 3:
        y = C[:, :3, :3] @ x.reshape(batch_size, 3, height * width) + C[:, :3, 3:]
        return y.reshape(x.shape)
    if num_channels == 1:
        gain = C[:, :3, :3].sum(dim=[1, 2]) / 3
        offset = C[:, :3, 3].mean(dim=1)
        return x * gain.reshape(-1, 1, 1, 1) + offset.reshape(-1, 1, 1, 1)
    raise ValueError(f'Color augmentation needs 1 or 3 channels, got {num_channels}')


def separable_filter(x, taps):
    """Filters each image with its own zero-phase 1-D filter `taps` [N, L] (L odd) along both
    axes, with reflect padding."""
    batch_size, num_channels, height, width = x.shape
    length = taps.shape[1]
    assert length % 2 == 1
    pad = length // 2
    x = reflect_pad(x, pad, pad, pad, pad)
    weight = taps.to(x.dtype).repeat_interleave(num_channels, dim=0)  # [N * C, L]
    x = x.reshape(1, batch_size * num_channels, height + 2 * pad, width + 2 * pad)
    x = conv2d_gradfix.conv2d(input=x, weight=weight.reshape(-1, 1, 1, length), groups=batch_size * num_channels)
    x = conv2d_gradfix.conv2d(input=x, weight=weight.reshape(-1, 1, length, 1), groups=batch_size * num_channels)
    return x.reshape(batch_size, num_channels, height, width)

# ----------------------------------------------------------------------------


@persistence.persistent_class
class AugmentPipe(torch.nn.Module):
    def __init__(self,
        xflip           = 0,            # Probability multiplier for x-flip.
        rotate90        = 0,            # Probability multiplier for rotations by multiples of 90 degrees.
        xint            = 0,            # Probability multiplier for integer translation.
        xint_max        = 0.125,        # Range of integer translation, relative to image dimensions.
        scale           = 0,            # Probability multiplier for isotropic scaling.
        rotate          = 0,            # Probability multiplier for arbitrary rotation.
        aniso           = 0,            # Probability multiplier for anisotropic scaling.
        xfrac           = 0,            # Probability multiplier for fractional translation.
        scale_std       = 0.2,          # Log2 standard deviation of isotropic scaling.
        rotate_max      = 1,            # Range of arbitrary rotation, 1 = full circle.
        aniso_std       = 0.2,          # Log2 standard deviation of anisotropic scaling.
        xfrac_std       = 0.125,        # Standard deviation of fractional translation, relative to image dimensions.
        brightness      = 0,            # Probability multiplier for brightness.
        contrast        = 0,            # Probability multiplier for contrast.
        lumaflip        = 0,            # Probability multiplier for luma flip.
        hue             = 0,            # Probability multiplier for hue rotation.
        saturation      = 0,            # Probability multiplier for saturation.
        brightness_std  = 0.2,          # Standard deviation of brightness.
        contrast_std    = 0.5,          # Log2 standard deviation of contrast.
        hue_max         = 1,            # Range of hue rotation, 1 = full circle.
        saturation_std  = 1,            # Log2 standard deviation of saturation.
        imgfilter       = 0,            # Probability multiplier for image-space filtering.
        imgfilter_bands = [1, 1, 1, 1], # Probability multipliers for the individual frequency bands.
        imgfilter_std   = 1,            # Log2 standard deviation of the band gains.
        noise           = 0,            # Probability multiplier for additive RGB noise.
        cutout          = 0,            # Probability multiplier for cutout.
        noise_std       = 0.1,          # Standard deviation of additive RGB noise.
        cutout_size     = 0.5,          # Size of the cutout square, relative to image dimensions.
    ):
        super().__init__()
        self.register_buffer('p', torch.zeros([]))  # Overall multiplier for augmentation probability.

        self.xflip = float(xflip)
        self.rotate90 = float(rotate90)
        self.xint = float(xint)
        self.xint_max = float(xint_max)
        self.scale = float(scale)
        self.rotate = float(rotate)
        self.aniso = float(aniso)
        self.xfrac = float(xfrac)
        self.scale_std = float(scale_std)
        self.rotate_max = float(rotate_max)
        self.aniso_std = float(aniso_std)
        self.xfrac_std = float(xfrac_std)

        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.lumaflip = float(lumaflip)
        self.hue = float(hue)
        self.saturation = float(saturation)
        self.brightness_std = float(brightness_std)
        self.contrast_std = float(contrast_std)
        self.hue_max = float(hue_max)
        self.saturation_std = float(saturation_std)

        self.imgfilter = float(imgfilter)
        self.imgfilter_bands = [float(b) for b in imgfilter_bands]
        self.imgfilter_std = float(imgfilter_std)
        assert len(self.imgfilter_bands) == OCTAVE_BANDS.shape[0], 'imgfilter_bands needs one entry per band'

        self.noise = float(noise)
        self.cutout = float(cutout)
        self.noise_std = float(noise_std)
        self.cutout_size = float(cutout_size)

    def forward(self, images, debug_percentile=None):
        """Augments NCHW images. `debug_percentile` in [0, 1] applies every enabled operation to
        every image with each random parameter at that percentile of its distribution (the pixels
        of additive noise stay random), for inspecting the operations."""
        assert isinstance(images, torch.Tensor) and images.ndim == 4, 'images must be NCHW'
        if debug_percentile is not None:
            debug_percentile = float(debug_percentile)
            assert 0 <= debug_percentile <= 1, 'debug_percentile must lie in [0, 1]'
        x = images
        if max(self.xflip, self.rotate90, self.xint, self.scale, self.rotate, self.aniso, self.xfrac) > 0:
            x = self.apply_geometric(x, debug_percentile)
        if max(self.brightness, self.contrast, self.lumaflip, self.hue, self.saturation) > 0:
            x = apply_color_matrix(x, self.color_matrix(x.shape[0], x.device, debug_percentile))
        if self.imgfilter > 0:
            x = self.apply_imgfilter(x, debug_percentile)
        if self.noise > 0:
            x = self.apply_noise(x, debug_percentile)
        if self.cutout > 0:
            x = self.apply_cutout(x, debug_percentile)
        misc.assert_shape(x, images.shape)
        return x

    def gated(self, value, neutral, strength, percentile):
        """`value` where the operation fires (probability strength * p), `neutral` elsewhere."""
        gate = draw_gate(value.shape[0], strength * self.p, percentile, value.device)
        return torch.where(gate, value, torch.full_like(value, neutral))

    def geometric_matrices(self, batch_size, width, height, device, percentile):
        """Two [N, 3, 3] float64 matrices mapping output pixel positions to input positions
        (centred coordinates), one for the pixel blitting and one for the general transforms
        that follow it. The image passes the operations in order, so their inverses compose in
        order."""
        G = torch.eye(3, dtype=torch.float64, device=device).repeat(batch_size, 1, 1)
        N, q = batch_size, percentile

        if self.xflip > 0:
            flip = self.gated(draw_integer(N, 2, q, device), 0, self.xflip, q)
            G = G @ scale2d(1 - 2 * flip, 1)
        if self.rotate90 > 0:
            turns = self.gated(draw_integer(N, 4, q, device), 0, self.rotate90, q)
            G = G @ rotate2d_quarter_turns(-turns)
        if self.xint > 0:
            shift_x = draw_uniform(N, -self.xint_max, self.xint_max, q, device)
            shift_y = draw_uniform(N, -self.xint_max, self.xint_max, q, device)
            gate = draw_gate(N, self.xint * self.p, q, device)
            shift_x = torch.where(gate, torch.round(shift_x * width), 0.0)
            shift_y = torch.where(gate, torch.round(shift_y * height), 0.0)
            G = G @ translate2d(-shift_x, -shift_y)
        G_blit, G = G, torch.eye(3, dtype=torch.float64, device=device).repeat(batch_size, 1, 1)
        if self.scale > 0:
            s = self.gated(draw_lognormal2(N, self.scale_std, q, device), 1, self.scale, q)
            G = G @ scale2d(1 / s, 1 / s)
        # Rotation happens before and after anisotropic scaling; each with a probability chosen so
        # that at least one of them happens with probability rotate * p.
        rotate_prob = 1 - torch.sqrt((1 - self.rotate * self.p).clamp(0, 1))
        if self.rotate > 0:
            theta = draw_uniform(N, -np.pi * self.rotate_max, np.pi * self.rotate_max, q, device)
            theta = torch.where(draw_gate(N, rotate_prob, q, device), theta, 0.0)
            G = G @ rotate2d(-theta)
        if self.aniso > 0:
            s = self.gated(draw_lognormal2(N, self.aniso_std, q, device), 1, self.aniso, q)
            G = G @ scale2d(1 / s, s)
        if self.rotate > 0:
            theta = draw_uniform(N, -np.pi * self.rotate_max, np.pi * self.rotate_max, q, device)
            theta = torch.where(draw_gate(N, rotate_prob, q, device), theta, 0.0)
            G = G @ rotate2d(-theta)
        if self.xfrac > 0:
            shift_x = draw_normal(N, self.xfrac_std, q, device)
            shift_y = draw_normal(N, self.xfrac_std, q, device)
            gate = draw_gate(N, self.xfrac * self.p, q, device)
            shift_x = torch.where(gate, shift_x * width, 0.0)
            shift_y = torch.where(gate, shift_y * height, 0.0)
            G = G @ translate2d(-shift_x, -shift_y)
        return G_blit, G

    def apply_geometric(self, x, percentile):
        """Blits exactly where possible, then resamples the images that need it."""
        batch_size, _, height, width = x.shape
        G_blit, G_general = self.geometric_matrices(batch_size, width, height, x.device, percentile)
        eye = torch.eye(3, dtype=torch.float64, device=x.device)

        # A 90-degree rotation of a non-square image does not land on whole pixels; such images
        # take the whole transform through the resampler.
        blittable = is_pixel_blit(G_blit, width, height)[:, None, None]
        x = blit(x, torch.where(blittable, G_blit, eye))
        G_general = torch.where(blittable, G_general, G_blit @ G_general)

        selected = torch.nonzero((G_general != eye).any(dim=[1, 2])).flatten()
        if selected.numel() == 0:
            return x
        y = resample(x.index_select(0, selected), G_general.index_select(0, selected), SYM6_LOWPASS)
        return x.index_copy(0, selected, y)

    def color_matrix(self, batch_size, device, percentile):
        """[N, 4, 4] float64 acting on homogeneous RGB; the operations compose in order."""
        C = torch.eye(4, dtype=torch.float64, device=device).repeat(batch_size, 1, 1)
        N, q = batch_size, percentile
        luma_axis = torch.tensor([1, 1, 1, 0], dtype=torch.float64, device=device) / np.sqrt(3)
        luma_projection = torch.outer(luma_axis, luma_axis)  # Keeps only the gray component.
        eye = torch.eye(4, dtype=torch.float64, device=device)

        if self.brightness > 0:
            b = self.gated(draw_normal(N, self.brightness_std, q, device), 0, self.brightness, q)
            C = translate3d(b, b, b) @ C
        if self.contrast > 0:
            c = self.gated(draw_lognormal2(N, self.contrast_std, q, device), 1, self.contrast, q)
            C = scale3d(c, c, c) @ C
        if self.lumaflip > 0:
            flip = self.gated(draw_integer(N, 2, q, device), 0, self.lumaflip, q)
            C = (eye - 2 * flip.reshape(-1, 1, 1) * luma_projection) @ C
        if self.hue > 0:
            theta = self.gated(draw_uniform(N, -np.pi * self.hue_max, np.pi * self.hue_max, q, device), 0, self.hue, q)
            C = rotate3d([1 / np.sqrt(3)] * 3, theta) @ C
        if self.saturation > 0:
            s = self.gated(draw_lognormal2(N, self.saturation_std, q, device), 1, self.saturation, q)
            # Written as eye + (s - 1) * chroma so that s == 1 gives the identity exactly.
            C = (eye + (s - 1).reshape(-1, 1, 1) * (eye - luma_projection)) @ C
        return C

    def apply_imgfilter(self, x, percentile):
        batch_size = x.shape[0]
        num_bands = OCTAVE_BANDS.shape[0]
        expected_power = torch.tensor(BAND_EXPECTED_POWER, dtype=torch.float64, device=x.device)
        gains = torch.ones([batch_size, num_bands], dtype=torch.float64, device=x.device)
        filtered = torch.zeros([batch_size], dtype=torch.bool, device=x.device)
        for band, band_strength in enumerate(self.imgfilter_bands):
            if band_strength <= 0:
                continue
            t = torch.ones([batch_size, num_bands], dtype=torch.float64, device=x.device)
            t[:, band] = draw_lognormal2(batch_size, self.imgfilter_std, percentile, x.device)
            t = t / (t.square() * expected_power).sum(dim=1, keepdim=True).sqrt()
            gate = draw_gate(batch_size, self.imgfilter * band_strength * self.p, percentile, x.device)
            gains = torch.where(gate[:, None], gains * t, gains)
            filtered = filtered | gate

        selected = torch.nonzero(filtered).flatten()
        if selected.numel() == 0:
            return x
        bands = misc.constant(OCTAVE_BANDS, dtype=torch.float64, device=x.device)
        taps = gains.index_select(0, selected) @ bands  # [n, L]
        y = separable_filter(x.index_select(0, selected), taps)
        return x.index_copy(0, selected, y)

    def apply_noise(self, x, percentile):
        batch_size = x.shape[0]
        sigma = draw_normal(batch_size, self.noise_std, percentile, x.device).abs()
        sigma = self.gated(sigma, 0, self.noise, percentile)
        return x + torch.randn_like(x) * sigma.to(x.dtype).reshape(-1, 1, 1, 1)

    def apply_cutout(self, x, percentile):
        batch_size, _, height, width = x.shape
        size = self.gated(torch.full([batch_size], self.cutout_size, dtype=torch.float64, device=x.device), 0, self.cutout, percentile)
        center_x = draw_uniform(batch_size, 0, 1, percentile, x.device)
        center_y = draw_uniform(batch_size, 0, 1, percentile, x.device)
        cols = (torch.arange(width, dtype=torch.float64, device=x.device) + 0.5) / width
        rows = (torch.arange(height, dtype=torch.float64, device=x.device) + 0.5) / height
        outside_x = (cols[None, :] - center_x[:, None]).abs() >= size[:, None] / 2  # [N, W]
        outside_y = (rows[None, :] - center_y[:, None]).abs() >= size[:, None] / 2  # [N, H]
        keep = outside_x[:, None, :] | outside_y[:, :, None]  # [N, H, W]
        return x * keep.to(x.dtype).unsqueeze(1)

# ----------------------------------------------------------------------------
