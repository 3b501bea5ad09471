"""RNG state capture for exact resume, as plain tensors and ints (loadable with ``weights_only=True``)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_rng() -> dict[str, Any]:
    """torch (CPU and every CUDA device), numpy and python RNG states."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def per_rank_seed(shared_draw: int, rank: int, world_size: int) -> int:
    """A distinct, reproducible seed for each DDP rank from one value drawn identically on every rank (like the
    official ``random_seed * num_gpus + rank``), so ranks do not generate the same latents and noise."""
    return (shared_draw * world_size + rank) % (2**63 - 1)


def reseed_for_rank(rank: int, world_size: int) -> None:
    """Split the (identical) RNG stream of all ranks into one stream per rank; a no-op for a single process."""
    if world_size > 1:
        shared = int(torch.randint(0, 2**31 - 1, []))
        torch.manual_seed(per_rank_seed(shared, rank, world_size))
