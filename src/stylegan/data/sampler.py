"""An endless, seeded, resumable sampler that gives each DDP rank its own shard of every epoch.

All ranks walk one global stream: epoch ``e`` is a permutation of ``range(num_samples)`` drawn from
``(seed, e)``, and epochs follow each other without a break. Rank ``r`` of ``W`` takes the stream
positions ``g0 + r, g0 + r + W, g0 + r + 2W, ...`` where ``g0`` is the saved position, so within an
epoch the shards are disjoint and together cover the data. The position is global, so a run can resume
with a different world size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from .errors import DatasetError


class InfiniteSampler(Sampler[int]):
    """Endless index stream; ``state_dict()`` holds ``seed``, ``epoch`` and ``position`` (within the epoch).

    Iterating yields this rank's indices from the current position on and advances the position as it goes
    (by ``world_size`` global samples per index, because all ranks step together).
    """

    def __init__(
        self, num_samples: int, rank: int = 0, world_size: int = 1, shuffle: bool = True, seed: int = 0
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"InfiniteSampler needs at least one sample, got num_samples={num_samples}")
        self.num_samples = int(num_samples)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self.position = 0
        self.rank = 0
        self.world_size = 1
        self.set_distributed(rank, world_size)
        self._perms: dict[int, np.ndarray] = {}

    def set_distributed(self, rank: int, world_size: int) -> None:
        """Choose this process's shard: ``rank`` in ``[0, world_size)``."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid rank {rank} for world size {world_size}")
        self.rank, self.world_size = int(rank), int(world_size)

    @property
    def global_position(self) -> int:
        """Samples of the global stream consumed so far (all ranks together)."""
        return self.epoch * self.num_samples + self.position

    def _permutation(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:
            if self.shuffle:
                perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
            else:
                perm = np.arange(self.num_samples)
            if len(self._perms) >= 2:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = perm
        return perm

    def index_at(self, offset: int) -> int:
        """The index this rank yields ``offset`` steps after the current position (which is unchanged)."""
        g = self.global_position + offset * self.world_size + self.rank
        epoch, pos = divmod(g, self.num_samples)
        return int(self._permutation(epoch)[pos])

    def advance(self, steps: int) -> None:
        """Move the position on by ``steps`` indices of every rank (``steps * world_size`` global samples)."""
        g = self.global_position + int(steps) * self.world_size
        self.epoch, self.position = divmod(g, self.num_samples)

    def __iter__(self) -> Iterator[int]:
        while True:
            index = self.index_at(0)
            self.advance(1)
            yield index

    def state_dict(self) -> dict[str, Any]:
        """Seed, epoch and position within the epoch, plus the dataset size they refer to."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "num_samples": self.num_samples,
            "shuffle": self.shuffle,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved state; refuses one saved for a dataset of another size."""
        num = int(state.get("num_samples", self.num_samples))
        if num != self.num_samples:
            raise DatasetError(
                f"cannot resume the image order: the checkpoint's sampler covered {num} samples but the "
                f"dataset now has {self.num_samples}; resume with the same data, xflip and max_images"
            )
        self.seed = int(state["seed"])
        self.shuffle = bool(state.get("shuffle", self.shuffle))
        self._perms.clear()
        self.epoch, self.position = divmod(int(state["epoch"]) * num + int(state["position"]), num)
