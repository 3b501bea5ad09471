"""Lazy regularization (StyleGAN2 Sec. 3.1): regularize every k minibatches and correct Adam for it.

A regularization term evaluated every ``interval`` steps is multiplied by ``interval``; the optimizer's learning
rate and betas are scaled by c = interval / (interval + 1) (lr * c, beta ** c) so that the combined main+reg
updates keep the intended step size and momentum (official ``training_loop``, "mb_ratio").
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def lazy_ratio(interval: int | None) -> float:
    """c = interval / (interval + 1); 1 when regularization runs with the main loss (interval None or 1)."""
    return 1.0 if interval is None or interval <= 1 else interval / (interval + 1)


def lazy_adam(
    params: Iterable[torch.nn.Parameter],
    lr: float,
    betas: tuple[float, float],
    eps: float,
    interval: int | None,
) -> torch.optim.Adam:
    """Adam with the lazy-regularization correction applied to lr and betas."""
    c = lazy_ratio(interval)
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c), eps=eps)
