"""Exponential moving average of the generator weights (Karras 2018 Sec. 4.1; StyleGAN2 uses G_ema throughout).

The half-life is ``ema_kimg`` thousand images; with ramp-up the half-life is capped at ``ema_rampup * cur_nimg``
early in training (official ``training_loop``). Buffers (w_avg, noise_const) are copied, not averaged.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(batch_size: int, cur_nimg: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """``0.5 ** (batch / ema_nimg)`` with ``ema_nimg = min(ema_kimg * 1000, cur_nimg * ema_rampup)``."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """``p_ema = p + beta * (p_ema - p)`` for parameters; buffers are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)
