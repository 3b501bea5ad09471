"""The StyleGAN2 paper's analyses as measurements of any generator (``stylegan analyze``):

- :mod:`.droplets`: the "water droplet" artifact (Sec. 2, Fig. 1): per synthesis layer, how much one spike
  dominates each feature map and whether the spikes of all channels sit at one place.
- :mod:`.contributions`: the contribution of each resolution's ToRGB to the image of a skip generator (Sec. 4.1,
  Fig. 8), from one model or against kimg from a run's snapshot checkpoints.

Only torch and numpy (matplotlib for the figures); nothing here imports training.
"""

from __future__ import annotations

import torch

from ..networks import Generator


def latents(G: Generator, seeds: list[int], class_idx: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, c) for ``seeds`` by the official seed convention (``stylegan generate``'s), one-hot c if conditional."""
    from ..tools.generate import class_labels, seed_latents

    return seed_latents(seeds, G.z_dim), class_labels(G, class_idx, len(seeds))
