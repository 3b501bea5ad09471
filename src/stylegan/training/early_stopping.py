"""Early stopping on a metric evaluated during training (``callbacks.early_stopping``).

Training is one endless epoch without validation, so Lightning's ``EarlyStopping`` (which checks at the end of a
validation or training epoch) never runs. This callback checks after every evaluation of the metrics callback
(``metrics=fid ...``, every ``callbacks.metrics.every_kimg``) instead, with Lightning's rule: an evaluation improves
when it beats the best so far by more than ``min_delta``; after ``patience`` evaluations in a row without
improvement the run stops there, as a normal end (``last.ckpt``, the final sample grid, ``status.json``
completed). With ``every_kimg`` K and a metric that never improves after its first value, training stops at
``(patience + 1) * K`` kimg.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L

from ..metrics.names import higher_is_better, is_better
from .config import ConfigError

log = logging.getLogger(__name__)
MODES = ("auto", "min", "max")


def improves(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (``mode`` min or max): best.ckpt's rule
    (:func:`~stylegan.metrics.names.is_better`) with a margin; NaN never does."""
    return math.isfinite(value) and is_better(value, best, "", min_delta, higher=mode == "max")


class MetricEarlyStopping(L.Callback):
    """Stop when ``monitor`` (``metrics/<name>`` as logged, or ``<name>``) has not improved for ``patience``
    evaluations. ``mode``: min | max | auto (max for precision, recall, class accuracy: utils/direction.py; else
    min). ``monitor: null``: off."""

    def __init__(self, monitor: str | None = None, patience: int = 3, mode: str = "auto",
                 min_delta: float = 0.0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"callbacks.early_stopping.patience={patience!r} must be an integer >= 1 "
                              "(evaluations without improvement before stopping)")
        if mode not in MODES:
            raise ConfigError(f"callbacks.early_stopping.mode={mode!r}: use auto, min or max")
        if not float(min_delta) >= 0:
            raise ConfigError(f"callbacks.early_stopping.min_delta={min_delta!r} must be >= 0")
        # every key the metrics callback logs starts with metrics/: prefixed here, before a resume restores the state
        # (Lightning loads callback states before on_fit_start), so that the saved key matches
        self.monitor = None if monitor in (None, "") else (
            str(monitor) if str(monitor).startswith("metrics/") else f"metrics/{monitor}")
        self.patience, self.min_delta = patience, float(min_delta)
        self.mode = mode if mode != "auto" or self.monitor is None else ("max" if higher_is_better(monitor) else "min")
        self.best: float | None = None
        self.best_kimg: float | None = None
        self.wait = 0
        self.stopped_kimg: float | None = None
        self._metrics: Any = None
        self._seen = 0

    # ------------------------------------------------------------------ setup
    def setup(self, trainer, pl_module, stage: str) -> None:
        """Run after the metrics callback in every hook, so that an evaluation is judged in the step it happens
        (a new list: the hook loop now running goes on over the old one)."""
        if self.monitor is None:
            return
        from ..metrics import MetricsCallback

        metrics = [c for c in trainer.callbacks if isinstance(c, MetricsCallback)]
        if not metrics:
            from ..metrics.extractors import MetricSetupError

            raise MetricSetupError(f"callbacks.early_stopping.monitor={self.monitor} needs metrics during training: "
                                   "add metrics=fid (and callbacks.metrics.metrics=[...]), or set "
                                   "callbacks.early_stopping.monitor=null")
        self._metrics = metrics[0]
        others = [c for c in trainer.callbacks if c is not self]
        at = others.index(self._metrics) + 1
        trainer.callbacks = [*others[:at], self, *others[at:]]

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.monitor is None:
            return
        keys = [f"metrics/{k}" for k in self._metrics.runner.keys()]  # noqa: SIM118 (a method, not a dict)
        if self.monitor not in keys:
            from ..metrics.extractors import MetricSetupError

            raise MetricSetupError(f"callbacks.early_stopping.monitor={self.monitor} is not a metric of this run; "
                                   f"logged: {', '.join(keys)}")

    def state_dict(self) -> dict[str, Any]:
        if self.monitor is None:  # off: nothing in the checkpoint
            return {}
        return {"monitor": self.monitor, "best": self.best, "best_kimg": self.best_kimg, "wait": self.wait}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("monitor") == self.monitor:  # a resumed run goes on counting
            self.best, self.best_kimg, self.wait = state_dict["best"], state_dict["best_kimg"], state_dict["wait"]

    # ------------------------------------------------------------------ checks
    def on_train_start(self, trainer, pl_module) -> None:
        self._check(trainer, pl_module)  # an evaluation at kimg 0 (callbacks.metrics.at_start)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check(trainer, pl_module)

    def _check(self, trainer, pl_module) -> None:
        if self.monitor is None or len(self._metrics.history) == self._seen:
            return
        self._seen = len(self._metrics.history)
        value, kimg = float(trainer.callback_metrics[self.monitor]), pl_module.cur_nimg / 1000
        if improves(value, self.best, self.mode, self.min_delta):
            self.best, self.best_kimg, self.wait = value, kimg, 0
            return
        self.wait += 1
        # every rank evaluates at the same step and holds the same value; agree all the same, as Lightning does
        stop = trainer.strategy.reduce_boolean_decision(self.wait >= self.patience, all=False)
        if stop and not trainer.should_stop:
            trainer.should_stop = True
            self.stopped_kimg = kimg
            if trainer.is_global_zero:
                log.info("early stopping at kimg %g: %s has not improved on %s (kimg %s) for %d evaluations",
                         kimg, self.monitor, self.best, self.best_kimg, self.wait)
