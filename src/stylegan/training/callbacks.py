"""Training callbacks: sample grids and kimg-based checkpoints (rank 0 writes), and atomic checkpoint IO."""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from ..utils.atomic import atomic_open
from ..utils.checkpoint_write import CheckpointWriteError, save_on_every_rank
from ..utils.images import make_grid, save_image
from ..utils.ticks import tick_index
from .tracking import log_image


class _Sink:
    """A file for ``torch.save`` that remembers the ``OSError`` of a failed write: torch's zip writer replaces it by
    an unrelated ``RuntimeError`` ("unexpected pos ...")."""

    def __init__(self, f) -> None:
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self.f.flush()


def saved_kimg(path: Path | str) -> float | None:
    """The kimg a stylegan-train checkpoint was saved at; None for a file that is not one (or does not load)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["stylegan"]["cur_nimg"]) / 1000
    except Exception:
        return None


def write_failure_line(path: Path, e: OSError) -> str:
    """``could not write checkpoint <path>: <strerror> (<ERRNO>); the previous one (kimg K) is intact; ...``."""
    reason = f"{os.strerror(e.errno)} ({errno.errorcode.get(e.errno, e.errno)})" if e.errno else str(e)
    kimg = saved_kimg(path) if path.is_file() else None
    previous = (f"the previous {path.name} (kimg {kimg:g}) is intact" if kimg is not None
                else f"the previous {path.name} is untouched" if path.exists() else f"no earlier {path.name} exists")
    return (f"could not write checkpoint {path}: {reason}; {previous}. Free space (or fix the folder's quota or "
            "permissions), then resume with ckpt_path=auto")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temp file in the same folder, fsync, then ``os.replace``: a checkpoint is whole or absent.
    A failed write (``OSError``: ENOSPC, EDQUOT, EACCES, ...) raises :class:`CheckpointWriteError` with one line.
    Loads with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        try:
            with atomic_open(path) as f:
                sink = _Sink(f)
                try:
                    torch.save(checkpoint, sink)
                except RuntimeError:
                    if sink.error is None:
                        raise
                    raise sink.error from None
        except OSError as e:
            raise CheckpointWriteError(write_failure_line(path, e)) from e

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def _crossed(module, every_kimg: float, last: int) -> int | None:
    """The index of the ``every_kimg`` tick just reached, if a new one was reached."""
    tick = tick_index(module.cur_nimg, every_kimg)
    return tick if tick > last else None


class SampleGrid(L.Callback):
    """Every ``every_kimg``, a grid from G_ema on fixed z (noise 'const') to ``dirpath/fakesKKKKKK.png`` and the
    logger; a grid of reals once at the start (``reals.png``). A conditional G gets one column per class."""

    def __init__(self, dirpath: str, every_kimg: float = 4.0, num_samples: int = 64, seed: int = 0,
                 truncation_psi: float = 1.0) -> None:
        self.dirpath, self.every_kimg, self.num_samples = Path(dirpath), every_kimg, num_samples
        self.seed, self.truncation_psi = seed, truncation_psi
        self._last = -1
        self.written: list[Path] = []

    @torch.no_grad()
    def grid(self, pl_module) -> np.ndarray:
        G = pl_module.G_ema
        gen = torch.Generator().manual_seed(self.seed)
        z = torch.randn([self.num_samples, G.z_dim], generator=gen).to(pl_module.device)
        c = torch.zeros([self.num_samples, G.c_dim], device=pl_module.device)
        if G.c_dim:
            c[torch.arange(self.num_samples), torch.arange(self.num_samples) % G.c_dim] = 1
        img = torch.cat([G(zb, cb, truncation_psi=self.truncation_psi, noise_mode="const")
                         for zb, cb in zip(z.split(16), c.split(16), strict=True)])
        return make_grid(img, cols=G.c_dim or None)

    @rank_zero_only
    def _write(self, trainer, pl_module, name: str) -> None:
        array = self.grid(pl_module)
        self.written.append(save_image(array, self.dirpath / name))
        log_image(trainer.loggers, "samples/fakes", array, trainer.global_step, f"kimg {pl_module.cur_nimg / 1000:.1f}")

    @rank_zero_only
    def on_train_start(self, trainer, pl_module) -> None:
        self._last = int(pl_module.cur_nimg // max(self.every_kimg * 1000, 1))
        dm = trainer.datamodule
        if dm is not None and hasattr(dm, "real_images"):
            save_image(make_grid(dm.real_images(self.num_samples)), self.dirpath / "reals.png")
        self._write(trainer, pl_module, f"fakes_kimg{pl_module.cur_nimg / 1000:08.2f}.png")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        tick = _crossed(pl_module, self.every_kimg, self._last)
        if tick is not None:
            self._last = tick
            self._write(trainer, pl_module, f"fakes_kimg{pl_module.cur_nimg / 1000:08.2f}.png")

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer, pl_module, "fakes_final.png")


class KimgCheckpoint(L.Callback):
    """``last.ckpt`` every ``every_kimg`` and at the end; with ``keep_snapshots`` also
    ``snapshot-KKKKKK.ckpt``. Writes go through the trainer (rank 0, atomic IO)."""

    def __init__(self, dirpath: str, every_kimg: float = 10.0, keep_snapshots: bool = False) -> None:
        self.dirpath, self.every_kimg, self.keep_snapshots = Path(dirpath), every_kimg, keep_snapshots
        self._last = -1
        self._saved_nimg: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._last = int(pl_module.cur_nimg // max(self.every_kimg * 1000, 1))

    def _save(self, trainer, pl_module, snapshots: bool = True) -> None:
        names = ["last.ckpt"] + ([f"snapshot-{pl_module.cur_nimg // 1000:06d}.ckpt"]
                                 if self.keep_snapshots and snapshots else [])
        for name in names:
            save_on_every_rank(trainer, self.dirpath / name)
        self._saved_nimg = pl_module.cur_nimg

    def save_last(self, trainer, pl_module) -> Path:
        """``last.ckpt`` now, unless it was just written at this step (a run stopped by a signal; all ranks call)."""
        if self._saved_nimg != pl_module.cur_nimg:
            self._save(trainer, pl_module, snapshots=False)
        return self.dirpath / "last.ckpt"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        tick = _crossed(pl_module, self.every_kimg, self._last)
        if tick is not None:
            self._last = tick
            self._save(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer, pl_module)


class KimgProgressBar(TQDMProgressBar):
    """Lightning's bar with a total: the iterations left until ``total_kimg``, so it shows an ETA."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        dm = trainer.datamodule
        if self.train_progress_bar is None or dm is None or not hasattr(dm, "batch_sizes"):
            return
        sizes = dm.batch_sizes(trainer.world_size)
        self.train_progress_bar.reset(total=sizes.batches(pl_module.cur_nimg, math.ceil(pl_module.total_kimg * 1000)))
        self.train_progress_bar.set_description(f"Training to {pl_module.total_kimg:g} kimg")
