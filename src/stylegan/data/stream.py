"""Map-style image dataset and the endless batch stream the training DataLoader iterates."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .sampler import InfiniteSampler
from .sources import ImageStore


def to_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., C, R, R]`` to float32 in [-1, 1] (``x / 127.5 - 1``)."""
    return torch.as_tensor(images).to(torch.float32) / 127.5 - 1.0


def one_hot(labels: Sequence[int] | np.ndarray, c_dim: int) -> torch.Tensor:
    """Float32 ``[B, c_dim]`` one-hot rows (``[B, 0]`` when ``c_dim`` is 0)."""
    out = torch.zeros(len(labels), c_dim, dtype=torch.float32)
    if c_dim:
        out[torch.arange(len(labels)), torch.as_tensor(np.asarray(labels), dtype=torch.long)] = 1.0
    return out


class ImageDataset(Dataset):
    """``store`` as ``(uint8 [C, R, R], label)`` items; with ``xflip``, indices ``N..2N-1`` are mirrored."""

    def __init__(self, store: ImageStore, xflip: bool = False) -> None:
        self.store = store
        self.xflip = bool(xflip)

    def __len__(self) -> int:
        return len(self.store) * (2 if self.xflip else 1)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        n = len(self.store)
        img = self.store.load(index % n)
        if index >= n:
            img = np.ascontiguousarray(img[:, :, ::-1])
        label = -1 if self.store.labels is None else int(self.store.labels[index % n])
        return img, label

    def batch(self, indices: Sequence[int], c_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Float images in [-1, 1] and one-hot labels for ``indices``."""
        items = [self[i] for i in indices]
        images = to_float(np.stack([im for im, _ in items]))
        return images, one_hot([lab for _, lab in items], c_dim)


@dataclass(frozen=True)
class BatchSizes:
    """This rank's batch size for a batch that starts at global stream position ``g`` (images consumed by all ranks
    before it): ``schedule(g)``, a global minibatch, split over ``world_size`` ranks; ``per_device`` where the
    schedule gives None or there is none. Picklable, for the loader's workers."""

    per_device: int
    world_size: int = 1
    schedule: Callable[[int], int | None] | None = None

    def __call__(self, g: int) -> int:
        size = self.schedule(g) if self.schedule is not None else None
        return self.per_device if size is None else size // self.world_size

    def batches(self, start: int, end: int) -> int:
        """How many batches take the stream from global position ``start`` to ``end`` or beyond."""
        if self.schedule is None:
            return -(-max(end - start, 0) // (self.per_device * self.world_size))
        count = 0
        while start < end:
            start, count = start + self(start) * self.world_size, count + 1
        return count


class BatchStream(IterableDataset):
    """Endless ``(img, c)`` batches in the order of an :class:`InfiniteSampler` state.

    This rank's batch ``k`` holds the sampler's next ``B_k`` indices after those of batches ``0 .. k-1``, counted
    from the saved position; ``B_k = sizes(global position where batch k starts)`` (a constant without a schedule).
    DataLoader worker ``w`` of ``W`` builds batches ``w, w+W, ...``; the DataLoader takes them round-robin,
    so the batch order is the same for any ``num_workers``.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        sampler_state: dict[str, Any],
        rank: int,
        world_size: int,
        sizes: BatchSizes,
        c_dim: int,
    ) -> None:
        self.dataset = dataset
        self.sampler_state = dict(sampler_state)
        self.rank, self.world_size = rank, world_size
        self.sizes = sizes
        self.c_dim = c_dim

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sampler = InfiniteSampler(len(self.dataset), self.rank, self.world_size)
        sampler.load_state_dict(self.sampler_state)
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        start, offset, k = sampler.global_position, 0, 0  # offset: this rank's indices before batch k
        while True:
            size = self.sizes(start + offset * self.world_size)
            if k % num_workers == worker:
                yield self.dataset.batch([sampler.index_at(offset + i) for i in range(size)], self.c_dim)
            offset, k = offset + size, k + 1
