"""WGAN-GP (Gulrajani et al. 2017) as StyleGAN1 / ProGAN train with it (CelebA-HQ; official TF ``G_wgan`` and
``D_wgan_gp``): the Wasserstein critic loss, the gradient penalty on real/fake interpolates, and ProGAN's drift
term ``epsilon * D(x)^2`` that keeps the critic's output near 0. The paper's FFHQ baseline (config A) uses the
logistic loss instead (logistic.py)."""

from __future__ import annotations

import torch

from .precision import at_least_float32


def wgan_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """G: ``-D(G(z))``, mean over the batch."""
    return -fake_logits.mean()


def wgan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                            epsilon: float = 0.001) -> torch.Tensor:
    """D: ``D(G(z)) - D(x) + epsilon * D(x)^2``, mean over the batch."""
    return (fake_logits - real_logits + epsilon * real_logits.square()).mean()


def interpolates(real: torch.Tensor, fake: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``x + u (G(z) - x)`` per sample, ``u`` [N, 1, 1, 1] ~ U[0, 1); a leaf that requires grad, in float32 or
    wider, for :func:`gradient_penalty`."""
    real, fake = at_least_float32(real.detach()), at_least_float32(fake.detach())
    return torch.lerp(real, fake.to(real.dtype), u.to(real.dtype)).requires_grad_(True)


def gradient_penalty(mixed: torch.Tensor, mixed_logits: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """Per-sample ``(||d D(x^) / d x^|| - target)^2 / target^2`` [N] (graph kept: D's double backward); weight it
    with lambda (10)."""
    (grads,) = torch.autograd.grad(mixed_logits.sum(), mixed, create_graph=True)
    norms = at_least_float32(grads).square().sum(dim=[1, 2, 3]).sqrt()
    return (norms - target).square() / target**2
