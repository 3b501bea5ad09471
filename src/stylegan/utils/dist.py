"""This process's place in a torch.distributed process group: the one lookup that training, data and metrics share
(metrics never import training, so it lives here)."""

from __future__ import annotations

import torch.distributed as dist


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialized default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
