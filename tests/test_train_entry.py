"""``stylegan.train``'s own bookkeeping around a run, on one tiny finished run (one step of 8 images): the
checkpoint to resume is read once by this code, the composed config is checked once, and an error in the first
lines of ``train()`` (a finished run started again with other networks) still writes ``status.json`` "failed" with
its one line."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import stylegan.preflight
from sweeping import in_process, refusal

RUN = ["experiment=smoke", "total_kimg=0.008", "callbacks.samples.every_kimg=1000", "logger=none"]


def test_one_config_check_one_checkpoint_read_and_a_failed_status_for_an_early_error(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    checks: list[int] = []
    problems = stylegan.preflight.problems
    monkeypatch.setattr(stylegan.preflight, "problems", lambda cfg: checks.append(1) or problems(cfg))
    in_process(*RUN, f"hydra.run.dir={run}")
    assert json.loads((run / "status.json").read_text())["status"] == "completed"
    assert len(checks) == 1  # main's preflight; train() does not check the same config again

    ckpt, loads = run / "checkpoints" / "last.ckpt", []
    load = torch.load

    def counted(f, *args, **kwargs):
        if isinstance(f, str | Path) and Path(f) == ckpt:
            loads.append(kwargs)
        return load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counted)
    assert in_process(*RUN, f"hydra.run.dir={run}", "ckpt_path=auto") is None  # complete: nothing to train
    assert "] - complete: " in capsys.readouterr().out
    assert len(loads) == 1 and all(kw.get("weights_only") for kw in loads)  # kimg and the resume check share it

    status = json.loads((run / "status.json").read_text())
    line = refusal(capsys, ["stylegan-train", *RUN, f"hydra.run.dir={run}", "ckpt_path=auto",
                            "model.generator.channel_max=32"])
    assert "was trained with other networks" in line
    after = json.loads((run / "status.json").read_text())
    assert after["status"] == "failed" and line == f"stylegan-train: error: {after['error']}", after
    assert after["started"] == status["started"] and after["kimg"] == status["kimg"] == 0.008  # the rest is kept
