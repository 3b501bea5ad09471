"""A checkpoint write that every DDP rank sees fail: shared by the training callbacks (last.ckpt, snapshots) and the
metrics callback (best.ckpt), which must not import training."""

from __future__ import annotations

from pathlib import Path


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, quota, permission): one line, the previous one is intact."""


def save_on_every_rank(trainer, path: Path) -> None:
    """``trainer.save_checkpoint`` (all ranks call it; rank 0 writes): a full checkpoint (optimizers, loops, RNG).
    A failed write raises :class:`CheckpointWriteError` on every rank, so none is left waiting for rank 0."""
    error = None
    try:
        trainer.save_checkpoint(path, weights_only=False)
    except CheckpointWriteError as e:
        error = e
        trainer.strategy.barrier("Trainer.save_checkpoint")  # the one rank 0 skipped when it raised
    line = trainer.strategy.broadcast(str(error) if error else None, src=0)
    if line is not None:
        raise error or CheckpointWriteError(line)
