"""Hydra entry point: ``python -m stylegan.train [overrides]`` (or ``stylegan-train``, ``make train``)."""

from __future__ import annotations

import logging
import sys

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .data import DatasetError
from .metrics.extractors import MetricSetupError
from .official import OfficialWeightsError
from .training import AtomicCheckpointIO
from .utils.config_dir import config_dir

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list:
    return [instantiate(c) for c in (group or {}).values() if isinstance(c, DictConfig) and "_target_" in c]


def train(cfg: DictConfig) -> L.LightningModule:
    """Build data, model, callbacks, loggers and trainer from ``cfg`` and fit; returns the trained module."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    trainer = instantiate(cfg.trainer, callbacks=_instantiate_all(cfg.get("callbacks")),
                          logger=_instantiate_all(cfg.get("logger")) or False, plugins=[AtomicCheckpointIO()])
    log.info("output directory: %s", cfg.paths.output_dir)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    return model


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> None:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    try:
        train(cfg)
    except (DatasetError, OfficialWeightsError, MetricSetupError) as e:  # bad input: one line, no traceback
        print(f"stylegan-train: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
