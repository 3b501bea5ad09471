"""KID, precision/recall and PPL against float64 brute force, torchmetrics, numpy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchmetrics.image.kid import KernelInceptionDistance

from metrics_testing import PixelDistance
from stylegan.metrics.generate import LabelSampler
from stylegan.metrics.kid import kernel_inception_distance, mmd2_unbiased
from stylegan.metrics.ppl import path_distances, prepare_images, slerp_directions, trimmed_mean
from stylegan.metrics.precision_recall import precision_recall


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


def _mmd2_loops(x: np.ndarray, y: np.ndarray) -> float:
    m, d = x.shape
    k = lambda a, b: (float(np.dot(a, b)) / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_with_one_full_subset_is_the_unbiased_mmd_of_explicit_sums():
    real, fake = _features(40, 5, 0), _features(40, 5, 1, shift=0.3)
    expected = _mmd2_loops(fake.numpy(), real.numpy())
    assert mmd2_unbiased(fake, real) == pytest.approx(expected, rel=1e-10)
    # a full-size subset is a permutation of all features: the same value, whatever the draw
    assert kernel_inception_distance(real, fake, num_subsets=3, max_subset_size=1000) == pytest.approx(expected,
                                                                                                      rel=1e-10)


def test_kid_agrees_with_torchmetrics_on_the_same_features():
    class Flatten(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1).double()

    g = torch.Generator().manual_seed(3)
    real, fake = torch.rand(60, 6, 1, 1, generator=g), torch.rand(60, 6, 1, 1, generator=g) * 0.7 + 0.2
    tm = KernelInceptionDistance(feature=Flatten(), subsets=1, subset_size=60, normalize=True)
    tm.update(real, real=True)
    tm.update(fake, real=False)
    mean, _ = tm.compute()
    ours = kernel_inception_distance(real.flatten(1).double(), fake.flatten(1).double(), num_subsets=1)
    assert ours == pytest.approx(float(mean), rel=1e-6)


def test_kid_subsets_are_reproducible_and_separate_distributions():
    real, same, other = _features(300, 8, 0), _features(300, 8, 1), _features(300, 8, 2, shift=0.5)
    a = kernel_inception_distance(real, other, num_subsets=10, max_subset_size=100, seed=5)
    assert a == kernel_inception_distance(real, other, num_subsets=10, max_subset_size=100, seed=5)
    near = kernel_inception_distance(real, same, num_subsets=10, max_subset_size=100, seed=5)
    assert abs(near) < 0.05 * a


def _pr_brute(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def cover(probes, manifold):
        dm = np.sqrt(((manifold[:, None, :] - manifold[None, :, :]) ** 2).sum(-1))
        radii = np.sort(dm, axis=1)[:, k]  # column 0 is the point itself
        dp = np.sqrt(((probes[:, None, :] - manifold[None, :, :]) ** 2).sum(-1))
        return float(np.mean([(dp[i] <= radii).any() for i in range(len(probes))]))

    return cover(fake, real), cover(real, fake)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_matches_brute_force_with_any_batching(k):
    real, fake = _features(90, 4, 0), _features(70, 4, 1, shift=0.8) * 1.3
    expected = _pr_brute(real.numpy(), fake.numpy(), k)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1  # a case that exercises both outcomes
    for rows, cols in [(10_000, 10_000), (7, 5), (1, 90)]:
        assert precision_recall(real, fake, k, rows, cols, dtype=torch.float64) == expected
    p32, r32 = precision_recall(real, fake, k)
    assert abs(p32 - expected[0]) <= 2 / 70 and abs(r32 - expected[1]) <= 2 / 90


def test_precision_recall_extremes():
    real = _features(50, 3, 0)
    assert precision_recall(real, real.clone(), 3, dtype=torch.float64) == (1.0, 1.0)
    assert precision_recall(real, real + 100, 3, dtype=torch.float64) == (0.0, 0.0)


@pytest.mark.parametrize("n", [2, 37, 100, 101, 1000, 4999])
def test_trimmed_mean_uses_numpy_lower_and_higher_percentiles(n):
    d = np.random.RandomState(n).lognormal(size=n)
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    expected = d[(d >= lo) & (d <= hi)].mean()
    assert trimmed_mean(torch.from_numpy(d)) == pytest.approx(expected, rel=1e-12)


def test_slerp_endpoints_and_constant_angular_speed():
    a, b = _features(5, 7, 0), _features(5, 7, 1)
    unit = lambda x: x / x.norm(dim=1, keepdim=True)  # noqa: E731
    angle = torch.acos((unit(a) * unit(b)).sum(1))
    assert torch.allclose(slerp_directions(a, b, torch.zeros(5, 1, dtype=torch.float64)), unit(a), atol=1e-12)
    assert torch.allclose(slerp_directions(a, b, torch.ones(5, 1, dtype=torch.float64)), unit(b), atol=1e-12)
    for t in (0.25, 0.6):
        s = slerp_directions(a, b, torch.full((5, 1), t, dtype=torch.float64))
        assert torch.allclose(s.norm(dim=1), torch.ones(5, dtype=torch.float64))
        assert torch.allclose(torch.acos((unit(a) * s).sum(1)), t * angle, atol=1e-10)


def test_prepare_images_area_downsamples_above_256_and_crops():
    img = torch.rand(2, 1, 512, 512) * 2 - 1
    out = prepare_images(img, crop=False)
    assert out.shape == (2, 3, 256, 256)
    assert torch.allclose(out[:, :1], (F.avg_pool2d(img, 2) + 1) * 127.5, atol=1e-4)
    assert torch.equal(out[:, 0], out[:, 2])
    small = torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.allclose(prepare_images(small, crop=True), (small[:, :, 24:56, 16:48] + 1) * 127.5)


class LinearG(torch.nn.Module):
    """ws = z M (2 copies), image = 127.5-scaled w A as 1x4x4: distances have closed forms. float64."""

    z_dim, c_dim, w_dim = 6, 0, 5

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.M = torch.randn(6, 5, generator=g, dtype=torch.float64)
        self.A = torch.randn(5, 16, generator=g, dtype=torch.float64)

    def mapping(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (z.double() @ self.M).unsqueeze(1).repeat(1, 2, 1)

    def synthesis(self, ws: torch.Tensor, noise_mode: str) -> torch.Tensor:
        assert noise_mode == "const"
        return (ws[:, 0] @ self.A).reshape(-1, 1, 4, 4)


def test_ppl_in_w_at_path_ends_is_the_squared_jacobian_norm_of_the_pair():
    """Linear G: lerp in W, d = |127.5 (w1 - w0) A|^2 / 16 per pair, for any epsilon."""
    G = LinearG()
    got = []
    for eps in (1e-4, 1e-2):
        runs = list(path_distances(G, PixelDistance(), 10, 4, 0, LabelSampler(None, 0), torch.device("cpu"),
                                   "w", "end", eps))
        got.append(torch.cat(runs))
    # the latents of batch b come from batch_seed(seed, b): redraw them for the closed form
    from stylegan.metrics.generate import batch_seed

    expected = []
    for b, n in [(0, 4), (1, 4), (2, 2)]:
        g = torch.Generator().manual_seed(batch_seed(0, b))
        z0, z1 = torch.randn(n, 6, generator=g), torch.randn(n, 6, generator=g)
        diff = (z1.double() - z0.double()) @ G.M @ G.A
        expected.append((127.5 * diff).square().mean(1))
    expected = torch.cat(expected)
    assert torch.allclose(got[0], expected, rtol=1e-7) and torch.allclose(got[1], expected, rtol=1e-7)


def test_ppl_in_z_follows_the_great_circle():
    """Z space, t = 0: the path's velocity is theta * u (u: unit direction from z0 towards z1 on the sphere)."""
    G = LinearG()
    got = torch.cat(list(path_distances(G, PixelDistance(), 6, 6, 1, LabelSampler(None, 0), torch.device("cpu"),
                                        "z", "end", 1e-5)))
    from stylegan.metrics.generate import batch_seed

    g = torch.Generator().manual_seed(batch_seed(1, 0))
    z0, z1 = torch.randn(6, 6, generator=g).double(), torch.randn(6, 6, generator=g).double()
    a, b = z0 / z0.norm(dim=1, keepdim=True), z1 / z1.norm(dim=1, keepdim=True)
    cos = (a * b).sum(1, keepdim=True)
    u = b - cos * a
    velocity = torch.acos(cos) * u / u.norm(dim=1, keepdim=True)
    expected = (127.5 * velocity @ G.M @ G.A).square().mean(1)
    assert torch.allclose(got, expected, rtol=1e-3)
    assert math.isfinite(trimmed_mean(got))
