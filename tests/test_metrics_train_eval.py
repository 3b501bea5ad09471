"""Real Hydra runs: training with the metrics callback (an injected test extractor), best.ckpt, the evaluate
command on our checkpoint and on official-format weights, and the one-line setup errors."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylegan.evaluate import load_generator
from stylegan.official import export_official
from sweeping import in_process, refusal, run_env

ROOT = Path(__file__).resolve().parents[1]
PIX = "{_target_:metrics_testing.PixelFeatures}"
DATA = ["data.max_images=256"]


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", module, *args], env=run_env(), capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    in_process("experiment=smoke", f"hydra.run.dir={run}", "total_kimg=0.128", *DATA, "metrics=fid",
         "callbacks.metrics.metrics=[fid64_full,kid64_full]", "callbacks.metrics.every_kimg=0.064",
         f"callbacks.metrics.feature_extractor={PIX}", f"callbacks.metrics.cache_dir={run / 'cache'}",
         "callbacks.metrics.batch_size=32")
    return run


def _logged(run: Path) -> list[dict[str, str]]:
    with open(run / "csv" / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r.get("metrics/fd64_full@pixproj")]


@pytest.mark.slow
def test_training_logs_metrics_under_honest_names_and_keeps_the_best_checkpoint(trained):
    rows = _logged(trained)
    assert [float(r["kimg"]) for r in rows] == [0.064, 0.128]  # every 0.064 kimg; the end is not repeated
    header = rows[0].keys()
    assert "metrics/kd64_full@pixproj" in header and not any("fid" in k or "kid" in k for k in header)
    fd = [float(r["metrics/fd64_full@pixproj"]) for r in rows]
    assert all(math.isfinite(v) and v > 0 for v in fd)
    best = torch.load(trained / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    (state,) = [v for k, v in best["callbacks"].items() if k.startswith("MetricsCallback")]
    assert state["best"] == min(fd) and state["best_metric"] == "fd64_full@pixproj"
    assert best["stylegan"]["cur_nimg"] / 1000 == float(rows[fd.index(min(fd))]["kimg"]) == state["best_kimg"]
    assert len(list((trained / "cache").glob("real-pixproj-features-256-*.pt"))) == 1  # shared by FD and KD
    assert not list((trained / "cache").glob("real-pixproj-stats-*.pt"))


@pytest.mark.slow
def test_evaluate_reproduces_the_logged_value_from_our_checkpoint_and_official_weights(trained, tmp_path):
    """Same G_ema, seed and batch size as during training: the same numbers, from the .ckpt and from the
    official-format export of its G_ema."""
    best = torch.load(trained / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    state = next(v for k, v in best["callbacks"].items() if k.startswith("MetricsCallback"))
    G, kimg = load_generator(trained / "checkpoints" / "best.ckpt")
    official = tmp_path / "official.pt"
    torch.save(export_official(G), official)
    common = [*DATA, "metric_names=[fid64_full,kid64_full]", f"feature_extractor={PIX}", "batch_size=32",
              f"cache_dir={trained / 'cache'}", "progress=false", f"hydra.run.dir={tmp_path / 'hydra'}"]
    records = []
    for ckpt, name in ((trained / "checkpoints" / "best.ckpt", "ours.json"), (official, "official.json")):
        in_process(f"ckpt={ckpt}", f"output={tmp_path / name}", *common, entry="stylegan.evaluate")
        records.append(json.loads((tmp_path / name).read_text()))
    ours, theirs = records
    assert ours["results"]["fd64_full@pixproj"] == pytest.approx(state["best"], rel=1e-12)
    assert ours["results"] == theirs["results"]
    assert set(ours["results"]) == {"fd64_full@pixproj", "kd64_full@pixproj"}
    assert (ours["kimg"], theirs["kimg"]) == (kimg, None) and kimg == state["best_kimg"]
    assert ours["networks"] == {"features": {"name": "pixproj", "standard": False}}
    assert ours["metrics"][0] == {"name": "fid64_full", "num_gen": 64, "num_real": 256}
    assert ours["ckpt"] == str((trained / "checkpoints" / "best.ckpt").resolve())


def test_evaluate_bad_metric_name_is_one_line(tmp_path, capsys):
    line = refusal(capsys, ["stylegan-evaluate", "ckpt=/nonexistent.ckpt", "metric_names=[fid50k_fulll]",
                            f"hydra.run.dir={tmp_path}"], entry="stylegan.evaluate")
    assert "'fid50k_fulll'" in line and "valid forms" in line


def test_training_with_missing_extractor_weights_stops_before_the_first_step(tmp_path, capsys):
    missing = tmp_path / "pt_inception-2015-12-05.pth"
    line = refusal(capsys, ["stylegan-train", "experiment=smoke", f"hydra.run.dir={tmp_path / 'run'}", "metrics=fid",
                            f"callbacks.metrics.feature_extractor_weights_path={missing}"])
    assert str(missing) in line and "metrics.feature_extractor_weights_path" in line
    run = tmp_path / "run"
    assert not (run / "checkpoints").exists() and not (run / "samples").exists()
    assert not (run / "csv" / "metrics.csv").exists()  # no step logged
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and line.endswith(status["error"])


@pytest.mark.slow
def test_ddp_training_metrics_equal_a_single_process_evaluation(tmp_path):
    """trainer=ddp_sim (2 gloo processes, each generating half the batches) logs the value that one process
    computes afterwards from best.ckpt with its own real statistics: bitwise equal."""
    run = tmp_path / "ddp"
    _run("stylegan.train", "experiment=smoke", "trainer=ddp_sim", f"hydra.run.dir={run}", "total_kimg=0.128",
         *DATA, "metrics=fid", "callbacks.metrics.metrics=[fid64_full,kid64_full]",
         "callbacks.metrics.every_kimg=0.064", f"callbacks.metrics.feature_extractor={PIX}",
         f"callbacks.metrics.cache_dir={run / 'cache'}", "callbacks.metrics.batch_size=32")
    logged = _logged(run)
    assert len(logged) == 2
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    kimg = best["stylegan"]["cur_nimg"] / 1000
    (row,) = [r for r in logged if float(r["kimg"]) == kimg]
    in_process(f"ckpt={run / 'checkpoints' / 'best.ckpt'}", f"output={tmp_path / 'e.json'}", *DATA,
               "metric_names=[fid64_full,kid64_full]", f"feature_extractor={PIX}", "batch_size=32",
               f"cache_dir={tmp_path / 'fresh_cache'}", "progress=false", f"hydra.run.dir={tmp_path / 'hydra'}",
               entry="stylegan.evaluate")
    results = json.loads((tmp_path / "e.json").read_text())["results"]
    assert results["fd64_full@pixproj"] == float(row["metrics/fd64_full@pixproj"])
    assert results["kd64_full@pixproj"] == float(row["metrics/kd64_full@pixproj"])
