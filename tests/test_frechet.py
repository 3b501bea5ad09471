"""Frechet distance: closed forms, scipy, torchmetrics on the same features, batching, rank deficiency."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from stylegan.metrics import FeatureStats, frechet_distance


def _random_cov(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_diagonal_gaussians_closed_form():
    """Commuting covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2."""
    a, b = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64), torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, -1.0])
    expected = 1 + 0 + 9 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 0.5) ** 2
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_scaled_covariance_closed_form():
    """S2 = k^2 S1: d^2 = tr(S1) (1 - k)^2 for equal means, for any (non-diagonal) S1."""
    s1 = _random_cov(16, 0)
    expected = float(s1.trace()) * (1 - 3.0) ** 2
    assert frechet_distance(torch.zeros(16), s1, torch.zeros(16), 9 * s1) == pytest.approx(expected, rel=1e-10)


def test_against_scipy_sqrtm():
    s1, s2 = _random_cov(32, 1), _random_cov(32, 2)
    mu1, mu2 = torch.randn(32, dtype=torch.float64), torch.randn(32, dtype=torch.float64)
    a1, a2 = s1.numpy(), s2.numpy()
    ref = ((mu1 - mu2) ** 2).sum().item() + np.trace(a1 + a2 - 2 * scipy.linalg.sqrtm(a1 @ a2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-9)


def test_statistics_do_not_depend_on_batching():
    x = torch.randn(500, 12, generator=torch.Generator().manual_seed(3)) * 3 + 1
    whole, parts = FeatureStats(12), FeatureStats(12)
    whole.update(x)
    for chunk in x.split(7):
        parts.update(chunk)
    (m1, c1), (m2, c2) = whole.mean_cov(), parts.mean_cov()
    torch.testing.assert_close(m1, m2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c1, c2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c1.numpy(), np.cov(x.double().numpy(), rowvar=False), rtol=1e-10)


def test_agrees_with_torchmetrics_on_the_same_features():
    class Flatten(torch.nn.Module):
        num_features = 6

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1).double()

    g = torch.Generator().manual_seed(4)
    real, fake = torch.rand(400, 6, 1, 1, generator=g), torch.rand(300, 6, 1, 1, generator=g) * 0.6 + 0.1
    tm = FrechetInceptionDistance(feature=Flatten(), normalize=True)
    tm.update(real, real=True)
    tm.update(fake, real=False)
    a, b = FeatureStats(6), FeatureStats(6)
    a.update(real.flatten(1))
    b.update(fake.flatten(1))
    assert frechet_distance(*a.mean_cov(), *b.mean_cov()) == pytest.approx(tm.compute().item(), rel=1e-6)


def test_rank_deficient_covariances_are_stable():
    """Fewer samples than features (singular covariances): finite, >= 0, and 0 for identical sets."""
    x = torch.randn(20, 64, generator=torch.Generator().manual_seed(5))
    s = FeatureStats(64)
    s.update(x)
    mu, cov = s.mean_cov()
    # the 45 null eigenvalues carry rounding noise ~1e-16 * |S|, which sqrt amplifies to ~1e-8 each: the result
    # is ~2e-6 (scipy.linalg.sqrtm gives the same, plus imaginary parts); bound it relative to tr(S) ~ 59
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-7 * float(cov.trace())
    y = FeatureStats(64)
    y.update(x + 0.5)
    d = frechet_distance(mu, cov, *y.mean_cov())
    assert d == pytest.approx(64 * 0.25, abs=1e-7 * float(cov.trace()))  # a pure mean shift of 0.5 everywhere


def test_bad_input():
    s = FeatureStats(4)
    with pytest.raises(ValueError, match="expected 4"):
        s.update(torch.zeros(3, 5))
    s.update(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="at least 2"):
        s.mean_cov()
