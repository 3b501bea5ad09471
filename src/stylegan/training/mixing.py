"""Style mixing regularization (StyleGAN Sec. 3.1): with probability p, switch to a second latent's ws at a
random layer cutoff, so that the network cannot assume adjacent styles are correlated."""

from __future__ import annotations

import torch

from ..networks import Generator
from .draws import Draws


def mix_styles(
    G: Generator, ws: torch.Tensor, z: torch.Tensor, c: torch.Tensor, prob: float, draws: Draws | None = None
) -> torch.Tensor:
    """Replace ``ws[:, cutoff:]`` by the ws of fresh latents with probability ``prob`` (one cutoff per batch).

    RNG use follows the official ``run_G``: cutoff, coin, then the second z (always drawn). ``draws``: where the
    random numbers come from (default: the torch RNG of ``ws``'s device). The cutoff and the coin stay on the device
    (a layer mask selects the ws), so the step never waits for them.
    """
    if prob <= 0:
        return ws
    if draws is None:
        draws = Draws()
        draws.start(ws.device, rank=0, world_size=1)
    num_ws = ws.shape[1]
    cutoff = draws.randint(1, num_ws)
    cutoff = torch.where(draws.rand() < prob, cutoff, torch.full_like(cutoff, num_ws))
    ws2 = G.mapping(draws.normal(z.shape, z.dtype), c, update_emas=False)
    second = (torch.arange(num_ws, device=ws.device) >= cutoff)[None, :, None]
    return torch.where(second, ws2, ws)
