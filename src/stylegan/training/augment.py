"""Differentiable augmentation of D's inputs, for small datasets (Zhao et al. 2020 "DiffAugment"; Karras et al.
2020 "ADA" use the same hook: every image D sees, real or fake, is augmented, and gradients flow through).

Without it, D overfits a few thousand images and G collapses to a few modes. Applied to fakes in G main and
D main and to reals in D main and R1 (the R1 gradient is taken w.r.t. the un-augmented reals, as official).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DiffAugment(nn.Module):
    """Random integer translation by up to ``translation * size`` pixels (border replicated) and a random cutout
    square of side ``cutout * size`` filled with ``fill``, drawn independently per sample."""

    def __init__(self, translation: float = 0.125, cutout: float = 0.5, fill: float = -1.0) -> None:
        super().__init__()
        if not (0 <= translation < 1 and 0 <= cutout < 1):
            raise ValueError(f"augment.translation and augment.cutout must be in [0, 1), got {translation}, {cutout}")
        self.translation, self.cutout, self.fill = translation, cutout, fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, _, H, W = x.shape
        if self.translation > 0:
            p = int(H * self.translation + 0.5)
            dy, dx = torch.randint(-p, p + 1, [2, N, 1, 1], device=x.device)
            rows = (torch.arange(H, device=x.device)[None, :, None] + dy + p).expand(N, H, W)
            cols = (torch.arange(W, device=x.device)[None, None, :] + dx + p).expand(N, H, W)
            padded = F.pad(x, [p, p, p, p], mode="replicate")
            batch = torch.arange(N, device=x.device)[:, None, None].expand(N, H, W)
            x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
        if self.cutout > 0:
            s = int(H * self.cutout + 0.5)
            cy, cx = torch.randint(0, H + 1 - s, [N, 1, 1], device=x.device), torch.randint(0, W + 1 - s, [N, 1, 1],
                                                                                             device=x.device)
            yy, xx = torch.arange(H, device=x.device)[None, :, None], torch.arange(W, device=x.device)[None, None, :]
            hole = ((yy >= cy) & (yy < cy + s) & (xx >= cx) & (xx < cx + s)).unsqueeze(1)
            x = torch.where(hole, torch.full_like(x, self.fill), x)
        return x

    def extra_repr(self) -> str:
        return f"translation={self.translation}, cutout={self.cutout}, fill={self.fill}"
