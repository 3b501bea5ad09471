"""Real Hydra multiruns of ``stylegan.train``: one W&B run per job (offline) with its resolved config, the sweep
report against the values each job logged, a failing job that does not stop the sweep, DDP jobs inside a
multirun, and an Optuna search optimising a logged metric."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from sweeping import FD, METRIC, QUICK, in_process, logged_last, run_env, sweep, wandb_run
from wandb_records import records

pytestmark = pytest.mark.xdist_group("grid")  # the session sweep grid: one worker builds it (conftest)


def test_every_job_is_its_own_wandb_run_with_its_config(grid):
    jobs = sorted(p for p in grid.iterdir() if (p / ".hydra").is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        run, config, exits = wandb_run(job)
        g, d = config["model"]["generator"]["architecture"], config["model"]["discriminator"]["architecture"]
        seen.add((g, d))
        assert run.display_name == f"model/generator={g} model/discriminator={d}"
        assert run.run_group == grid.name and run.job_type == "train"
        assert config["run"]["git_commit"] and config["paths"]["output_dir"] == str(job)
        assert config["loss"]["r1_gamma"] == 0.1 and exits == [0]  # the whole resolved config; finished cleanly
        assert json.loads((job / "status.json").read_text())["status"] == "completed"
        hparams = yaml.safe_load((job / "csv" / "hparams.yaml").read_text())
        assert hparams["model"]["generator"]["architecture"] == g
    assert seen == {("orig", "orig"), ("orig", "resnet"), ("skip", "orig"), ("skip", "resnet")}


def test_sweep_report_is_the_grid_of_logged_values(grid):
    """Written when the sweep ended; its CSV cells equal each job's last logged metric, the grid marks the best."""
    with open(grid / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    logged = {}
    for r in rows:
        value = logged_last(grid / r["job"], FD)
        assert float(r[FD]) == value
        logged[(r["model/generator"], r["model/discriminator"])] = value
    md = (grid / "report.md").read_text()
    assert "rows `model/generator`, columns `model/discriminator`" in md
    best = min(logged.values())
    grid_lines = [line for line in md.splitlines() if line.startswith("| **orig**") or line.startswith("| **skip**")]
    assert len(grid_lines) == 2
    for line in grid_lines:
        g = line.split("|")[1].strip().strip("*")
        cells = [c.strip() for c in line.split("|")[2:4]]
        for d, cell in zip(["orig", "resnet"], cells, strict=True):
            assert float(cell.strip("*")) == pytest.approx(logged[(g, d)], rel=1e-3)
            assert cell.startswith("**") == (logged[(g, d)] == best)
    _heatmap_shows(grid / "report.png", logged, rows=["orig", "skip"], cols=["orig", "resnet"])


def _heatmap_shows(png: Path, logged: dict, rows: list[str], cols: list[str]) -> None:
    """The decoded report.png holds each cell of the grid as a block of the colour the values give it (viridis,
    reversed: lower is better, normalized from the smallest to the largest logged value), at its row and column."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    lo, hi = min(logged.values()), max(logged.values())
    centers = {}
    for key, value in logged.items():
        rgb = np.round(np.array(colormaps["viridis_r"]((value - lo) / (hi - lo))[:3]) * 255)
        ys, xs = np.nonzero(np.abs(img - rgb).max(-1) <= 1)
        assert len(ys) > 2000, (key, value, len(ys))  # a cell of ~100 x 100 pixels less its text; a colorbar row: ~20
        centers[key] = (np.median(ys), np.median(xs))
    for r in rows:  # columns left to right
        assert centers[(r, cols[0])][1] < centers[(r, cols[1])][1], centers
    for c in cols:  # rows top to bottom
        assert centers[(rows[0], c)][0] < centers[(rows[1], c)][0], centers


def test_report_command_reads_the_same_sweep(grid, tmp_path):
    grid = Path(shutil.copytree(grid, tmp_path / "copy"))  # the shared sweep's own report stays as written
    out = subprocess.run([str(Path(sys.executable).parent / "stylegan-report"), str(grid), "--metric",
                          "timing/sec_per_kimg", "--no-plot"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "## timing/sec_per_kimg: rows `model/generator`" in out.stdout
    bad = subprocess.run([str(Path(sys.executable).parent / "stylegan-report"), str(grid), "--metric", "fid50k"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("stylegan-report: error: --metric fid50k was not logged")


def test_a_failing_job_is_logged_and_the_sweep_goes_on(tmp_path):
    """Job 1 diverges (lr 1e30) and stops on NaN after its loggers started; jobs 2-3 (a bad value) fail before."""
    root = tmp_path / "sweep"
    out = sweep(root, *QUICK, "logger=wandb", "model.nan_policy=stop", "loss.style_mixing_prob=0.5,7",
                "model.optim.g_lr=0.002,1e30", code=1)
    line = [x for x in out.stderr.splitlines() if x.startswith("stylegan-train: error:")]
    assert line and "3 of 4 sweep jobs failed (job 1: FloatingPointError: non-finite loss" in line[0]
    status = {job: json.loads((root / job / "status.json").read_text()) for job in "0123"}
    assert [status[j]["status"] for j in "0123"] == ["completed", "failed", "failed", "failed"]
    assert status["1"]["error"].startswith("FloatingPointError: non-finite loss or gradient in phase")
    assert status["2"]["error"] == "loss.style_mixing_prob must be in [0, 1], got 7"
    assert wandb_run(root / "0")[2] == [0] and wandb_run(root / "1")[2] == [1]  # two runs, the failed one closed
    assert wandb_run(root / "1")[0].display_name == "loss.style_mixing_prob=0.5 model.optim.g_lr=1e+30"
    assert not (root / "2" / "wandb").exists()  # refused before any logger started
    with open(root / "report.csv") as f:
        rows = {r["job"]: r for r in csv.DictReader(f)}
    assert [rows[j]["status"] for j in "0123"] == ["completed", "failed", "failed", "failed"]
    assert rows["2"]["error"] == status["2"]["error"]
    assert "## Failed and unfinished jobs" in (root / "report.md").read_text()


def test_ddp_jobs_in_a_multirun_run_once_each(tmp_path):
    """Lightning re-launches rank 1 with the command line: inside ``-m`` that must be this job, in its folder."""
    root = tmp_path / "sweep"
    out = sweep(root, *QUICK, "trainer=ddp_sim", "logger=csv", "model/generator=orig,skip")
    text = out.stdout + out.stderr
    assert text.count("Launching 2 jobs locally") == 1 and text.count("\t#1 : ") == 1
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["0", "1"]
    for job in ("0", "1"):
        assert (root / job / "train_ddp_process_1.log").is_file()  # rank 1 ran inside this job's folder
        status = json.loads((root / job / "status.json").read_text())
        assert status["status"] == "completed" and status["kimg"] == 0.016
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


def test_optuna_search_minimises_the_logged_metric(tmp_path):
    root = tmp_path / "sweep"
    sweep(root, *QUICK, *METRIC, "logger=csv", "hparams_search=optuna", f"optimized_metric={FD}",
          "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=2")
    jobs = sorted(p for p in root.iterdir() if (p / ".hydra").is_dir())
    values = [logged_last(job, FD) for job in jobs]
    assert len(values) == 2 and all(math.isfinite(v) for v in values)
    gammas = [yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["loss"]["r1_gamma"] for job in jobs]
    assert all(0.01 <= g <= 100 for g in gammas) and gammas[0] != gammas[1]  # sampled by the sweeper
    result = yaml.safe_load((root / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(min(values))
    assert json.loads((jobs[values.index(min(values))] / "status.json").read_text())["optimized_metric"] == min(values)


def test_tensorboard_logger_gets_scalars_grids_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    in_process(*QUICK, "logger=[csv,tensorboard]", f"hydra.run.dir={tmp_path}")
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/G", "loss/D", "kimg"} <= set(tags["scalars"]) and "samples/fakes" in tags["images"]
    with open(tmp_path / "csv" / "metrics.csv") as f:
        logged = [float(r["loss/G"]) for r in csv.DictReader(f) if r.get("loss/G")]
    assert [e.value for e in events.Scalars("loss/G")] == pytest.approx(logged)  # the same values as the CSV log
    hparams = (tmp_path / "tensorboard" / "hparams.yaml").read_text()
    assert "architecture: skip" in hparams and "git_commit:" in hparams


def test_ckpt_path_auto_resumes_the_run_and_its_wandb_run(tmp_path):
    """``ckpt_path=auto`` (what a requeued SLURM job uses): fresh when the run folder has no last.ckpt, else resume,
    continuing the same W&B run: its CSV log (rewritten by the resumed run) starts at iteration 2, where a restart
    from zero would log iterations 0-3."""
    def train(kimg: float) -> None:
        out = subprocess.run([sys.executable, "-m", "stylegan.train", *QUICK, "logger=[csv,wandb]", "ckpt_path=auto",
                              f"total_kimg={kimg}", f"hydra.run.dir={tmp_path}", "trainer.log_every_n_steps=1"],
                             env=run_env(), capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]

    train(0.016)
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["stylegan"]["iteration"] == 2
    train(0.032)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["stylegan"]
    assert (state["iteration"], state["cur_nimg"]) == (4, 32)
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = [(int(r["step"]), round(1000 * float(r["kimg"]))) for r in csv.DictReader(f)]
    assert rows == [(2, 24), (3, 32)]  # continued from iteration 2 (16 images), not restarted
    runs = sorted(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 2
    first, second = (next(r.run for r in records(p) if r.WhichOneof("record_type") == "run") for p in runs)
    assert first.run_id == second.run_id == json.loads((tmp_path / "status.json").read_text())["wandb_id"]
