"""``callbacks.early_stopping``: stop when a metric evaluated during training has not improved for N evaluations.
The rule is checked against Lightning's own ``EarlyStopping``; a real run (smoke preset, an injected extractor that
makes FD worse at every evaluation) stops exactly at ``(patience + 1) * every_kimg`` as a normal end."""

from __future__ import annotations

import csv
import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping

from metrics_testing import PixelFeatures
from stylegan.training.early_stopping import MetricEarlyStopping
from sweeping import in_process, refusal

FD = "metrics/fd32_full@pixproj"


class WorseningFeatures(PixelFeatures):
    """PixelFeatures shifted by 0.5 per call: the reals (extracted once, first) stay put and every later batch of
    generated images moves further away, so FD grows with each evaluation whatever G learns."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 0.5 * self.calls


def _stops(values, **kwargs) -> int | None:
    """Index of the evaluation after which MetricEarlyStopping stops (None: never), driven as in training."""
    cb = MetricEarlyStopping(monitor="metrics/x", **kwargs)
    history: list = []
    cb._metrics = SimpleNamespace(history=history)
    trainer = SimpleNamespace(callback_metrics={}, should_stop=False, is_global_zero=True,
                              strategy=SimpleNamespace(reduce_boolean_decision=lambda d, all: d))
    for i, v in enumerate(values):
        history.append({})
        trainer.callback_metrics["metrics/x"] = torch.tensor(v, dtype=torch.float64)
        cb.on_train_batch_end(trainer, SimpleNamespace(cur_nimg=1000 * (i + 1)), None, None, i)
        cb.on_train_batch_end(trainer, SimpleNamespace(cur_nimg=1000 * (i + 1)), None, None, i)  # no new evaluation
        if trainer.should_stop:
            return i
    return None


def _lightning_stops(values, patience, mode, min_delta) -> int | None:
    ref = EarlyStopping(monitor="x", patience=patience, mode=mode, min_delta=min_delta, check_finite=False)
    for i, v in enumerate(values):
        if ref._evaluate_stopping_criteria(torch.tensor(v, dtype=torch.float64))[0]:
            return i
    return None


def test_the_rule_is_lightnings():
    rng = np.random.RandomState(0)
    stops = set()
    for trial in range(300):
        values = np.round(rng.randn(12).cumsum() * 0.5, 1).tolist()  # rounding makes ties
        if trial % 7 == 0:
            values[rng.randint(12)] = float("nan")
        patience, mode, min_delta = int(rng.randint(1, 4)), ("min", "max")[trial % 2], float(rng.choice([0, 0.1, 0.5]))
        expected = _lightning_stops(values, patience, mode, min_delta)
        assert _stops(values, patience=patience, mode=mode, min_delta=min_delta) == expected, (values, patience, mode)
        stops.add(expected)
    assert None in stops and len(stops) > 5  # the cases stop at many points, and some never
    # auto: precision and recall up, distances down
    assert _stops([3, 2, 1, 0], patience=1, mode="auto") is None
    assert MetricEarlyStopping("metrics/pr50k3_full_recall", mode="auto").mode == "max"
    assert MetricEarlyStopping("metrics/fd64_full@pixproj", mode="auto").mode == "min"


@pytest.mark.parametrize("patience", [2])
def test_a_run_stops_after_patience_evaluations_as_a_normal_end(tmp_path, patience):
    every, batch = 0.016, 8  # an evaluation every 2 steps of the smoke preset's batch of 8
    in_process("experiment=smoke", f"hydra.run.dir={tmp_path}", "total_kimg=0.256", "data.max_images=64",
               "metrics=fid", "callbacks.metrics.metrics=[fid32_full]", f"callbacks.metrics.every_kimg={every}",
               "callbacks.metrics.feature_extractor={_target_:test_early_stopping.WorseningFeatures}",
               f"callbacks.metrics.cache_dir={tmp_path / 'cache'}", "callbacks.metrics.batch_size=32",
               "callbacks.metrics.progress=false", f"callbacks.early_stopping.monitor={FD}",
               f"callbacks.early_stopping.patience={patience}", "callbacks.samples.every_kimg=100",
               "callbacks.checkpoint.every_kimg=100")
    stop_nimg = round((patience + 1) * every * 1000)  # the first value, then `patience` worse ones
    assert stop_nimg % batch == 0 and stop_nimg < 256
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get(FD)]
    assert [round(float(r["kimg"]) * 1000) for r in rows] == [round(every * 1000 * k) for k in range(1, patience + 2)]
    fd = [float(r[FD]) for r in rows]
    assert all(b > a for a, b in itertools.pairwise(fd))  # never improved after the first
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "completed" and round(status["kimg"] * 1000) == stop_nimg
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["stylegan"]["cur_nimg"] == stop_nimg
    (state,) = [v for k, v in last["callbacks"].items() if k.startswith("MetricEarlyStopping")]
    assert state == {"monitor": FD, "best": fd[0], "best_kimg": every, "wait": patience}
    assert (tmp_path / "samples" / "fakes_final.png").is_file()


def test_bad_settings_are_one_line(tmp_path, capsys):
    base = ["stylegan-train", "experiment=smoke", f"hydra.run.dir={tmp_path}"]
    line = refusal(capsys, [*base, "callbacks.early_stopping.patience=0", "callbacks.early_stopping.monitor=x"])
    assert "callbacks.early_stopping.patience=0 must be an integer >= 1" in line
    line = refusal(capsys, [*base, "callbacks.early_stopping.monitor=metrics/fid50k_full"])
    assert "callbacks.early_stopping.monitor=metrics/fid50k_full needs metrics during training" in line
    assert not (tmp_path / "checkpoints").exists()
