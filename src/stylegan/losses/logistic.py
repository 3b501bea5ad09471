"""Non-saturating logistic GAN loss (Goodfellow 2014; StyleGAN2 Appendix B uses it with R1 and path length)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """G main: ``-log sigmoid(D(G(z)))`` = softplus(-D(G(z))), mean over the batch."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D main: ``-log(1 - sigmoid(D(G(z)))) - log sigmoid(D(x))``, each half a mean over its batch."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
