"""Experiment tracking for single runs and Hydra sweeps: loggers named and grouped per job, the resolved config as
hyper-parameters, W&B runs closed at the end of each job (also a failed one), and ``status.json`` per run folder.

A multirun job's W&B run is named after the overrides that the sweep varies (``model/generator=orig``), grouped by
the sweep folder, and its config tab holds the whole resolved Hydra config plus the git commit. ``status.json``
(``running`` -> ``completed`` | ``failed`` with the error | ``interrupted`` with the signal) is what
``stylegan-report`` reads to show failed, interrupted and unfinished jobs.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import netrc
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ..preflight import swept_overrides
from ..utils.atomic import atomic_open

STATUS_FILE = "status.json"
_OFFLINE_MODES = ("offline", "disabled", "dryrun")


class TrackingError(ValueError):
    """A logger that cannot work as configured (e.g. W&B online without an API key); reported as one line."""


@dataclass
class JobInfo:
    """Who this run is: ``name`` (the swept overrides), ``group`` (the sweep), ``overrides`` (all of this job's)."""

    name: str = "run"
    group: str | None = None
    overrides: list[str] = field(default_factory=list)
    multirun: bool = False
    job_num: int | None = None
    tags: list[str] = field(default_factory=list)  # the config's ``tags``, once log_hyperparameters has seen it


def job_info() -> JobInfo:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return JobInfo()
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    if hc.mode != RunMode.MULTIRUN:
        return JobInfo(name=" ".join(overrides) or "run", overrides=overrides)
    swept, _ = swept_overrides(hc)  # naming must never fail a run: what parsed
    groups = {k.split("@", 1)[0] for k in swept}  # group@pkg: its key_or_group is the group
    varied = [o for o in overrides if o.split("=", 1)[0].lstrip("+~").split("@", 1)[0] in groups]
    sweep_dir = Path(str(hc.sweep.dir))
    return JobInfo(name=" ".join(varied or overrides) or f"job{hc.job.num}", group=sweep_dir.name,
                   overrides=overrides, multirun=True, job_num=int(hc.job.num))


def git_commit(path: Path | None = None) -> str | None:
    """The checkout's commit (with ``+dirty`` when it has uncommitted changes), or None outside git."""
    cwd = str(path or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _is_wandb(cfg: DictConfig) -> bool:
    return str(cfg.get("_target_", "")).endswith("WandbLogger")


def _wandb_has_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def read_status(output_dir: str | os.PathLike) -> dict[str, Any]:
    try:
        return json.loads((Path(output_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def build_loggers(group: DictConfig | None, info: JobInfo, resume_wandb_id: str | None = None) -> list:
    """Instantiate every logger of the ``logger`` group; a W&B logger gets the job's name and group unless set, and
    ``resume_wandb_id`` (a resumed run: its W&B run continues) unless an ``id`` is set."""
    loggers = []
    for key, cfg in (group or {}).items():
        if not isinstance(cfg, DictConfig) or "_target_" not in cfg:
            continue
        if _is_wandb(cfg):
            offline = cfg.get("offline") or os.environ.get("WANDB_MODE", "") in _OFFLINE_MODES
            if not offline and not _wandb_has_key():
                raise TrackingError(f"logger.{key}: no W&B API key: run `wandb login` or set WANDB_API_KEY, or "
                                    "log offline with WANDB_MODE=offline (upload later with `wandb sync DIR`)")
            cfg = cfg.copy()
            with open_dict(cfg):
                cfg.name = cfg.get("name") or info.name
                cfg.group = cfg.get("group") or info.group
                if resume_wandb_id and not cfg.get("id"):
                    cfg.id, cfg.resume = resume_wandb_id, "allow"
        loggers.append(instantiate(cfg))
    return loggers


def hyperparameters(cfg: DictConfig, info: JobInfo) -> dict[str, Any]:
    """The resolved config, plus ``run/*``: git commit, overrides, sweep group and job number."""
    params = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    params["run"] = {"git_commit": git_commit(), "overrides": info.overrides, "name": info.name,
                     "group": info.group, "job_num": info.job_num}
    return params


def log_hyperparameters(loggers: list, cfg: DictConfig, info: JobInfo) -> None:
    """The resolved config (with ``tags``) to every logger; the tags also to ``info``, so status.json has them."""
    info.tags = [str(t) for t in cfg.get("tags") or []]
    params = hyperparameters(cfg, info)
    for logger in loggers:
        logger.log_hyperparams(params)
        logger.save()


def wandb_id(loggers: list) -> str | None:
    """The W&B run id of this job (rank 0; None without a W&B logger)."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            run_id = getattr(logger.experiment, "id", None)
            return run_id if isinstance(run_id, str) else None
    return None


def log_image(loggers: list, key: str, array: np.ndarray, step: int, caption: str) -> None:
    """An [H, W, C] uint8 image to every logger that takes images (W&B, TensorBoard)."""
    for logger in loggers:
        if hasattr(logger, "log_image"):  # WandbLogger
            logger.log_image(key=key, images=[array], step=step, caption=[caption])
        elif hasattr(getattr(logger, "experiment", None), "add_image"):  # TensorBoard SummaryWriter
            logger.experiment.add_image(key, array, global_step=step, dataformats="HWC")


def close_loggers(loggers: list, failed: bool, signum: int | None = None) -> None:
    """Finish this job's W&B run (exit code 1 if it failed) so that the next job of a sweep starts its own. Stopped
    by signal ``signum``: the W&B run is marked preempting, ``interrupted`` (the signal's name) goes to its summary,
    and its exit code is 128 + signum, as the process's."""
    for logger in loggers:
        with contextlib.suppress(Exception):  # closing must not hide the job's own error
            logger.finalize("failed" if failed or signum else "success")
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        if wandb.run is not None:
            if signum:
                with contextlib.suppress(Exception):
                    wandb.run.mark_preempting()
                    wandb.run.summary["interrupted"] = signal.Signals(signum).name
            wandb.finish(exit_code=128 + signum if signum else 1 if failed else 0)


@rank_zero_only
def write_status(output_dir: str | os.PathLike, status: str, info: JobInfo, **extra: Any) -> None:
    """``output_dir/status.json``: ``running`` | ``completed`` | ``failed`` (with ``error``) | ``interrupted`` (with
    ``signal``), the job's overrides."""
    path = Path(output_dir) / STATUS_FILE
    record = read_status(output_dir)
    now = datetime.datetime.now().isoformat(timespec="seconds")
    if status != "failed":
        record.pop("error", None)  # a resumed attempt: the last one's error is history
    record.update(status=status, name=info.name, overrides=info.overrides, job_num=info.job_num, **extra)
    if info.tags:
        record["tags"] = info.tags
    record.setdefault("started", now)
    record["updated"] = now
    with atomic_open(path, "w") as f:
        f.write(json.dumps(record, indent=2) + "\n")


@contextlib.contextmanager
def ddp_job_in_sweep(output_dir: str) -> Iterator[None]:
    """Make a DDP job of a Hydra multirun behave as a single run. Lightning's DDP launcher starts ranks 1.. with
    ``sys.argv`` and ``hydra.run.dir``: in a multirun that is the whole sweep (each rank would run every job) in
    another folder; within this context it is this job alone, in its own folder. After the job the sweep's argv,
    the environment (Lightning's MASTER_PORT, WORLD_SIZE, ...) and a clean torch.distributed are restored, so the
    next job launches its own process group."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        yield
        return
    hc = HydraConfig.get()
    argv, run_dir, environ = sys.argv, hc.run.dir, dict(os.environ)
    sys.argv = [argv[0], *hc.overrides.task, "hydra.mode=RUN"]  # a preset may set MULTIRUN in its config
    with read_write(hc.run):
        hc.run.dir = str(output_dir)
    try:
        yield
    finally:
        sys.argv = argv
        with read_write(hc.run):
            hc.run.dir = run_dir
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        os.environ.clear()
        os.environ.update(environ)
