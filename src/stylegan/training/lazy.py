"""Lazy regularization (StyleGAN2 Sec. 3.1): regularize every k minibatches and correct Adam for it.

A regularization term evaluated every ``interval`` steps is multiplied by ``interval``; the optimizer's learning
rate and betas are scaled by c = interval / (interval + 1) (lr * c, beta ** c) so that the combined main+reg
updates keep the intended step size and momentum (official ``training_loop``, "mb_ratio").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LazyRegularizer:
    """When a regularizer runs and with what weight: every ``interval`` minibatches, its loss multiplied by
    ``interval``; with interval 1 (``loss.lazy=false``, configs A-B) it shares the main loss's backward and step
    (official "Gboth"/"Dboth"). A disabled one (``weight`` 0) never runs, but its optimizer keeps the lazy
    correction of its interval, as the official loops do whenever a reg interval is set: stylegan2-ada-pytorch's
    ``--cfg=cifar`` (path length off, ``G_reg_interval`` 4: G lr 0.0025 x 0.8) and the TF StyleGAN2 config C
    (``lazy_regularization`` with path length off). No correction: interval 1 (stylegan3's configs without path
    length set ``G_reg_interval`` None: ``loss.g_reg_interval=1``)."""

    weight: float
    interval: int

    @property
    def enabled(self) -> bool:
        return self.weight > 0

    def due(self, iteration: int) -> bool:
        return self.enabled and iteration % self.interval == 0

    @property
    def with_main(self) -> bool:
        """Main loss and regularizer in one optimizer step."""
        return self.interval == 1

    @property
    def adam_interval(self) -> int | None:
        """The interval to correct Adam for (:func:`lazy_adam`; 1: none), also when the regularizer is disabled."""
        return self.interval


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
    """Adam with the lazy-regularization correction applied to lr and betas. Fused (one kernel per step, and it
    can drop a non-finite step on the device: guard.py) where torch has it for the parameters' device."""
    c = lazy_ratio(interval)
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c), eps=eps, fused=fused or None)
