"""Map-style image dataset and the endless batch stream the training DataLoader iterates."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


class BatchStream(IterableDataset):
    """Endless ``(img, c)`` batches in the order of an :class:`InfiniteSampler` state.

    Global batch ``k`` holds the sampler's indices ``k*B .. k*B+B-1`` counted from the saved position.
    DataLoader worker ``w`` of ``W`` builds batches ``w, w+W, ...``; the DataLoader takes them round-robin,
    so the batch order is the same for any ``num_workers``.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        sampler_state: dict[str, Any],
        rank: int,
        world_size: int,
        batch_size: int,
        c_dim: int,
    ) -> None:
        self.dataset = dataset
        self.sampler_state = dict(sampler_state)
        self.rank, self.world_size = rank, world_size
        self.batch_size, self.c_dim = batch_size, c_dim

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sampler = InfiniteSampler(len(self.dataset), self.rank, self.world_size)
        sampler.load_state_dict(self.sampler_state)
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        k, B = worker, self.batch_size
        while True:
            yield self.dataset.batch([sampler.index_at(k * B + i) for i in range(B)], self.c_dim)
            k += num_workers
