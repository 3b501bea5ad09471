"""The LightningDataModule: one config, any source (demo, folder, zip, prepared), endless resumable batches.

Resume: the training DataLoader runs ahead of training (worker prefetch, Lightning's one-batch lookahead),
so the module does not trust the sampler's own iteration count. Instead the ``on_before_batch_transfer``
hook, which Lightning calls on the main process for each batch the training loop actually uses, advances
the saved sampler position by that batch's size. ``state_dict()`` therefore records exactly the samples consumed,
for any ``num_workers``; a new ``train_dataloader()`` continues from there. Loops that bypass that hook
can call :meth:`ImageDataModule.mark_consumed` themselves.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..utils.dist import rank_world
from .demo import load_lfw, load_mnist
from .errors import DatasetError
from .sampler import InfiniteSampler
from .sources import (
    FolderContainer,
    ImageStore,
    ZipContainer,
    is_prepared,
    open_prepared,
    subset_indices,
)
from .stream import BatchSizes, BatchStream, ImageDataset, to_float
from .validate import build_raw_store, check_policy, check_resolution

log = logging.getLogger(__name__)

DEMOS = ("mnist", "lfw")


def open_store(
    source: str, resolution: int, channels: int, use_labels: bool, on_bad_image: str, max_images: int | None,
    seed: int = 0,
) -> ImageStore:
    """Open ``source`` ("mnist", "lfw", or a folder / .zip / prepared-dataset path) as a checked store."""
    if source in DEMOS:
        store = (load_mnist if source == "mnist" else load_lfw)(resolution, channels)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise DatasetError(f"data.source={source!r} does not exist (resolved to {path.resolve()})")
        if is_prepared(path):
            store = open_prepared(path)
        elif path.is_dir():
            store = build_raw_store(
                FolderContainer(path), resolution, channels, use_labels, on_bad_image, max_images, seed
            )
        elif path.suffix.lower() == ".zip":
            store = build_raw_store(
                ZipContainer(path), resolution, channels, use_labels, on_bad_image, max_images, seed
            )
        else:
            raise DatasetError(
                f"data.source={source!r} is not a folder, a .zip, or a stylegan-prepare output directory "
                "(one holding images.npy and meta.json)"
            )
    if max_images is not None and len(store) > max_images:
        store = store.subset(subset_indices(len(store), max_images, seed))
    if store.resolution != resolution:
        raise DatasetError(
            f"{store.description} is {store.resolution}x{store.resolution} but data.resolution={resolution}; "
            f"set data.resolution={store.resolution} (or re-run stylegan-prepare --resolution {resolution})"
        )
    if store.channels != channels:
        raise DatasetError(
            f"{store.description} has {store.channels} channel(s) but data.channels={channels}; set "
            f"data.channels={store.channels} (or re-run stylegan-prepare with --channels {channels})"
        )
    if use_labels and store.labels is None:
        raise DatasetError(
            f"data.use_labels=true but {store.description} has no class labels; set data.use_labels=false"
        )
    return store


class ImageDataModule(L.LightningDataModule):
    """Training images as float ``[B, C, R, R]`` in [-1, 1] plus one-hot labels ``[B, c_dim]``, endlessly.

    ``source``: "mnist" (built in), "lfw" (needs scikit-image), or a path to a folder of images, a zip
    (NVlabs dataset_tool layout, optional ``dataset.json`` labels) or a ``stylegan-prepare`` output
    directory (recommended). Raw folders/zips must hold square 8-bit L/RGB images at ``resolution``.
    ``batch_size`` is per device; ``xflip`` adds mirrored copies (doubling the sampled set); ``max_images`` keeps a
    random subset drawn from ``seed`` (the official ``--subset``), whose ``c_dim`` still counts every class.
    """

    def __init__(
        self,
        source: str = "mnist",
        resolution: int = 32,
        channels: int = 1,
        batch_size: int = 32,
        use_labels: bool = False,
        xflip: bool = False,
        num_workers: int = 0,
        pin_memory: bool = False,
        on_bad_image: str = "error",
        seed: int = 0,
        max_images: int | None = None,
    ) -> None:
        super().__init__()
        self.source = str(source)
        self.resolution = resolution
        self.channels = channels
        self.batch_size = batch_size
        self.use_labels = bool(use_labels)
        self.xflip = bool(xflip)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.on_bad_image = on_bad_image
        self.seed = int(seed)
        self.max_images = max_images
        self.c_dim = 0
        self.num_images = 0
        self.store: ImageStore | None = None
        self.dataset: ImageDataset | None = None
        self.sampler: InfiniteSampler | None = None
        self._pending_state: dict[str, Any] | None = None
        self._fingerprint: str | None = None
        # global minibatch after n images (None: batch_size per device); set by model.progressive.minibatch
        self.batch_schedule: Callable[[int], int | None] | None = None

    # ---------------------------------------------------------------- setup
    def _check_config(self) -> None:
        check_resolution(self.resolution)
        check_policy(self.on_bad_image)
        if self.channels not in (1, 3):
            raise DatasetError(f"data.channels={self.channels!r} must be 1 (grayscale) or 3 (RGB)")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise DatasetError(f"data.batch_size={self.batch_size!r} must be a positive integer")
        if self.max_images is not None and (not isinstance(self.max_images, int) or self.max_images < 1):
            raise DatasetError(f"data.max_images={self.max_images!r} must be a positive integer or null")
        if self.num_workers < 0:
            raise DatasetError(f"data.num_workers={self.num_workers} must be >= 0")

    def setup(self, stage: str | None = None) -> None:
        """Open and validate the data (idempotent). Raises :class:`DatasetError` on bad input or config."""
        if self.store is not None:
            return
        self._check_config()
        store = open_store(
            self.source, self.resolution, self.channels, self.use_labels, self.on_bad_image, self.max_images,
            self.seed,
        )
        self.c_dim = store.num_classes if self.use_labels and store.labels is not None else 0
        self.num_images = len(store)
        self.dataset = ImageDataset(store, self.xflip)
        self.sampler = InfiniteSampler(len(self.dataset), shuffle=True, seed=self.seed)
        self.store = store
        if self._pending_state is not None:
            self.load_state_dict(self._pending_state)
        log.info(
            "Data: %d images from %s (%dx%d, %d channel(s), c_dim=%d%s)",
            self.num_images,
            store.description,
            self.resolution,
            self.resolution,
            self.channels,
            self.c_dim,
            ", x-flips" if self.xflip else "",
        )

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is not None:
            return int(trainer.global_rank), int(trainer.world_size)
        return rank_world()

    # ---------------------------------------------------------------- training data
    def train_dataloader(self) -> DataLoader:
        """Endless loader of ``(img, c)`` batches for this rank, starting at the saved sampler position."""
        self.setup()
        assert self.sampler is not None and self.dataset is not None
        rank, world = self._rank_world()
        self.sampler.set_distributed(rank, world)
        stream = BatchStream(self.dataset, self.sampler.state_dict(), rank, world, self.batch_sizes(world), self.c_dim)
        return DataLoader(
            stream,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=False,
        )

    def batch_sizes(self, world_size: int = 1) -> BatchSizes:
        """Each rank's batch size along the stream: ``batch_size``, or ``batch_schedule``'s global minibatch split
        over ``world_size`` ranks."""
        return BatchSizes(self.batch_size, world_size, self.batch_schedule)

    def mark_consumed(self, num_batches: int = 1, batch_size: int | None = None) -> None:
        """Record that training used ``num_batches`` more batches of ``batch_size`` (default ``data.batch_size``)
        images per rank (moves the saved sampler position)."""
        if self.sampler is not None:
            self.sampler.advance(num_batches * (self.batch_size if batch_size is None else batch_size))

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Lightning hook: count each training batch actually used (see the module docstring)."""
        trainer = self.trainer
        if trainer is not None and trainer.training:
            self.mark_consumed(1, len(batch[0]))
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Sampler position (seed, epoch, position) for exact resume; saved by Lightning in checkpoints."""
        if self.sampler is None:
            return {"sampler": self._pending_state["sampler"]} if self._pending_state else {}
        return {"sampler": self.sampler.state_dict(), "fingerprint": self.fingerprint()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (applied at ``setup`` if called before it)."""
        if not state_dict or "sampler" not in state_dict:
            return
        if self.sampler is None:
            self._pending_state = dict(state_dict)
            return
        saved = state_dict.get("fingerprint")
        if saved is not None and saved != self.fingerprint():
            log.warning(
                "Resuming on data whose fingerprint differs from the checkpoint's; image order may differ"
            )
        self.sampler.load_state_dict(state_dict["sampler"])
        self._pending_state = None

    # ---------------------------------------------------------------- metrics helpers
    def iter_real_images(self, n: int, batch_size: int = 256) -> Iterator[torch.Tensor]:
        """``min(n, num_images)`` images (no flips), float [-1, 1], in batches: all of them in dataset order, or
        for ``n < num_images`` a fixed random subset (seed 0, in dataset order), so that sorted datasets still
        give every class."""
        self.setup()
        assert self.store is not None
        total = len(self.store)
        if int(n) >= total:
            order = np.arange(total)
        else:
            order = np.sort(np.random.RandomState(0).permutation(total)[: int(n)])
        for start in range(0, len(order), batch_size):
            yield to_float(np.stack([self.store.load(int(i)) for i in order[start : start + batch_size]]))

    def real_images(self, n: int) -> torch.Tensor:
        """``min(n, num_images)`` images (see ``iter_real_images``), float32 ``[n, C, R, R]`` in [-1, 1]."""
        chunks = list(self.iter_real_images(n))
        if not chunks:
            return torch.empty(0, self.channels, self.resolution, self.resolution)
        return torch.cat(chunks)

    def fingerprint(self) -> str:
        """Stable hash of the image list, a few images' pixels, resolution, channels and max_images."""
        self.setup()
        if self._fingerprint is None:
            assert self.store is not None
            store = self.store
            h = hashlib.sha256()
            head = {
                "names": store.names,
                "resolution": self.resolution,
                "channels": self.channels,
                "source": self.source if self.source in DEMOS else "path",
            }
            h.update(json.dumps(head, sort_keys=True).encode())
            for i in sorted({int(x) for x in np.linspace(0, len(store) - 1, num=min(8, len(store)))}):
                h.update(store.load(i).tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint
