"""Small injectable metric networks for the tests (importable as ``metrics_testing`` with tests/ on the path).

They are deliberately not the standard ones, so the metric names they produce must not say FID/KID.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PixelFeatures(nn.Module):
    """uint8 ``[N, 3, H, W]`` -> tanh of a fixed random projection of the 8x8 area-pooled image (``dim``-d)."""

    name = "pixproj"

    def __init__(self, dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        self.feature_dim = dim
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn(3 * 8 * 8, dim, generator=g) / 8)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.uint8 and x.ndim == 4 and x.shape[1] == 3, (x.dtype, x.shape)
        self.calls += 1
        pooled = F.adaptive_avg_pool2d(x.float() / 127.5 - 1, 8).flatten(1)
        return torch.tanh(pooled @ self.proj)


class PixelDistance(nn.Module):
    """Mean squared difference of two float image batches in [0, 255] (a stand-in for LPIPS)."""

    name = "pixmse"

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).square().flatten(1).mean(1)
