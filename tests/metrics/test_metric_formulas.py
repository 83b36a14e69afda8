import numpy as np
import pytest
import scipy.linalg
import torch

from metrics import equivariance
from metrics import frechet_inception_distance as fid_mod
from metrics import inception_score as is_mod
from metrics import kernel_inception_distance as kid_mod
from metrics import metric_utils
from metrics import perceptual_path_length as ppl_mod
from metrics import precision_recall as pr_mod


def _features(n, d, shift=0.0, seed=0):
    rnd = np.random.RandomState(seed)
    return (rnd.randn(n, d) @ rnd.randn(d, d) * 0.3 + shift).astype(np.float32)


def test_feature_stats_mean_cov_and_max_items():
    x = _features(50, 6)
    stats = metric_utils.FeatureStats(capture_all=True, capture_mean_cov=True, max_items=45)
    stats.append(x[:20])
    stats.append(x[20:])
    assert stats.num_items == 45 and stats.is_full()
    mean, cov = stats.get_mean_cov()
    np.testing.assert_allclose(mean, x[:45].astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(cov, np.cov(x[:45].astype(np.float64), rowvar=False, bias=True), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(stats.get_all(), x[:45])


def test_feature_stats_save_load(tmp_path):
    stats = metric_utils.FeatureStats(capture_mean_cov=True, max_items=10)
    stats.append(_features(10, 4))
    stats.save(str(tmp_path / 's.pkl'))
    loaded = metric_utils.FeatureStats.load(str(tmp_path / 's.pkl'))
    np.testing.assert_array_equal(loaded.get_mean_cov()[1], stats.get_mean_cov()[1])
    assert [p.name for p in tmp_path.iterdir()] == ['s.pkl']


def _fid_by_eigenvalues(mu1, s1, mu2, s2):
    # Tr((S1 S2)^(1/2)) = sum of square roots of the eigenvalues of S1 S2 (real, non-negative).
    eig = np.linalg.eigvals(s1.astype(np.float64) @ s2.astype(np.float64))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.abs(eig.real))))


def test_fid_matches_independent_computation_and_grows_with_drift():
    real = _features(400, 8)
    mu_r, s_r = real.mean(0), np.cov(real, rowvar=False)
    values = []
    for shift in (0.0, 0.5, 1.0, 2.0):
        gen = _features(400, 8, shift=shift, seed=1)
        mu_g, s_g = gen.mean(0), np.cov(gen, rowvar=False)
        fid = fid_mod.frechet_distance(mu_g, s_g, mu_r, s_r)
        assert fid == pytest.approx(_fid_by_eigenvalues(mu_g, s_g, mu_r, s_r), rel=1e-6, abs=1e-8)
        sqrtm = np.real(scipy.linalg.sqrtm(s_g.astype(np.float64) @ s_r.astype(np.float64)))
        direct = np.sum((mu_g - mu_r) ** 2) + np.trace(s_g + s_r - 2 * sqrtm)
        assert fid == pytest.approx(direct, rel=1e-6, abs=1e-9)
        values.append(fid)
    assert fid_mod.frechet_distance(mu_r, s_r, mu_r, s_r) == pytest.approx(0, abs=1e-6)
    assert values == sorted(values) and values[-1] > values[0] + 1


def _mmd_direct(x, y):
    n = x.shape[1]
    k = lambda a, b: (a @ b / n + 1) ** 3
    m = x.shape[0]
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_mmd():
    real = _features(30, 5).astype(np.float64)
    gen = _features(30, 5, shift=0.7, seed=2).astype(np.float64)
    # One subset holding every sample: the estimate no longer depends on the random draw.
    kid = kid_mod.kernel_distance(real, gen, num_subsets=1, max_subset_size=30)
    assert kid == pytest.approx(_mmd_direct(gen, real), rel=1e-9)
    near = kid_mod.kernel_distance(real, _features(30, 5, shift=0.1, seed=3), num_subsets=5, max_subset_size=30)
    far = kid_mod.kernel_distance(real, _features(30, 5, shift=3.0, seed=3), num_subsets=5, max_subset_size=30)
    assert near < far


def test_precision_recall_known_answers():
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10)), -1).reshape(-1, 2).astype(np.float32)
    kwargs = dict(nhood_size=3, row_batch_size=17, col_batch_size=23)
    assert pr_mod.precision_recall(grid, grid, **kwargs) == (1.0, 1.0)
    p, r = pr_mod.precision_recall(grid, grid + 1000, **kwargs)
    assert p == 0.0 and r == 0.0
    half = np.concatenate([grid[:50], grid[50:] + 1000])  # Half the samples on the real manifold.
    p, r = pr_mod.precision_recall(grid, half, **kwargs)
    assert p == pytest.approx(0.5)
    assert 0.4 <= r <= 0.7  # Only the reals covered by the on-manifold half are recalled.


def test_inception_score_known_answers():
    k = 10
    one_hot = np.eye(k)[np.arange(100) % k] * (1 - 1e-12) + 1e-13
    mean, std = is_mod.inception_score(one_hot, num_splits=5)
    assert mean == pytest.approx(k, rel=1e-6) and std == pytest.approx(0, abs=1e-6)
    uniform = np.full([100, k], 1.0 / k)
    assert is_mod.inception_score(uniform, num_splits=5)[0] == pytest.approx(1.0)


def test_ppl_filtered_mean_drops_outliers():
    dist = np.concatenate([np.full(990, 2.0), np.full(5, 1e9), np.full(5, -1e9)])
    assert ppl_mod.filtered_mean(dist) == pytest.approx(2.0)


def test_slerp_endpoints():
    a, b = torch.randn(3, 8), torch.randn(3, 8)
    zero = torch.zeros(3, 1)
    assert torch.allclose(ppl_mod.slerp(a, b, zero), a / a.norm(dim=1, keepdim=True), atol=1e-6)
    assert torch.allclose(ppl_mod.slerp(a, b, zero + 1), b / b.norm(dim=1, keepdim=True), atol=1e-5)

# ----------------------------------------------------------------------------
# Reference image transforms.


def _smooth_image(n=2, size=32):
    x = torch.linspace(-1, 1, size)
    return (torch.sin(3 * x)[None, :] * torch.cos(2 * x)[:, None] + 0.3 * torch.cos(5 * x)[None, :])[None, None].repeat(n, 3, 1, 1)


def test_integer_translation_is_a_shift_with_mask():
    img = _smooth_image()
    out, mask = equivariance.translate_image(img, 3.0, -2.0)
    expected = torch.roll(img, shifts=(-2, 3), dims=(2, 3))
    assert torch.equal(out * mask, expected * mask)
    assert mask.float().mean().item() == pytest.approx((32 - 3) * (32 - 2) / 32 ** 2)


def test_fractional_translation_composes():
    img = _smooth_image()
    half, m1 = equivariance.translate_image(img, 0.5, 0.0)
    twice, m2 = equivariance.translate_image(half, 0.5, 0.0)
    whole, _ = equivariance.translate_image(img, 1.0, 0.0)
    mask = (m2 & torch.roll(m1, 1, dims=3)).expand_as(img)
    assert ((twice - whole).abs() * mask).max() < 2e-2


def test_rotation_reference():
    img = _smooth_image()
    same, mask = equivariance.rotate_image(img, 0.0)
    assert mask.any() and ((same - img).abs() * mask).max() < 1e-3
    quarter, mask = equivariance.rotate_image(img, np.pi / 2)
    ref = torch.rot90(img, 1, dims=[2, 3])  # The sense of rotation_matrix in image (row-down) coordinates.
    assert ((quarter - ref).abs() * mask).max() < 1e-3

# ----------------------------------------------------------------------------
# Equivariance metrics on hand-made generators.


class _Input(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer('transform', torch.eye(3))


class _Synthesis(torch.nn.Module):
    """Renders a band-limited function of the input coordinates through `input.transform`.

    With `sticky`, a fixed pattern glued to the pixel grid is added, breaking equivariance.
    """

    def __init__(self, resolution, sticky):
        super().__init__()
        self.input = _Input()
        self.resolution = resolution
        self.sticky = sticky

    def forward(self, ws, noise_mode='const', force_fp32=True):
        r = self.resolution
        coords = (torch.arange(r, dtype=torch.float64) + 0.5) / r - 0.5  # Pixel centres; the image spans one unit.
        yy, xx = torch.meshgrid(coords, coords, indexing='ij')
        pts = torch.stack([xx, yy, torch.ones_like(xx)], dim=-1) @ self.transform_t().T
        x, y = pts[..., 0], pts[..., 1]
        a = ws[:, 0, :3].to(torch.float64)  # Per-sample amplitudes.
        img = (a[:, 0, None, None] * torch.sin(2 * np.pi * (2 * x + y))
               + a[:, 1, None, None] * torch.cos(2 * np.pi * (x - 3 * y))
               + a[:, 2, None, None] * torch.sin(2 * np.pi * 4 * y)) * 0.3
        img = img[:, None].repeat(1, 3, 1, 1)
        if self.sticky:
            img = img + 0.5 * torch.sign(torch.sin(torch.arange(r, dtype=torch.float64) * 2.1))[None, None, None, :]
        return img.to(torch.float32)

    def transform_t(self):
        return self.input.transform.to(torch.float64)


class _Mapping(torch.nn.Module):
    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None):
        return z[:, None, :].repeat(1, 2, 1)


class _HandMadeG(torch.nn.Module):
    def __init__(self, resolution=32, sticky=False):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.img_resolution, self.img_channels = 4, 0, 4, resolution, 3
        self.mapping = _Mapping()
        self.synthesis = _Synthesis(resolution, sticky)


def _eq_metrics(G, **kinds):
    opts = metric_utils.MetricOptions(G=G, device=torch.device('cpu'))
    return equivariance.compute_equivariance_metrics(opts, num_samples=8, batch_size=4, **kinds)


def test_equivariant_generator_scores_high_and_sticky_one_low():
    good = _eq_metrics(_HandMadeG(), compute_eqt_int=True, compute_eqt_frac=True, compute_eqr=True)
    bad = _eq_metrics(_HandMadeG(sticky=True), compute_eqt_int=True, compute_eqt_frac=True, compute_eqr=True)
    eqt_int, eqt_frac, eqr = good
    assert eqt_int > 100  # Exact up to float rounding.
    assert eqt_frac > 30 and eqr > 30  # Limited by the resampling of the reference only.
    for g, b in zip(good, bad):
        assert b < 20 and g > b + 15


def test_equivariance_needs_an_input_transform():
    G = _HandMadeG()
    del G.synthesis.input
    with pytest.raises(metric_utils.MetricError, match='input transform'):
        _eq_metrics(G, compute_eqt_int=True)


def test_stylegan3_fixture_network_gives_finite_equivariance():
    from tool_networks import fixture_generator
    G, _ = fixture_generator('sg3t-32-uncond')
    eqt_int, eqt_frac, eqr = _eq_metrics(G, compute_eqt_int=True, compute_eqt_frac=True, compute_eqr=True)
    assert all(np.isfinite(v) for v in (eqt_int, eqt_frac, eqr))
    # An alias-free generator is translation-equivariant far beyond a generator with sticky textures.
    sticky = _eq_metrics(_HandMadeG(sticky=True), compute_eqt_int=True)[0]
    assert eqt_int > sticky + 10
    print(f'sg3t-32 fixture: EQ-T {eqt_int:.1f} dB, EQ-T frac {eqt_frac:.1f} dB, EQ-R {eqr:.1f} dB')
