"""Feature statistics and the Frechet distance against closed forms for Gaussians."""
import numpy as np
import pytest
import torch

from infd.eval.frechet import FeatureStats, fid_of_stats, frechet_distance, has_scipy, trace_sqrt_product_eigh

NO_SCIPY = pytest.mark.skipif(not has_scipy(), reason="scipy is not installed (the eval extra)")
METHODS = [pytest.param("scipy", marks=NO_SCIPY), "eigh"]


def random_spd(rng, n, rank=None):
    a = rng.standard_normal((n, rank or n))
    return a @ a.T + (0 if rank else 0.1 * np.eye(n))


def test_feature_stats_match_numpy_in_chunks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 5)) * [1, 2, 3, 4, 5] + 1000.0  # a large offset: no cancellation
    stats = FeatureStats()
    for chunk in (x[:1], x[1:10], x[10:]):
        stats.add(torch.from_numpy(chunk))
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-9)
    assert stats.count == 37 and (stats.cov == stats.cov.T).all()
    as_float32 = FeatureStats()
    as_float32.add(torch.from_numpy(x[:20]).float())  # float32 features are accumulated in float64
    x32 = x[:20].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(as_float32.cov, np.cov(x32, rowvar=False), rtol=1e-9)


def test_feature_stats_reject_bad_input():
    stats = FeatureStats()
    with pytest.raises(ValueError, match="at least 2"):
        stats.mean
    stats.add(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        stats.cov
    with pytest.raises(ValueError, match="3 dimensions, earlier ones|4 dimensions"):
        stats.add(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        stats.add(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        stats.add(np.zeros(3))


@pytest.mark.parametrize("method", METHODS)
def test_diagonal_covariances_closed_form(method):
    # Commuting (diagonal) covariances: d^2 = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_scaled_covariance_closed_form(method):
    # Sigma_2 = c^2 Sigma_1 (not diagonal): (Sigma_1 Sigma_2)^(1/2) = c Sigma_1,
    # so d^2 = |dmu|^2 + (1 - c)^2 tr Sigma_1.
    rng = np.random.default_rng(2)
    sigma = random_spd(rng, 8)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    c = 1.7
    expected = ((mu1 - mu2) ** 2).sum() + (1 - c) ** 2 * np.trace(sigma)
    assert frechet_distance(mu1, sigma, mu2, c * c * sigma, method) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_non_commuting_2x2_closed_form(method):
    # For 2x2 M with positive eigenvalues: tr M^(1/2) = sqrt(tr M + 2 sqrt(det M)), with M = Sigma_1 Sigma_2.
    rng = np.random.default_rng(3)
    for _ in range(5):
        s1, s2 = random_spd(rng, 2), random_spd(rng, 2)
        assert abs((s1 @ s2 - s2 @ s1)).max() > 1e-3  # they do not commute
        m = s1 @ s2
        trace_root = np.sqrt(np.trace(m) + 2 * np.sqrt(np.linalg.det(m)))
        expected = np.trace(s1) + np.trace(s2) - 2 * trace_root
        got = frechet_distance(np.zeros(2), s1, np.zeros(2), s2, method)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_identical_gaussians_are_at_zero(method):
    rng = np.random.default_rng(4)
    sigma, mu = random_spd(rng, 16), rng.standard_normal(16)
    assert abs(frechet_distance(mu, sigma, mu, sigma, method)) < 1e-9 * np.trace(sigma)


@NO_SCIPY
def test_rank_deficient_covariances_agree_and_stay_finite():
    # Fewer samples than dimensions (as with small FID runs): singular covariances.
    rng = np.random.default_rng(5)
    s1, s2 = random_spd(rng, 40, rank=7), random_spd(rng, 40, rank=9)
    mu = np.zeros(40)
    by_scipy, by_eigh = frechet_distance(mu, s1, mu, s2, "scipy"), frechet_distance(mu, s1, mu, s2, "eigh")
    assert np.isfinite(by_scipy) and by_scipy > 0
    assert by_scipy == pytest.approx(by_eigh, rel=1e-5)
    assert trace_sqrt_product_eigh(s1, s1) == pytest.approx(np.trace(s1), rel=1e-6)  # sqrt of rounding noise


def test_fid_of_stats_and_argument_checks():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((50, 4))
    a, b = FeatureStats(), FeatureStats()
    a.add(x)
    b.add(x + [3.0, 0, 0, 0])  # a pure shift: only the mean term
    assert fid_of_stats(a, b) == pytest.approx(9.0, rel=1e-9)
    with pytest.raises(ValueError, match="one D"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(3), method="svd")
