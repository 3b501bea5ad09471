"""``metrics=cpu``: a real sweep on the built-in digits whose report carries the mnist_lenet columns (the values each
job logged), the conditional class accuracy included; the presets that use it."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir

from sweeping import QUICK, ROOT, in_process, logged_last

FD = "metrics/fd200_full@mnist_lenet"
ACC = "metrics/class_acc200@mnist_lenet"


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("preset", [["experiment=tiny"], ["scale=cpu"], ["ablation=table2", "scale=cpu"],
                                    ["experiment=config_e", "scale=cpu"]])
def test_cpu_presets_use_the_cpu_metrics_by_default_and_metrics_none_turns_them_off(preset):
    m = _compose(*preset).callbacks.metrics
    assert list(m.metrics) == ["fid1k_full"] and list(m.conditional_metrics) == ["class_acc1k"]
    assert m.feature_extractor["_target_"] == "stylegan.metrics.judges.MnistLeNet"
    assert _compose(*preset, "metrics=none").callbacks.metrics is None


def test_the_demo_and_the_gpu_presets_keep_their_metrics():
    assert _compose("experiment=paper256").callbacks.metrics is None
    assert _compose("experiment=mnist_demo").callbacks.metrics is None  # the demo stays as measured


def test_sweep_report_has_the_judge_columns_with_the_logged_values(tmp_path):
    root = tmp_path / "sweep"
    # a one-job multirun (the report is the sweep's); the preset with fewer samples than its 1000 (they would cost
    # more than this test's tiny networks' training)
    in_process("-m", f"hydra.sweep.dir={root}", *QUICK, "metrics=cpu", "callbacks.metrics.metrics=[fid200_full]",
               "callbacks.metrics.conditional_metrics=[class_acc200]", "logger=csv", "data.use_labels=true",
               "callbacks.metrics.cache_dir=${hydra:sweep.dir}/cache", "model.generator.c_dim=10")
    with open(root / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    for r in rows:
        fd, acc = logged_last(root / r["job"], FD), logged_last(root / r["job"], ACC)
        assert float(r[FD]) == fd and float(r[ACC]) == acc
        assert math.isfinite(fd) and fd > 0 and 0 <= acc <= 1
    md = (root / "report.md").read_text()
    assert f"Metric: `{FD}`" in md and ACC in md  # the quality column is the default metric
    assert not any(c.startswith(("metrics/fid", "metrics/kid")) for c in rows[0])  # never called FID
    assert len(list((root / "cache").glob("real-mnist_lenet-stats-*.pt"))) == 1  # the reals statistics, cached


def test_conditional_metrics_join_only_for_a_conditional_generator():
    from stylegan.metrics import MetricsCallback, MetricSetupError
    from stylegan.metrics.judges import MnistLeNet

    def keys(c_dim: int, extractor=None) -> list[str]:
        cb = MetricsCallback(["fid1k_full"], feature_extractor=extractor or MnistLeNet(),
                             conditional_metrics=["class_acc1k"], progress=False)
        cb.setup(None, SimpleNamespace(G_ema=SimpleNamespace(c_dim=c_dim)), "fit")
        return cb.runner.keys()

    assert keys(0) == ["fd1k_full@mnist_lenet"]
    assert keys(10) == ["fd1k_full@mnist_lenet", "class_acc1k@mnist_lenet"]
    with pytest.raises(MetricSetupError, match="c_dim=7 but mnist_lenet knows 10 classes"):
        keys(7)
    with pytest.raises(MetricSetupError, match="unknown metric 'class_acc'"):
        MetricsCallback(["fid1k_full"], conditional_metrics=["class_acc"]).setup(None, None, "fit")
