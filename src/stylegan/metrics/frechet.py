"""Frechet distance between Gaussian fits of feature sets (FID: Heusel et al. 2017, Eq. 6).

``d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``, in float64. The trace of the matrix square root is
taken as ``sum sqrt(eig(S1^(1/2) S2 S1^(1/2)))``: that matrix is symmetric PSD, so ``eigh`` is exact and
stable even for rank-deficient covariances (fewer samples than features), with no complex parts to discard.
"""

from __future__ import annotations

import torch


class FeatureStats:
    """Running mean and covariance of feature vectors in float64; independent of how they are batched."""

    def __init__(self, dim: int) -> None:
        self.dim, self.n = dim, 0
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, features: torch.Tensor) -> None:
        x = features.detach().reshape(len(features), -1).to(device="cpu", dtype=torch.float64)
        if x.shape[1] != self.dim:
            raise ValueError(f"features have {x.shape[1]} dimensions, expected {self.dim}")
        self.n += len(x)
        self.sum += x.sum(dim=0)
        self.outer += x.T @ x

    def mean_cov(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and unbiased covariance (N - 1, as ``numpy.cov``)."""
        if self.n < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {self.n}")
        mu = self.sum / self.n
        cov = (self.outer - self.n * torch.outer(mu, mu)) / (self.n - 1)
        return mu, cov


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Squared Frechet distance between N(mu1, cov1) and N(mu2, cov2), computed in float64."""
    mu1, cov1, mu2, cov2 = (t.to(torch.float64) for t in (mu1, cov1, mu2, cov2))
    root1 = _sqrt_psd(cov1)
    middle = root1 @ cov2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    d2 = (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * trace_sqrt
    return float(d2)
