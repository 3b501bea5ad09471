"""A Lightning callback for DDP tests (importable by a run's ranks with tests/ on PYTHONPATH): it counts, on its
rank, the module's backward passes, its optimizer steps (``_step``) and the backward passes that all-reduced the
gradients. The last are counted by a DDP communication hook (it runs the default all-reduce): DDP calls it once
per gradient bucket of a synchronizing backward, so its calls on bucket 0 are the synchronizing backwards."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel


class CountGradientSyncs(L.Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.counts = {"backwards": 0, "steps": 0, "syncs": 0}

    def _counting(self, name: str, fn):
        def counted(*args, **kwargs):
            self.counts[name] += 1
            return fn(*args, **kwargs)
        return counted

    def on_train_start(self, trainer, pl_module) -> None:
        ddp = trainer.strategy.model
        assert isinstance(ddp, DistributedDataParallel), type(ddp)

        def hook(state, bucket):
            if bucket.index() == 0:
                self.counts["syncs"] += 1
            return allreduce_hook(state, bucket)

        ddp.register_comm_hook(None, hook)
        pl_module.manual_backward = self._counting("backwards", pl_module.manual_backward)
        pl_module._step = self._counting("steps", pl_module._step)

    def on_train_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.counts))
