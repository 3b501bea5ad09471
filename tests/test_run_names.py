"""A sweep job's W&B run name (``tracking.job_info``) is its swept overrides as written, also for a config group
given with a package (``group@pkg=a,b``: Hydra's ``key_or_group`` is the group alone) and for a sweep set in
``hydra.sweeper.params``; a fixed override is not part of the name."""

from __future__ import annotations

import sys

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from stylegan.training import tracking

G = "model/generator@model.extra"  # a package the defaults list does not hold: Hydra appends it with +


@pytest.mark.parametrize(("command_line", "params", "job"), [
    (["model/generator=orig,skip"], None, "model/generator=skip"),
    ([f"+{G}=orig,skip"], None, f"+{G}=skip"),
    ([f"+{G}=orig,skip", "loss.r1_gamma=1,2"], None, f"+{G}=skip loss.r1_gamma=2"),
    ([], {G: "orig,skip"}, f"{G}=skip"),
])
def test_a_sweep_jobs_run_name_is_its_swept_overrides(monkeypatch, command_line, params, job):
    task = ["experiment=smoke", *job.split(), "seed=3"]
    hc = OmegaConf.create({"mode": RunMode.MULTIRUN, "overrides": {"task": task}, "sweep": {"dir": "/runs/grid"},
                           "job": {"num": 1}, "sweeper": {"params": params}})
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: hc))
    monkeypatch.setattr(sys, "argv", ["stylegan-train", "-m", "experiment=smoke", *command_line, "seed=3"])
    info = tracking.job_info()
    assert (info.name, info.group, info.overrides, info.job_num) == (job, "grid", task, 1)
