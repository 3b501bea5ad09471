"""Hydra entry point: ``python -m stylegan.train [overrides]`` (or ``stylegan-train``, ``make train``).

Each run (and each job of a ``-m`` sweep) writes ``status.json`` and closes its loggers, also when it fails. In a
sweep a failed job does not stop the others: its error is logged and written, it returns NaN to the sweeper, and
the sweep's report (``stylegan.report``, written when the sweep ends) marks it.

SIGTERM and SIGINT stop a run at a step boundary with ``last.ckpt`` written, ``status.json`` ``interrupted`` and
exit code 128 + signal; a sweep stops after that job (``training/interrupt.py``). A run whose checkpoint already
reached ``total_kimg`` trains nothing and changes nothing. A checkpoint that cannot be written (disk full, quota,
permission) is one line and exit code 1; the previous checkpoint stays.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from . import cli
from .metrics.extractors import MetricSetupError
from .training import AtomicCheckpointIO, interrupt, preflight, tracking, transfer
from .training.callbacks import CheckpointWriteError
from .utils.config_dir import config_dir, refuse_file_output_dir
from .utils.resolvers import register as register_resolvers

log = logging.getLogger(__name__)
BAD_INPUT = (tracking.TrackingError, preflight.ConfigError)  # with cli.BAD_INPUT: data, weights, metrics


def bad_input_line(e: BaseException) -> str | None:
    return cli.bad_input_line(e, BAD_INPUT)


def failure_line(e: BaseException) -> str | None:
    """The one line of bad input (exit code 2) or of a checkpoint that could not be written (exit code 1)."""
    return bad_input_line(e) or (str(e) if isinstance(e, CheckpointWriteError) else None)


def _instantiate_all(group: DictConfig | None) -> list:
    return [instantiate(c) for c in (group or {}).values() if isinstance(c, DictConfig) and "_target_" in c]


def _optimized_value(trainer: L.Trainer, name: str | None) -> float | None:
    """The value of ``optimized_metric`` (what a Hydra sweeper minimises) as logged last."""
    if not name:
        return None
    if name not in trainer.callback_metrics:
        known = sorted(k for k in trainer.callback_metrics if k.startswith("metrics/")) or "none: use e.g. metrics=fid"
        raise MetricSetupError(f"optimized_metric={name} was not logged; metrics logged: {known}")
    return float(trainer.callback_metrics[name])


def checkpoint_dir(cfg: DictConfig) -> Path:
    return Path(OmegaConf.select(cfg, "callbacks.checkpoint.dirpath") or f"{cfg.paths.output_dir}/checkpoints")


def checkpoint_to_resume(cfg: DictConfig) -> str | None:
    """``ckpt_path``; ``auto``: the run folder's own ``last.ckpt`` if one was written (preempted, requeued)."""
    ckpt = cfg.get("ckpt_path")
    if ckpt != "auto":
        return ckpt
    last = checkpoint_dir(cfg) / "last.ckpt"
    log.info("ckpt_path=auto: %s", f"resuming from {last}" if last.is_file() else "no last.ckpt, starting fresh")
    return str(last) if last.is_file() else None


def train(cfg: DictConfig, config_checked: bool = False) -> float | None:
    """Build data, model, callbacks, loggers and trainer from ``cfg`` and fit; returns ``cfg.optimized_metric``'s
    value (None when it is not set). ``config_checked``: :mod:`stylegan.preflight` already checked the whole
    config (a single run's ``main``), so it is not checked again; a sweep job checks it here, with its values."""
    with interrupt.catching():  # here too, not only in main(): a submitit job calls the task function directly
        return _train(cfg, config_checked)


def read_checkpoint(ckpt_path: str | None) -> dict | None:
    """The checkpoint to resume, loaded once for this module's checks (memory-mapped on the CPU: the tensors are
    not read); None without one or when it does not load (``preflight.check_resume`` then says why)."""
    try:
        return None if ckpt_path is None else torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None


def _train(cfg: DictConfig, config_checked: bool) -> float | None:
    info = tracking.job_info()
    out = cfg.paths.output_dir
    loggers: list = []
    try:  # from here on every error writes status.json "failed" (or "interrupted")
        if info.multirun and interrupt.skip_job(info.job_num):
            return math.nan
        previous = tracking.read_status(out)
        interrupt.clear_partial_writes(checkpoint_dir(cfg))
        ckpt_path = checkpoint_to_resume(cfg)
        saved = read_checkpoint(ckpt_path)
        done = interrupt.finished_kimg(saved, cfg.total_kimg)
        if done is not None:  # the finished run must still be this config's (networks, frozen layers): else one line
            preflight.check_resume(ckpt_path, instantiate(cfg.model), saved)
            log.info("complete: %s reached total_kimg=%g (kimg %g); nothing to train", ckpt_path, cfg.total_kimg,
                     done)
            return previous.get("optimized_metric")
        tracking.write_status(out, "running", info)
        if cfg.get("seed") is not None:
            L.seed_everything(cfg.seed, workers=True)
        if not config_checked:
            preflight.check_config(cfg)  # in a sweep: the values this job was given
        transfer.check_required(cfg.model)
        datamodule = instantiate(cfg.data)
        model = instantiate(cfg.model)
        model.data_config = OmegaConf.to_container(cfg.data, resolve=True)  # into checkpoints, for stylegan-evaluate
        preflight.check_run(cfg.total_kimg, cfg.data.get("batch_size"), model)
        preflight.check_resume(ckpt_path, model, saved)
        del saved  # Lightning loads the checkpoint itself (the whole state, to resume)
        transfer.initialize(model, resumed=ckpt_path is not None)  # fresh runs only: a resume keeps its weights
        callbacks = [*_instantiate_all(cfg.get("callbacks")), interrupt.StopOnSignal()]
        resumed_id = previous.get("wandb_id") if ckpt_path else None  # a resumed run continues its W&B run
        loggers = tracking.build_loggers(cfg.get("logger"), info, resumed_id)
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                              plugins=[AtomicCheckpointIO()])
        tracking.log_hyperparameters(trainer.loggers, cfg, info)
        tracking.write_status(out, "running", info, wandb_id=tracking.wandb_id(trainer.loggers))
        log.info("output directory: %s", out)
        with tracking.ddp_job_in_sweep(out):
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        value = _optimized_value(trainer, cfg.get("optimized_metric"))
    except BaseException as e:
        stop = interrupt.as_interruption(e)
        if stop is not None:
            tracking.close_loggers(loggers, failed=True, signum=stop.signum)
            tracking.write_status(out, "interrupted", info, signal=stop.name, kimg=stop.kimg, note=str(stop))
            if stop is e:
                raise
            raise stop from None
        tracking.close_loggers(loggers, failed=True)
        error = failure_line(e) or f"{type(e).__name__}: {e}"
        tracking.write_status(out, "failed", info, error=error.splitlines()[0][:1000] if error.strip() else repr(e))
        raise
    tracking.close_loggers(loggers, failed=False)
    tracking.write_status(out, "completed", info, kimg=model.cur_nimg / 1000, optimized_metric=value)
    return value


register_resolvers()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    cli.preflight("stylegan-train", cfg)  # the whole config, before anything is built (stylegan/preflight.py)
    multirun = tracking.job_info().multirun
    try:
        return train(cfg, config_checked=not multirun)  # a single run: checked whole just now
    except interrupt.RunInterrupted:  # status.json and the log say it; main() exits with 128 + signal
        return math.nan if multirun else None
    except Exception as e:
        line = failure_line(e)
        if multirun:  # the sweep goes on; the traceback of a non-input error lands in the job's log file
            if line:
                log.error("job failed: %s", line)
            else:
                log.exception("job failed; the sweep goes on")
            return math.nan
        if line is None:
            raise
        if isinstance(e, CheckpointWriteError):  # not bad input (exit code 2): the run failed, nothing lost
            if cli.first_process_on_node():  # every rank raises it; one says it
                print(f"stylegan-train: error: {line}", file=sys.stderr)
            sys.exit(1)
        cli.refuse("stylegan-train", line)


def main() -> float | None:
    """The console script: Hydra's entry point, after the checks Hydra would turn into a traceback."""
    refuse_file_output_dir("stylegan-train", sys.argv[1:])
    cli.freeze_heap()
    interrupt.reset()
    with interrupt.catching():
        value = _hydra_main()
        signum = interrupt.stopped()
    if signum:
        sys.exit(128 + signum)
    return value


if __name__ == "__main__":
    main()
