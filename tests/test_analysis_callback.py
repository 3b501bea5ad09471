"""``analysis=[droplets,contributions]`` (issue 30): the paper's analyses of G_ema logged during a real tiny training
run, checked against the same measurements recomputed from the run's final checkpoint (``stylegan analyze droplets``
and a float64 standard deviation of the ToRGB contributions by hand), their figures on disk and in the W&B run, and a
non-skip G refused in one line before anything is trained. One run serves every check."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from sweeping import in_process, refusal
from wandb_records import records

STEP_KIMG = 0.008  # the smoke preset's batch of 8: a tick every step
DROPLET_SEEDS, CONTRIBUTION_SEEDS = "0-3", "0-5"
# model.ema_rampup=null: G_ema stays near its init (beta 0.995 a step) while G moves, so measuring G is caught
BASE = ["experiment=smoke", "total_kimg=0.016", "data.max_images=64", "model.ema_rampup=null"]
RUN = [*BASE, "analysis=[droplets,contributions]",
       f"callbacks.droplets.every_kimg={STEP_KIMG}", f"callbacks.contributions.every_kimg={STEP_KIMG}",
       f"callbacks.droplets.seeds={DROPLET_SEEDS}", f"callbacks.contributions.seeds={CONTRIBUTION_SEEDS}",
       "callbacks.droplets.at_start=false", "callbacks.droplets.figure_seeds=1"]  # a figure takes ~0.3 s a row


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analysis_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        in_process(*RUN, "logger=[csv,wandb]", f"hydra.run.dir={out}")
    return out


def _logged(run: Path, prefix: str) -> list[dict[str, float]]:
    """The CSV log's rows with ``prefix`` columns, as {column: value} with kimg, read with the csv module."""
    with open(run / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return [{"kimg": float(r["kimg"]), **{k: float(v) for k, v in r.items() if k.startswith(prefix) and v}}
            for r in rows if any(k.startswith(prefix) and v for k, v in r.items())]


def _G(run: Path):
    from stylegan.model_files import load_generator

    G, kimg = load_generator(run / "checkpoints" / "last.ckpt")
    assert kimg == pytest.approx(0.016)
    return G


def test_every_tick_is_logged_with_its_figures(run):
    for prefix, ticks in (("contribution/", [0.0, 0.008, 0.016]), ("droplets/", [0.008, 0.016])):
        rows = _logged(run, prefix)
        assert [r["kimg"] for r in rows] == pytest.approx(ticks)  # (at the start,) each tick, the end not twice
        assert all(len(r) == 1 + (4 if prefix == "contribution/" else 8) for r in rows)  # 4x4..32x32
    for r in _logged(run, "contribution/"):
        assert sum(v for k, v in r.items() if k != "kimg") == pytest.approx(100.0, abs=1e-9)
    assert sorted(p.name for p in (run / "analysis").iterdir()) == [
        "contributions.csv", *(f"contributions_kimg{k}.png" for k in ("00000.00", "00000.01", "00000.02")),
        *(f"droplets_kimg{k}.{e}" for k in ("00000.01", "00000.02") for e in ("csv", "png"))]
    with open(run / "analysis" / "contributions.csv") as f:
        series = list(csv.DictReader(f))
    logged = {(r["kimg"], k.split("/")[1]): v for r in _logged(run, "contribution/")
              for k, v in r.items() if k != "kimg"}
    assert {(float(s["kimg"]), s["resolution"]): float(s["share"]) for s in series} == pytest.approx(logged)


def test_logged_contributions_equal_float64_stds_of_the_checkpoint(run):
    """The last tick's shares against the ToRGB contributions of the saved G_ema, std (ddof=1) in float64 by numpy."""
    import torch

    from stylegan.analysis.contributions import torgb_contributions
    from stylegan.tools.generate import parse_seeds, seed_latents

    G = _G(run).eval()
    seeds = parse_seeds(CONTRIBUTION_SEEDS)
    up, img = torgb_contributions(G, seeds_z := seed_latents(seeds, G.z_dim), torch.zeros([len(seeds_z), 0]))
    total = sum(y.double() for y in up.values())
    assert torch.allclose(total, img.double(), atol=1e-5)  # the pieces measured are what the skip G adds up
    stds = {res: np.std(y.double().numpy(), axis=0, ddof=1).mean() for res, y in up.items()}
    expected = {f"contribution/{res}": 100 * s / sum(stds.values()) for res, s in stds.items()}
    last = _logged(run, "contribution/")[-1]
    assert last.pop("kimg") == pytest.approx(0.016)
    assert last == pytest.approx(expected, rel=1e-9)
    assert len(set(np.round(list(expected.values()), 3))) == len(expected)  # resolutions told apart


def test_logged_droplets_equal_stylegan_analyze_on_the_checkpoint(run, tmp_path):
    from stylegan.tools.__main__ import main

    out = tmp_path / "droplets"
    assert main(["analyze", "droplets", "--model", str(run / "checkpoints" / "last.ckpt"), "--out", str(out),
                 "--seeds", DROPLET_SEEDS, "--device", "cpu"]) in (0, None)
    with open(out / "droplets.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["layer"] == "all"]
    expected = {}
    for r in rows:
        expected[f"droplets/{r['resolution']}/spike_ratio"] = float(r["spike_ratio"])
        expected[f"droplets/{r['resolution']}/colocation"] = float(r["colocation"])
    last = _logged(run, "droplets/")[-1]
    assert last.pop("kimg") == pytest.approx(0.016)
    assert last == expected  # the same code on the same weights and seeds: bit for bit
    tick, cli = run / "analysis" / "droplets_kimg00000.02.csv", out / "droplets.csv"  # per layer, that tick
    assert tick.read_text() == cli.read_text()


def test_the_wandb_run_has_the_scalars_and_the_figures(run):
    from PIL import Image

    (path,) = run.glob("wandb/offline-run-*/run-*.wandb")
    rows = []
    for rec in records(path):
        if rec.WhichOneof("record_type") == "history":
            row: dict = {}
            for i in rec.history.item:  # an image is nested: ("analysis/droplets", "filenames") ...
                keys = [i.key] if i.key else list(i.nested_key)
                node = row
                for k in keys[:-1]:
                    node = node.setdefault(k, {})
                node[keys[-1]] = json.loads(i.value_json)
            rows.append(row)
    scalars = [r for r in rows if "contribution/32" in r]
    assert [r["kimg"] for r in scalars] == pytest.approx([0.0, 0.008, 0.016])
    assert scalars[-1]["contribution/32"] == pytest.approx(_logged(run, "contribution/")[-1]["contribution/32"])
    assert len([r for r in rows if "droplets/32/spike_ratio" in r]) == 2
    for name, captions in (("droplets", ["kimg 0.01", "kimg 0.02"]), ("contributions", ["kimg 0.00", "kimg 0.01",
                                                                                          "kimg 0.02"])):
        images = [r[f"analysis/{name}"] for r in rows if f"analysis/{name}" in r]
        assert [i["captions"] for i in images] == [[c] for c in captions]
        (media,) = images[-1]["filenames"]
        logged = np.asarray(Image.open(path.parent / "files" / media).convert("RGB"))
        on_disk = np.asarray(Image.open(run / "analysis" / f"{name}_kimg00000.02.png").convert("RGB"))
        assert np.array_equal(logged, on_disk)  # the figure of that tick, pixel for pixel


@pytest.mark.parametrize("where", ["config", "built generator"])
def test_a_non_skip_generator_with_contributions_is_one_line_before_training(tmp_path, capsys, where):
    """Refused from the config (model.generator.architecture) or, when that key is not given, from the built G_ema."""
    extra = ["callbacks.contributions.architecture=null"] if where == "built generator" else []
    line = refusal(capsys, ["stylegan-train", "experiment=smoke", "model/generator=orig", "analysis=contributions",
                            f"hydra.run.dir={tmp_path}", *extra])
    named = "model.generator.architecture=orig" if where == "config" else "this generator's architecture is 'orig'"
    assert line.startswith("stylegan-train: error: analysis=contributions") and named in line
    assert "skip architecture" in line and "model/generator=skip" in line
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "analysis").exists()
    assert not (tmp_path / "samples").exists()  # nothing trained
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "failed"


def test_the_analysis_leaves_the_training_trajectory_alone(run, tmp_path):
    """A run measuring with noise_mode=random (torch's RNG) before its first step ends with the same G, D and G_ema as
    the fixture's run (constant noise): the measurement draws under a forked RNG and G_ema keeps its mode."""
    import torch

    in_process(*BASE, "analysis=droplets", "callbacks.droplets.every_kimg=0.016", "logger=none",
               "callbacks.droplets.seeds=0-1", "callbacks.droplets.noise_mode=random",
               "callbacks.droplets.figure_seeds=1", f"hydra.run.dir={tmp_path}")
    states = [torch.load(r / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
              for r in (run, tmp_path)]
    assert states[0].keys() == states[1].keys() and any(k.startswith("G_ema.") for k in states[0])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert len(list((tmp_path / "analysis").glob("droplets_kimg*.png"))) == 2  # it did measure (before step 1, end)


def test_the_sweep_report_tabulates_an_analysis_scalar_asked_for(run, tmp_path):
    """stylegan-report --metric contribution/<res> (or droplets/<res>/...): the run as job 0 of a sweep folder."""
    import shutil

    from stylegan.report import write_report

    shutil.copytree(run, tmp_path / "sweep" / "0", ignore=shutil.ignore_patterns("wandb", "analysis", "checkpoints"))
    for metric in ("contribution/32", "droplets/16/spike_ratio"):
        report = write_report(tmp_path / "sweep", metric, plot=False)
        with open(report.paths["csv"]) as f:
            (row,) = csv.DictReader(f)
        assert float(row[metric]) == _logged(run, metric)[-1][metric]
        assert f"Metric: `{metric}`" in report.paths["md"].read_text()


def test_bad_settings_are_one_line(tmp_path, capsys):
    from stylegan.preflight import ConfigError
    from stylegan.training.analysis_callback import ContributionsCallback, DropletsCallback

    line = refusal(capsys, ["stylegan-train", *BASE, "analysis=droplets", "callbacks.droplets.seeds=5-1",
                            f"hydra.run.dir={tmp_path}"])
    assert line == "stylegan-train: error: callbacks.droplets.seeds=5-1: range 5-1 runs backwards; use 1-5"
    assert not (tmp_path / "checkpoints").exists()
    for cls, kwargs, named in [(ContributionsCallback, {"seeds": "3"}, "callbacks.contributions.seeds='3'"),
                               (DropletsCallback, {"every_kimg": 0}, "callbacks.droplets.every_kimg=0"),
                               (DropletsCallback, {"noise_mode": "fixed"}, "callbacks.droplets.noise_mode='fixed'"),
                               (DropletsCallback, {"figure_seeds": 0}, "callbacks.droplets.figure_seeds=0"),
                               (DropletsCallback, {"batch_size": 0}, "callbacks.droplets.batch_size=0")]:
        with pytest.raises(ConfigError, match="^" + re.escape(named)):
            cls(str(tmp_path), **kwargs)


class _Strategy:
    def __init__(self, received=None):
        self.sent, self.received = [], received

    def broadcast(self, obj, src=0):
        self.sent.append(obj)
        return obj if self.received is None else self.received


def test_a_failure_on_rank_0_reaches_every_rank(tmp_path):
    """Rank 0 still reaches the tick's broadcast when its measurement fails (no rank left waiting) and raises its own
    error; another rank raises rank 0's line instead of logging nothing."""
    from types import SimpleNamespace

    from stylegan.training.analysis_callback import DropletsCallback

    class Broken(DropletsCallback):
        def measure(self, G, opts, kimg, stem):
            raise ValueError("boom")

    module = SimpleNamespace(cur_nimg=8, G_ema=SimpleNamespace(training=True, c_dim=0, train=lambda mode: None),
                             device=__import__("torch").device("cpu"))
    rank0 = SimpleNamespace(is_global_zero=True, strategy=_Strategy(), loggers=[], global_step=1, callback_metrics={})
    with pytest.raises(ValueError, match="boom"):
        Broken(str(tmp_path)).run(rank0, module)
    assert rank0.strategy.sent == [(None, "ValueError: boom")]
    rank1 = SimpleNamespace(is_global_zero=False, strategy=_Strategy(received=(None, "ValueError: boom")), loggers=[],
                            global_step=1, callback_metrics={})
    with pytest.raises(RuntimeError, match=r"^droplets analysis failed on rank 0 at kimg 0.008: ValueError: boom$"):
        Broken(str(tmp_path)).run(rank1, module)
    assert rank1.strategy.sent == [(None, None)] and rank1.callback_metrics == {}
