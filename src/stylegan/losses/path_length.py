"""Path length regularization (StyleGAN2 Sec. 3.2, Eq. 4).

``E_{w,y}( ||J_w^T y||_2 - a )^2`` with y ~ N(0, I) / sqrt(H*W) and ``a`` an exponential moving average of the
lengths. J_w^T y is obtained with one backward pass: grad_w (g(w) . y). The lengths are taken w.r.t. all
``num_ws`` copies of w (sum over w_dim, mean over num_ws, sqrt), as in the official code.
"""

from __future__ import annotations

import math

import torch

from .precision import at_least_float32


def path_length_noise(img: torch.Tensor, normal: torch.Tensor | None = None) -> torch.Tensor:
    """y ~ N(0, I) / sqrt(H * W): the random image-space direction of Eq. 4 (``normal``: the N(0, I) draw to
    scale, default ``randn_like(img)``)."""
    if normal is None:
        normal = torch.randn_like(img)
    return normal / math.sqrt(img.shape[2] * img.shape[3])


def path_lengths(img: torch.Tensor, ws: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample ``||J_w^T y||`` [N] for ``img = synthesis(ws)``; differentiable (double backward)."""
    if noise is None:
        noise = path_length_noise(img)
    (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    return _lengths(grads)


def path_lengths_of(synthesis, ws: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """:func:`path_lengths` of ``synthesis(ws)`` with ``J_w^T y`` taken by ``torch.func.vjp`` inside one function of
    ``ws`` (``noise``: y, drawn beforehand), so that ``torch.compile`` captures synthesis and the double backward
    whole. The same values as ``path_lengths(synthesis(ws), ws, noise)``."""
    img, vjp = torch.func.vjp(lambda w: at_least_float32(synthesis(w)), ws)
    (grads,) = vjp(noise.to(img.dtype))
    return _lengths(grads)


def _lengths(grads: torch.Tensor) -> torch.Tensor:
    """``||J_w^T y||`` per sample from ``J_w^T y`` [N, num_ws, w_dim]: sum over w_dim, mean over num_ws, sqrt."""
    return at_least_float32(grads).square().sum(dim=2).mean(dim=1).sqrt()


def path_length_penalty(
    lengths: torch.Tensor,
    pl_mean: torch.Tensor,
    decay: float = 0.01,
    lengths_mean: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``((l - a')^2, a')`` with ``a' = a + decay * (mean(l) - a)``.

    ``a'`` is not detached inside the penalty (as the official code), so the gradient also flows through the
    batch mean. ``lengths_mean`` overrides ``mean(lengths)`` (e.g. the mean over all DDP ranks). The returned
    ``a'`` is detached: store it as the new running mean.
    """
    mean = lengths.mean() if lengths_mean is None else lengths_mean
    new_mean = pl_mean.to(mean.dtype).lerp(mean, decay)
    return (lengths - new_mean).square(), new_mean.detach()
