"""Kernel Inception Distance (Binkowski et al. 2018), as in the official ``metrics/kernel_inception_distance.py``.

Unbiased MMD^2 with the cubic polynomial kernel ``k(x, y) = (x . y / d + 1)^3``, averaged over ``num_subsets``
random subsets of ``m = min(n_real, n_gen, max_subset_size)`` features drawn without replacement from each side.
Computed in float64; the subsets come from a seeded generator, so the value is reproducible.
"""

from __future__ import annotations

import torch


def _poly_kernel(a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    return (a @ b.T / dim + 1) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 between equally sized feature sets ``x``, ``y`` ``[m, d]`` with the cubic kernel."""
    x, y = x.to(torch.float64), y.to(torch.float64)
    m, d = x.shape
    if y.shape != x.shape or m < 2:
        raise ValueError(f"need two feature sets of the same shape with >= 2 rows, got {x.shape} and {y.shape}")
    a = _poly_kernel(x, x, d) + _poly_kernel(y, y, d)
    b = _poly_kernel(x, y, d)
    return float((a.sum() - a.diagonal().sum()) / (m * (m - 1)) - 2 * b.sum() / (m * m))


def kernel_inception_distance(
    real: torch.Tensor, gen: torch.Tensor, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0
) -> float:
    """KID of generated features ``gen`` against ``real`` (the reported value, not x1000)."""
    m = min(len(real), len(gen), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs >= 2 features on each side, got {len(real)} real and {len(gen)} generated")
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = gen[torch.randperm(len(gen), generator=g)[:m]]
        y = real[torch.randperm(len(real), generator=g)[:m]]
        total += mmd2_unbiased(x, y)
    return total / num_subsets
