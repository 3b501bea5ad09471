"""R1 regularization (Mescheder et al. 2018, Eq. 9): ``gamma/2 * E_x[||grad_x D(x)||^2]`` on real images.

StyleGAN2 Sec. 3.1 evaluates it lazily, every ``D_reg_interval`` minibatches, scaled by the interval.
"""

from __future__ import annotations

import torch

from .precision import at_least_float32


def r1_penalty(real_img: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||d D(x) / d x||^2`` [N]; ``real_img`` must require grad and ``real_logits = D(real_img)``.

    The graph is kept (``create_graph``) so that the penalty can be back-propagated into D (double backward).
    """
    (grads,) = torch.autograd.grad(real_logits.sum(), real_img, create_graph=True)
    return _squared_norms(grads)


def r1_penalty_of(d, real_img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d(real_img), r1_penalty)`` with the input gradient taken by ``torch.func.vjp`` inside one function of the
    image (``d``: x -> logits), so that ``torch.compile`` captures the pass and the penalty's double backward whole
    (AOTAutograd refuses a second backward through a compiled graph). The same values as :func:`r1_penalty`."""
    logits, vjp = torch.func.vjp(d, real_img)
    (grads,) = vjp(torch.ones_like(logits))
    return logits, _squared_norms(grads)


def _squared_norms(grads: torch.Tensor) -> torch.Tensor:
    """``||d D(x) / d x||^2`` per sample, in at least float32."""
    return at_least_float32(grads).square().sum(dim=[1, 2, 3])


def r1_loss(penalty: torch.Tensor, gamma: float) -> torch.Tensor:
    """``mean(penalty) * gamma / 2``."""
    return penalty.mean() * (gamma / 2)
