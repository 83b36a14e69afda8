"""Equivariance metrics of the StyleGAN3 paper (Karras et al. 2021, Appendix E): the PSNR, in dB
and with a dynamic range of 2 (images in [-1, 1]), between the generator's output for a translated
or rotated input grid and the correspondingly transformed output of the untransformed grid.

EQ-T uses translations of up to 1/8 of the image along each axis (integer pixels or fractional);
EQ-R uses rotations drawn uniformly from the full circle. Fractional shifts and rotations of the
reference image are done with band-limited (Lanczos-windowed sinc) resampling; pixels whose value
depends on content from outside the image are excluded from the comparison.
"""

import copy

import numpy as np
import torch

from . import metric_utils

TRANSLATE_MAX = 0.125   # Fraction of the image size.
LANCZOS_A = 3           # Lanczos window radius, in pixels.
ROTATION_UPSAMPLE = 4   # Oversampling of the rotated reference image.

# ----------------------------------------------------------------------------
# Transforms in the coordinate system of the StyleGAN3 input (the image spans one unit).


def translation_matrix(tx, ty):
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)


def rotation_matrix(angle):
    s, c = np.sin(angle), np.cos(angle)
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], dtype=np.float64)


def render_with_transform(G, ws, content_transform, G_kwargs):
    """Synthesises `ws` with the image content moved by `content_transform` (3x3, input coordinates).

    The input's `transform` maps output coordinates to sampling coordinates, so content moves by
    the inverse of what is written there.
    """
    transform = G.synthesis.input.transform
    saved = transform.detach().clone()
    try:
        transform.copy_(torch.from_numpy(np.linalg.inv(content_transform)).to(transform))
        return G.synthesis(ws=ws, noise_mode='const', force_fp32=True, **G_kwargs)
    finally:
        transform.copy_(saved)

# ----------------------------------------------------------------------------
# Reference transforms of images, with a mask of trustworthy pixels.


def lanczos(x, a=LANCZOS_A):
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.abs(x) < a, np.sinc(x) * np.sinc(x / a), 0.0)


def shift_axis(x, shift, dim):
    """Moves content of `x` by `shift` pixels (any real number) along `dim`; returns (shifted, valid mask)."""
    k = int(np.floor(shift))
    f = shift - k
    n = x.shape[dim]
    if f == 0:
        taps, offsets = np.array([1.0]), np.array([0])
    else:
        offsets = np.arange(-LANCZOS_A + 1, LANCZOS_A + 1)
        taps = lanczos(offsets - f)
        taps = taps / taps.sum()
    out = torch.zeros_like(x)
    valid = torch.ones([n], dtype=torch.bool, device=x.device)
    idx = torch.arange(n, device=x.device)
    for m, tap in zip(offsets, taps):
        src = idx - k - int(m)  # y[i] = sum_m x[i - k - m] * L(m - f).
        ok = (src >= 0) & (src < n)
        valid &= ok
        gathered = x.index_select(dim, src.clamp(0, n - 1))
        shape = [1] * x.ndim
        shape[dim] = n
        out = out + gathered * ok.to(x.dtype).reshape(shape) * float(tap)
    shape = [1] * x.ndim
    shape[dim] = n
    return out, valid.reshape(shape)


def translate_image(img, tx_px, ty_px):
    """Content moved by (tx_px, ty_px) pixels along (width, height); mask marks fully known pixels."""
    out, valid_x = shift_axis(img, tx_px, dim=3)
    out, valid_y = shift_axis(out, ty_px, dim=2)
    mask = (valid_x & valid_y).expand(img.shape[0], 1, img.shape[2], img.shape[3])
    return out, mask


def _resample_taps(factor):
    """Lanczos taps g[u], u = -(a*U - U/2)..., linking low-res pixel n and high-res sample p = U*n + u.

    Pixel centres sit at (p + 0.5) / U - 0.5 in low-res units, so g[u] = L((u + 0.5 - U/2) / U).
    Returns (taps, u of the first tap).
    """
    first = int(np.ceil(factor / 2 - 0.5 - LANCZOS_A * factor + 1e-9))
    u = np.arange(first, first + 2 * LANCZOS_A * factor)
    return lanczos((u + 0.5 - factor / 2) / factor), first


def _valid_after_upsampling(n, factor, first, num_taps, device):
    """For each high-res sample, whether every low-res pixel it interpolates lies inside the image."""
    p = np.arange(n * factor)
    lo = np.ceil((p - (first + num_taps - 1)) / factor)
    hi = np.floor((p - first) / factor)
    return torch.as_tensor((lo >= 0) & (hi <= n - 1), device=device)


def rotate_image(img, angle):
    """Content rotated by `angle` (radians, the sense of `rotation_matrix`) about the image centre.

    Band-limited: Lanczos upsampling by ROTATION_UPSAMPLE, bilinear rotation at the high rate,
    Lanczos lowpass and downsampling. The mask keeps pixels computed from inside the image only.
    """
    from torch_utils.ops import upfirdn2d
    U = ROTATION_UPSAMPLE
    n, ch, h, w = img.shape
    assert h == w, 'rotation needs square images'
    taps, first = _resample_taps(U)
    last = first + len(taps) - 1

    # Upsampling as a correlation: high-res sample j gathers x[m] * g[j - U m].
    f_up = torch.as_tensor(taps[::-1] * (U / taps.sum()), dtype=torch.float32, device=img.device)
    up = upfirdn2d.upfirdn2d(img, f_up, up=U, padding=[last, -first, last, -first], flip_filter=True)

    # Rotation at the high rate: output position q samples the source at the inversely rotated position.
    s, c = np.sin(angle), np.cos(angle)
    theta = torch.tensor([[c, -s, 0], [s, c, 0]], dtype=torch.float32, device=img.device).unsqueeze(0)
    grid = torch.nn.functional.affine_grid(theta.repeat(n, 1, 1), list(up.shape), align_corners=False)
    rotated = torch.nn.functional.grid_sample(up, grid, mode='bilinear', padding_mode='zeros', align_corners=False)

    # Downsampling as a correlation: pixel i gathers high-res samples U*i + u with weight g[u].
    f_down = torch.as_tensor(taps / taps.sum(), dtype=torch.float32, device=img.device)
    down = upfirdn2d.upfirdn2d(rotated, f_down, down=U, padding=[-first, last, -first, last], flip_filter=True)

    # Validity follows the same path: upsampled footprint inside, all bilinear neighbours valid,
    # every high-res sample of the downsampling footprint valid.
    valid_1d = _valid_after_upsampling(h, U, first, len(taps), img.device).to(torch.float32)
    valid_up = (valid_1d[:, None] * valid_1d[None, :])[None, None].repeat(n, 1, 1, 1)
    valid_rot = torch.nn.functional.grid_sample(valid_up, grid, mode='bilinear', padding_mode='zeros', align_corners=False) > 0.999
    invalid = torch.nn.functional.pad((~valid_rot).to(torch.float32), [-first, last, -first, last], value=1.0)
    invalid = torch.nn.functional.max_pool2d(invalid, kernel_size=len(taps), stride=U)
    mask = invalid < 0.5
    assert down.shape[2:] == img.shape[2:] and mask.shape[2:] == img.shape[2:]
    return down, mask


def psnr_from_mse(mse):
    return float(np.log10(2 ** 2 / max(mse, 1e-20)) * 10)

# ----------------------------------------------------------------------------


def check_equivariance_support(G):
    if not hasattr(getattr(getattr(G, 'synthesis', None), 'input', None), 'transform'):
        raise metric_utils.MetricError('Equivariance metrics need a generator with an input transform '
                                       '(StyleGAN3: G.synthesis.input.transform); this network has none')


def batch_transform(rnd, kind, img_resolution):
    """Draws the transform of one batch: returns (3x3 content transform, reference function)."""
    if kind == 'rotate':
        angle = (rnd.rand() * 2 - 1) * np.pi
        return rotation_matrix(angle), (lambda img: rotate_image(img, angle))
    t = (rnd.rand(2) * 2 - 1) * TRANSLATE_MAX
    if kind == 'int':
        t = np.round(t * img_resolution) / img_resolution
    tx_px, ty_px = t * img_resolution
    return translation_matrix(t[0], t[1]), (lambda img: translate_image(img, tx_px, ty_px))


def compute_equivariance_metrics(opts, num_samples, batch_size, compute_eqt_int=False, compute_eqt_frac=False, compute_eqr=False):
    """Returns a tuple with one PSNR per requested metric, in the order int, frac, rotate."""
    if opts.scale != 1:
        raise metric_utils.MetricError(f'Equivariance metrics compare renderings at the training resolution; '
                                       f'compute them with scale 1, not {opts.scale}')
    G = copy.deepcopy(opts.G).eval().requires_grad_(False).to(opts.device)
    check_equivariance_support(G)
    kinds = [k for k, on in (('int', compute_eqt_int), ('frac', compute_eqt_frac), ('rotate', compute_eqr)) if on]
    assert len(kinds) > 0
    synthesis_kwargs = {k: v for k, v in opts.G_kwargs.items() if k not in ('truncation_psi', 'truncation_cutoff', 'noise_mode', 'force_fp32')}
    dataset = None
    if G.c_dim > 0:
        import dnnlib
        dataset = dnnlib.util.construct_class_by_name(**opts.dataset_kwargs)

    stats = metric_utils.FeatureStats(capture_all=True, max_items=num_samples)  # Per sample: [sq err sum, count] per kind.
    progress = opts.progress.sub(tag='eq sampling', num_items=num_samples)
    for batch in metric_utils.rank_items(num_samples, opts.num_gpus, opts.rank, batch_size):
        z = torch.from_numpy(metric_utils.sample_latents(batch, G.z_dim, opts.seed)).to(opts.device)
        c = metric_utils.generator_labels(batch, dataset, G, opts.seed, opts.device)
        ws = G.mapping(z=z, c=c, truncation_psi=opts.G_kwargs.get('truncation_psi', 1),
                       truncation_cutoff=opts.G_kwargs.get('truncation_cutoff', None))
        reference = render_with_transform(G, ws, np.eye(3), synthesis_kwargs)
        rnd = np.random.RandomState((opts.seed * 15485863 + batch[0]) % (2 ** 32))
        row = []
        for kind in kinds:
            content_transform, transform_reference = batch_transform(rnd, kind, G.img_resolution)
            transformed = render_with_transform(G, ws, content_transform, synthesis_kwargs)
            expected, mask = transform_reference(reference)
            mask = mask.to(transformed.dtype).expand_as(transformed)
            row += [((transformed - expected).square() * mask).flatten(1).sum(1), mask.flatten(1).sum(1)]
        stats.append_torch(torch.stack(row, dim=1).to(torch.float64).to(torch.float32), num_gpus=opts.num_gpus, rank=opts.rank)
        progress.update(min(stats.num_items, num_samples))
    if opts.rank != 0:
        return tuple(float('nan') for _ in kinds)
    sums = stats.get_all().astype(np.float64).sum(axis=0)
    return tuple(psnr_from_mse(sums[2 * i] / max(sums[2 * i + 1], 1)) for i in range(len(kinds)))
