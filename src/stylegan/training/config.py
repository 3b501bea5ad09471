"""Typed training hyper-parameters, instantiated from the ``loss`` and ``model.optim`` config groups."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..preflight import ConfigError  # one class for every config refusal (stylegan-train: error: ..., exit code 2)
from .lazy import LazyRegularizer

__all__ = ["ConfigError", "LossConfig", "OptimConfig"]


@dataclass
class LossConfig:
    """StyleGAN2 objective (Appendix B). Intervals of 1 (or ``lazy=False``) regularize every step (configs A-B).
    ``gan``: ``logistic`` (non-saturating, the paper's) or ``wgan_gp`` (StyleGAN1's CelebA-HQ / ProGAN loss with
    its gradient penalty ``wgan_lambda``, target and drift ``wgan_epsilon``: losses/wgan.py)."""

    gan: str = "logistic"
    wgan_lambda: float = 10.0
    wgan_target: float = 1.0
    wgan_epsilon: float = 0.001
    r1_gamma: float = 10.0
    d_reg_interval: int = 16
    pl_weight: float = 2.0
    g_reg_interval: int = 4
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    style_mixing_prob: float = 0.9
    lazy: bool = True

    def __post_init__(self) -> None:
        for key in ("d_reg_interval", "g_reg_interval", "pl_batch_shrink"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"loss.{key} must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.style_mixing_prob <= 1:
            raise ValueError(f"loss.style_mixing_prob must be in [0, 1], got {self.style_mixing_prob}")
        if self.r1_gamma < 0 or self.pl_weight < 0:
            raise ValueError("loss.r1_gamma and loss.pl_weight must be >= 0")
        if self.gan not in ("logistic", "wgan_gp"):
            raise ValueError(f"loss.gan must be 'logistic' or 'wgan_gp', got {self.gan!r}")
        if self.wgan_lambda < 0 or self.wgan_epsilon < 0 or self.wgan_target <= 0:
            raise ValueError("loss.wgan_lambda and loss.wgan_epsilon must be >= 0 and loss.wgan_target > 0")

    @property
    def path_length(self) -> LazyRegularizer:
        """G's regularizer (Eq. 4): weight pl_weight, every g_reg_interval minibatches (1 when not lazy)."""
        return LazyRegularizer(self.pl_weight, self.g_reg_interval if self.lazy else 1)

    @property
    def r1(self) -> LazyRegularizer:
        """D's regularizer (R1): weight r1_gamma, every d_reg_interval minibatches (1 when not lazy)."""
        return LazyRegularizer(self.r1_gamma, self.d_reg_interval if self.lazy else 1)


@dataclass
class OptimConfig:
    g_lr: float = 0.002
    d_lr: float = 0.002
    betas: tuple[float, float] = field(default=(0.0, 0.99))
    eps: float = 1e-8
