"""Style mixing regularization (StyleGAN Sec. 3.1): with probability p, switch to a second latent's ws at a
random layer cutoff, so that the network cannot assume adjacent styles are correlated."""

from __future__ import annotations

import torch

from ..networks import Generator


def mix_styles(G: Generator, ws: torch.Tensor, z: torch.Tensor, c: torch.Tensor, prob: float) -> torch.Tensor:
    """Replace ``ws[:, cutoff:]`` by the ws of fresh latents with probability ``prob`` (one cutoff per batch).

    RNG use follows the official ``run_G``: cutoff, coin, then the second z (always drawn).
    """
    if prob <= 0:
        return ws
    cutoff = int(torch.empty([], dtype=torch.int64, device=ws.device).random_(1, ws.shape[1]))
    if float(torch.rand([], device=ws.device)) >= prob:
        cutoff = ws.shape[1]
    ws2 = G.mapping(torch.randn_like(z), c, update_emas=False)
    if cutoff == ws.shape[1]:
        return ws
    return torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
