"""Lightning callback: metrics of G_ema every ``every_kimg`` and at the end; ``best.ckpt`` by ``best_metric``.

Runs on every rank (each generates and extracts its share, see :mod:`stylegan.metrics.generate`); rank 0's
loggers record ``metrics/<name>`` against the global step together with ``kimg``. The networks are built in
``setup``, before any training step, so a missing torch-fidelity or weights file stops the run at once.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from ..utils.checkpoint_write import save_on_every_rank
from ..utils.ticks import KimgTicks
from .names import higher_is_better, is_better
from .runner import MetricRunner, build_networks

log = logging.getLogger(__name__)


class MetricsCallback(KimgTicks):
    """``metrics``: names such as ``fid50k_full``, ``kid50k_full``, ``pr50k3_full``, ``ppl2_wend``, ``fid2k``.
    ``feature_extractor`` / ``pr_extractor``: 'inception' / 'vgg16' (torch-fidelity) or a module;
    ``*_weights_path``: local weights for offline machines. ``ppl_distance``: 'lpips' or a module.
    ``best_metric``: the reported name that picks ``dirpath/best.ckpt`` ('auto': the first fid/fd one; None: no
    best checkpoint), maximised for precision/recall and minimised otherwise (:func:`~.names.higher_is_better`).
    ``at_start``: also evaluate before the first step (kimg 0). ``real_subset``: 'first' (official) or 'random'
    reals for a metric that uses fewer than all (see :mod:`stylegan.metrics.reals`). ``conditional_metrics``: added
    to ``metrics`` only when G_ema is conditional (c_dim > 0), e.g. ``[class_acc2k]`` (``metrics=cpu``)."""

    def __init__(self, metrics: list[str], every_kimg: float = 50.0, feature_extractor: Any = "inception",
                 feature_extractor_weights_path: str | None = None, pr_extractor: Any = "vgg16",
                 pr_extractor_weights_path: str | None = None, ppl_distance: Any = "lpips",
                 cache_dir: str | None = None, batch_size: int = 64, seed: int = 0, best_metric: str | None = "auto",
                 dirpath: str | None = None, at_start: bool = False, progress: bool = True,
                 real_subset: str = "first", conditional_metrics: list[str] | None = None) -> None:
        from .extractors import MetricSetupError
        from .reals import check_subset

        self.metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        extra = conditional_metrics or []
        self.conditional_metrics = [extra] if isinstance(extra, str) else list(extra)
        if not self.metrics:
            raise MetricSetupError("callbacks.metrics.metrics is empty: list metric names, or use metrics=none")
        if not float(every_kimg) > 0:
            raise MetricSetupError(f"callbacks.metrics.every_kimg={every_kimg!r} must be > 0")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise MetricSetupError(f"callbacks.metrics.batch_size={batch_size!r} must be a positive integer")
        self.every_kimg, self.at_start = float(every_kimg), bool(at_start)
        self._net_cfg = dict(feature_extractor=feature_extractor,
                             feature_extractor_weights_path=feature_extractor_weights_path, pr_extractor=pr_extractor,
                             pr_extractor_weights_path=pr_extractor_weights_path, ppl_distance=ppl_distance)
        self.cache_dir, self.batch_size, self.seed, self.progress = cache_dir, batch_size, seed, progress
        self.real_subset = check_subset(real_subset, "callbacks.metrics.real_subset")
        self.best_metric, self.dirpath = best_metric, Path(dirpath) if dirpath else None
        self.runner: MetricRunner | None = None
        self.best: float | None = None
        self.best_kimg: float | None = None
        self.history: list[dict[str, float]] = []
        self._last_tick = -1
        self._last_nimg: int | None = None

    # ------------------------------------------------------------------ setup
    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.runner is not None:
            return
        from .names import parse_metrics

        parse_metrics(self.conditional_metrics)  # a bad name stops the run also for an unconditional G
        G = getattr(pl_module, "G_ema", None)
        if self.conditional_metrics and getattr(G, "c_dim", 0):
            self.metrics += [m for m in self.conditional_metrics if m not in self.metrics]
        specs = parse_metrics(self.metrics)  # MetricSetupError for a bad name
        self.runner = MetricRunner(self.metrics, build_networks(specs, **self._net_cfg), self.cache_dir,
                                   self.batch_size, self.seed, self.progress, self.real_subset)
        keys = self.runner.keys()
        for spec in specs:  # class_acc: a conditional G and a classifier, known now rather than at the first evaluation
            if spec.kind == "class_acc":
                from .class_accuracy import check_classifier

                if G is not None:
                    check_classifier(G, self.runner.networks.features, spec.name)
        if self.best_metric == "auto":
            self.best_metric = next((k for k in keys if k.startswith(("fid", "fd"))), None)
        elif self.best_metric is not None and self.best_metric not in keys:
            from .extractors import MetricSetupError

            raise MetricSetupError(f"best_metric={self.best_metric!r} is not one of the reported metrics {keys}")
        log.info("metrics every %g kimg: %s%s", self.every_kimg, ", ".join(keys),
                 f"; best.ckpt by the {'highest' if higher_is_better(self.best_metric) else 'lowest'} "
                 f"{self.best_metric}" if self.best_metric else "")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_kimg": self.best_kimg, "best_metric": self.best_metric}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("best_metric") in (None, self.best_metric):
            self.best, self.best_kimg = state_dict.get("best"), state_dict.get("best_kimg")

    # ------------------------------------------------------------------ triggers
    def work(self, trainer, pl_module) -> dict[str, float]:
        return self.evaluate(trainer, pl_module)

    # ------------------------------------------------------------------ work
    def evaluate(self, trainer, pl_module) -> dict[str, float]:
        """Run the metrics on G_ema now, log them, and save ``best.ckpt`` on improvement (all ranks call this)."""
        assert self.runner is not None, "setup() builds the metric networks"
        kimg = pl_module.cur_nimg / 1000
        values = self.runner.run(pl_module.G_ema, trainer.datamodule, pl_module.device)
        self._last_nimg = pl_module.cur_nimg
        self.history.append({"kimg": kimg, **values})
        logged = {f"metrics/{k}": v for k, v in values.items()}
        # as self.log would, also from on_train_end: ModelCheckpoint, callbacks.early_stopping and sweepers see them
        trainer.callback_metrics.update({k: torch.tensor(v, dtype=torch.float64) for k, v in logged.items()})
        if trainer.is_global_zero:
            log.info("kimg %g: %s", kimg, "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
            for logger in trainer.loggers:
                logger.log_metrics({"kimg": kimg, **logged}, step=trainer.global_step)
        value = values.get(self.best_metric) if self.best_metric else None
        if value is not None and math.isfinite(value) and is_better(value, self.best, self.best_metric):
            self.best, self.best_kimg = value, kimg
            if self.dirpath is not None:
                save_on_every_rank(trainer, self.dirpath / "best.ckpt")  # a failed write raises on every rank
        return values
