"""The paper's analyses during training (``analysis=droplets``, ``analysis=contributions`` or
``analysis=[droplets,contributions]``): G_ema measured every ``every_kimg`` with the functions of
``stylegan analyze`` (:mod:`stylegan.analysis`), so a curve logged here and the command run on the checkpoint of that
tick give the same numbers.

- :class:`DropletsCallback` (StyleGAN2 Sec. 2, Fig. 1): per resolution the median spike ratio
  (``droplets/<res>/spike_ratio``) and co-location (``droplets/<res>/colocation``) over every layer, channel and seed;
  the feature-map figure ``<dirpath>/droplets_kimgKKKKK.KK.png`` and the per-layer ``droplets_kimgKKKKK.KK.csv``.
- :class:`ContributionsCallback` (Sec. 4.1, Fig. 8, skip G only): each resolution's share of the summed ToRGB
  standard deviations in percent (``contribution/<res>``); ``<dirpath>/contributions.csv`` (the series so far, the
  format of ``stylegan analyze contributions RUN_DIR``) and the stacked areas against kimg
  ``contributions_kimgKKKKK.KK.png``. A generator of another architecture is refused before any training step.

Rank 0 measures and writes; the scalars go to every logger with ``kimg`` at the trainer's global step (as
:class:`~stylegan.metrics.MetricsCallback`), the figure to the loggers that take images (W&B, TensorBoard). Every
rank then receives rank 0's scalars (one broadcast per tick, which every rank reaches at the same ``cur_nimg``), so
``trainer.callback_metrics`` (``optimized_metric``) agrees across DDP ranks and a failure on rank 0 stops every rank.
The measurement draws its latents from the seeds (``RandomState(seed)``, as ``stylegan generate``) under a forked
torch RNG, and G_ema's train/eval mode is restored: enabling an analysis does not change the training trajectory.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils.ticks import KimgTicks
from .config import ConfigError
from .tracking import log_image

log = logging.getLogger(__name__)


def _seeds(seeds: Any, key: str) -> list[int]:
    from ..tools.generate import ToolError, parse_seeds

    text = ",".join(map(str, seeds)) if isinstance(seeds, (list, tuple)) else str(seeds)
    try:
        return parse_seeds(text, key)
    except ToolError as e:  # "<key> '<text>': why" -> "<key>=<text>: why"
        raise ConfigError(str(e).replace(f"{key} {text!r}", f"{key}={text}", 1)) from None


class AnalysisCallback(KimgTicks):
    """Shared by the analyses: ``every_kimg`` ticks (and ``at_start``: kimg of the first step; always at the end),
    seeds as ``stylegan analyze --seeds`` (``"0-7"``, ``"0-3,9"`` or a list), ``noise_mode`` const|random|none,
    ``class_idx`` (a conditional G; null: class 0), ``batch_size`` (null: 64 on CUDA, 8 otherwise)."""

    name = "analysis"
    min_seeds = 1

    def __init__(self, dirpath: str, every_kimg: float = 10.0, seeds: Any = "0-7", noise_mode: str = "const",
                 class_idx: int | None = None, batch_size: int | None = None, at_start: bool = True) -> None:
        key = f"callbacks.{self.name}"
        if not isinstance(every_kimg, (int, float)) or isinstance(every_kimg, bool) or not every_kimg > 0:
            raise ConfigError(f"{key}.every_kimg={every_kimg!r} must be > 0 (kimg between two measurements)")
        self.seeds = _seeds(seeds, f"{key}.seeds")
        if len(self.seeds) < self.min_seeds:
            raise ConfigError(f"{key}.seeds={seeds!r}: {self.name} needs at least {self.min_seeds} seeds")
        from ..tools.generate import NOISE_MODES

        if noise_mode not in NOISE_MODES:
            raise ConfigError(f"{key}.noise_mode={noise_mode!r}: use one of {', '.join(NOISE_MODES)}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ConfigError(f"{key}.batch_size={batch_size!r} must be a positive integer or null")
        self.dirpath, self.every_kimg, self.at_start = Path(dirpath), float(every_kimg), bool(at_start)
        self.noise_mode, self.class_idx, self.batch_size = noise_mode, class_idx, batch_size
        self.history: list[dict[str, float]] = []  # {"kimg": ..., scalar: value} per tick (every rank)
        self._last_tick = -1
        self._last_nimg: int | None = None

    # ------------------------------------------------------------------ checks
    def check(self, G) -> None:
        """Refuse (:class:`ConfigError`, one line, exit code 2) a generator the analysis cannot measure."""
        key = f"callbacks.{self.name}.class_idx"
        if G.c_dim == 0 and self.class_idx is not None:
            raise ConfigError(f"{key}={self.class_idx}: the generator is unconditional (c_dim=0); set it to null")
        if G.c_dim and self.class_idx is not None and not 0 <= self.class_idx < G.c_dim:
            raise ConfigError(f"{key}={self.class_idx}: the generator has {G.c_dim} classes; use 0..{G.c_dim - 1}")

    def setup(self, trainer, pl_module, stage: str) -> None:
        G = getattr(pl_module, "G_ema", None)
        if G is not None:
            self.check(G)  # before any training step: every rank raises the same line

    # ------------------------------------------------------------------ triggers (as MetricsCallback's)
    def work(self, trainer, pl_module) -> dict[str, float]:
        return self.run(trainer, pl_module)

    def done_at(self, pl_module) -> bool:
        """A run resumed at a tick measured there already."""
        return bool(self.history) and self.history[-1]["kimg"] == pl_module.cur_nimg / 1000

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))

    # ------------------------------------------------------------------ work
    def measure(self, G, opts: dict, kimg: float, stem: str) -> tuple[dict[str, float], Path]:
        """(scalars to log, the figure written into ``dirpath``); ``stem``: ``<name>_kimgKKKKK.KK``."""
        raise NotImplementedError

    @contextmanager
    def _untouched(self, G, device: torch.device):
        """G_ema keeps its mode and the training RNG its state (noise_mode=random draws from torch's)."""
        was = G.training
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            try:
                yield
            finally:
                G.train(was)

    def run(self, trainer, pl_module) -> dict[str, float]:
        """Measure G_ema now (rank 0), log and broadcast the scalars; every rank calls this at the same step."""
        kimg = pl_module.cur_nimg / 1000
        values, error = None, None
        if trainer.is_global_zero:
            try:
                values = self._measure_and_log(trainer, pl_module, kimg)
            except Exception as e:  # said on every rank below, none left waiting at the next collective
                error = e
        values, line = trainer.strategy.broadcast((values, f"{type(error).__name__}: {error}" if error else None), 0)
        if error is not None:
            raise error
        if line is not None:
            raise RuntimeError(f"{self.name} analysis failed on rank 0 at kimg {kimg:g}: {line}")
        self._last_nimg = pl_module.cur_nimg
        self.history.append({"kimg": kimg, **values})
        trainer.callback_metrics.update({k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()})
        return values

    def _measure_and_log(self, trainer, pl_module, kimg: float) -> dict[str, float]:
        G, device = pl_module.G_ema, pl_module.device
        class_idx = self.class_idx if self.class_idx is not None or not G.c_dim else 0
        opts = dict(seeds=self.seeds, noise_mode=self.noise_mode, class_idx=class_idx, device=device,
                    batch_size=self.batch_size or (64 if device.type == "cuda" else 8))
        with self._untouched(G, device):
            values, png = self.measure(G, opts, kimg, f"{self.name}_kimg{kimg:08.2f}")
        log.info("kimg %g: %s", kimg, "  ".join(f"{k} {v:.4g}" for k, v in values.items()))
        for logger in trainer.loggers:
            logger.log_metrics({"kimg": kimg, **values}, step=trainer.global_step)
        from PIL import Image

        with Image.open(png) as img:
            array = np.asarray(img.convert("RGB"))
        log_image(trainer.loggers, f"analysis/{self.name}", array, trainer.global_step, f"kimg {kimg:.2f}")
        return values


class DropletsCallback(AnalysisCallback):
    """Spike ratio and co-location of every synthesis layer (:mod:`stylegan.analysis.droplets`), per resolution;
    ``figure_seeds``: the rows of the figure (the first seeds; each row costs a few tenths of a second to draw)."""

    name = "droplets"

    def __init__(self, dirpath: str, every_kimg: float = 10.0, seeds: Any = "0-7", noise_mode: str = "const",
                 class_idx: int | None = None, batch_size: int | None = None, at_start: bool = True,
                 figure_seeds: int = 4) -> None:
        super().__init__(dirpath, every_kimg, seeds, noise_mode, class_idx, batch_size, at_start)
        if isinstance(figure_seeds, bool) or not isinstance(figure_seeds, int) or figure_seeds < 1:
            raise ConfigError(f"callbacks.droplets.figure_seeds={figure_seeds!r} must be a positive integer (rows of "
                              "the figure: the first seeds)")
        self.figure_seeds = figure_seeds

    def measure(self, G, opts: dict, kimg: float, stem: str) -> tuple[dict[str, float], Path]:
        from ..analysis.droplets import figure, measure, write_csv

        result = measure(G, **opts, keep=self.figure_seeds)
        rows = result.rows()
        write_csv(rows, self.dirpath / f"{stem}.csv")
        values = {}
        for r in rows:
            if r["layer"] == "all":
                values[f"droplets/{r['resolution']}/spike_ratio"] = r["spike_ratio"]
                values[f"droplets/{r['resolution']}/colocation"] = r["colocation"]
        return values, figure(result, self.dirpath / f"{stem}.png")


class ContributionsCallback(AnalysisCallback):
    """Each resolution's share (percent) of a skip G's output (:mod:`stylegan.analysis.contributions`).
    ``architecture``: the configured ``model.generator.architecture``, refused at construction unless skip (the
    built G_ema is checked again in ``setup``)."""

    name = "contributions"
    min_seeds = 2  # a standard deviation over latents

    def __init__(self, dirpath: str, every_kimg: float = 10.0, seeds: Any = "0-63", noise_mode: str = "const",
                 class_idx: int | None = None, batch_size: int | None = None, at_start: bool = True,
                 architecture: str | None = None) -> None:
        if architecture is not None and architecture != "skip":
            raise ConfigError(f"analysis=contributions with model.generator.architecture={architecture}: the "
                              "per-resolution contributions (StyleGAN2 Fig. 8) need the skip architecture (a ToRGB at "
                              "every resolution, summed); train model/generator=skip or drop contributions from "
                              "analysis=")
        super().__init__(dirpath, every_kimg, seeds, noise_mode, class_idx, batch_size, at_start)
        self.series: list[tuple[float, dict[int, float]]] = []  # (kimg, {resolution: std}) per tick (rank 0)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "series": self.series}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.series = [(k, dict(s)) for k, s in state_dict.get("series", [])]

    def check(self, G) -> None:
        from ..analysis.contributions import needs_skip

        why = needs_skip(G)
        if why:
            raise ConfigError(f"analysis=contributions: {why}; or drop contributions from analysis=")
        super().check(G)

    def measure(self, G, opts: dict, kimg: float, stem: str) -> tuple[dict[str, float], Path]:
        from ..analysis.contributions import contribution_stds, figure, shares, write_csv

        stds = contribution_stds(G, **opts)
        self.series.append((kimg, stds))
        series = self.series
        write_csv(series, self.dirpath / "contributions.csv")
        png = figure(series if len(series) > 1 else [(None, stds)], self.dirpath / f"{stem}.png")
        return {f"contribution/{res}": share for res, share in shares(stds).items()}, png
