"""Rounds of gradient accumulation (``model.batch_gpu``) under real DDP (2 gloo processes on CPU).

As the official loop (``misc.ddp_sync(module, sync)`` true only on a phase's last round), only the last backward
before each optimizer step all-reduces the gradients: the rounds before it keep theirs on the device and the one
all-reduce averages their sum. Checked: (1) the all-reduces, counted by a DDP communication hook on every rank,
are one per optimizer step, not one per round; (2) the weights equal a one-process run with the same global batch
split into as many rounds per phase (with the rounds' means summed, 2 ranks x 2 rounds of 2 images and 1 process x
2 rounds of 4 images give the same gradient). Path length is off here: its running mean is updated per round and
the rounds hold other images (tests/test_ddp.py checks it under DDP in one round).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import stylegan.training.module as module_py
from sweeping import in_process, run_env
from test_batch_gpu import ROUND, N, _networks, _train
from test_ddp import COMMON

ROUNDS = ["loss.pl_weight=0", "total_kimg=0.016"]  # 2 iterations of 8 images; R1 (d_reg_interval=2) at iteration 0


def _ddp_run(run_dir: Path, counts: Path) -> None:
    count = ["+callbacks.count._target_=gradient_syncs.CountGradientSyncs", f"+callbacks.count.out_dir={counts}"]
    cmd = [sys.executable, "-m", "stylegan.train", f"hydra.run.dir={run_dir}", *COMMON, *ROUNDS, *count,
           "trainer=ddp_sim", "data.batch_size=4", "model.batch_gpu=2"]
    out = subprocess.run(cmd, env=run_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]


@pytest.mark.slow
def test_ddp_rounds_all_reduce_once_per_step_and_equal_one_process(tmp_path):
    _ddp_run(tmp_path / "two", tmp_path / "counts")
    in_process(f"hydra.run.dir={tmp_path / 'one'}", *COMMON, *ROUNDS, "trainer=cpu", "data.batch_size=8",
               "model.batch_gpu=4")
    iterations = 2
    steps = 2 * iterations + len(range(0, iterations, 2))  # G and D main each iteration; D reg every 2nd
    for rank in (0, 1):
        counts = json.loads((tmp_path / "counts" / f"rank{rank}.json").read_text())
        assert counts == {"backwards": 2 * steps, "steps": steps, "syncs": steps}, (rank, counts)
    one, two = (torch.load(tmp_path / d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
                for d in ("one", "two"))
    assert one["stylegan"]["iteration"] == two["stylegan"]["iteration"] == iterations
    a, b = one["state_dict"], two["state_dict"]
    assert a.keys() == b.keys()
    compared = 0
    for k in a:
        if k.endswith("w_avg"):  # tracked from each rank's own batch (truncation only)
            continue
        torch.testing.assert_close(b[k], a[k], rtol=1e-9, atol=1e-12, msg=lambda m, k=k: f"{k}: {m}")
        compared += a[k].numel()
    assert compared > 10_000


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("lazy", [True, False])
def test_only_the_last_backward_before_each_step_syncs(monkeypatch, lazy):
    """The rule the DDP run above counts, in every phase layout (one process, recorded): lazy (Gmain, Greg, Dmain,
    Dreg: four steps at iteration 0) and not lazy (Gboth: the Gmain rounds and the Greg rounds share a step, so the
    Gmain rounds must not sync; Dboth: R1 in the main rounds' backward). Each step follows a synchronizing backward,
    and no other backward syncs."""
    events: list[str] = []
    real_sync, real_step = module_py.gradient_sync, module_py.StyleGAN2Module._step

    def sync(trainer, flag: bool):
        events.append("sync" if flag else "local")
        return real_sync(trainer, flag)

    def step(self, *args, **kwargs):
        events.append("step")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(module_py, "gradient_sync", sync)
    monkeypatch.setattr(module_py.StyleGAN2Module, "_step", step)
    G, D = _networks()
    _train(G, D, iterations=2, batch_gpu=ROUND, lazy=lazy)
    k = N // ROUND
    # per step: k backwards (Gboth: 2k), the last one synchronizing; path length and R1 due at iteration 0
    per_step = ["local"] * (k - 1) + ["sync", "step"]
    g_both = ["local"] * (2 * k - 1) + ["sync", "step"]
    iteration0 = per_step * 4 if lazy else g_both + per_step
    iteration1 = per_step * 2 if lazy else g_both + per_step
    assert events == iteration0 + iteration1
