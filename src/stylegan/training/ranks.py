"""The few collective operations of the training loop under DDP (no-ops in a single process)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..utils.dist import rank_world


def world_size() -> int:
    return rank_world()[1]


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over this rank's elements and all other ranks' (differentiable all-reduce under DDP)."""
    world = world_size()
    if world == 1:
        return x.mean()
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x.sum() / (x.numel() * world))


def gather_objects(obj) -> list:
    """``obj`` of every rank, in rank order (all ranks call this together; checkpoints are dumped on every rank)."""
    world = world_size()
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out
