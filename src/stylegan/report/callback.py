"""Hydra callback (``conf/train.yaml``): when a ``stylegan-train -m`` sweep ends, write its report and say how many
jobs failed; the sweep's exit code is 1 if any did (the other jobs ran to the end)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepReport(Callback):
    def __init__(self, metric: str | None = None, enabled: bool = True) -> None:
        self.metric, self.enabled = metric, enabled

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from . import ReportError, write_report

        sweep_dir = str(config.hydra.sweep.dir)
        try:
            report = write_report(sweep_dir, self.metric)
        except ReportError as e:  # a report is a convenience: the jobs' own results stand
            log.warning("no sweep report: %s", e)
            return
        log.info("sweep report: %s", report.paths["md"])
        if report.failed:
            first = report.failed[0]
            print(f"stylegan-train: error: {len(report.failed)} of {len(report.jobs)} sweep jobs failed (job "
                  f"{first.num}: {first.error}); see {report.paths['md']}", file=sys.stderr)
            sys.exit(1)
