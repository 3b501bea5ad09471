"""The preflight (stylegan/preflight.py, issue 34): a mistake in the composed config is one line naming the key, exit
code 2, before anything is instantiated or written. The issue's table runs through the real entry points (their
``main()`` in this process, as in test_cli_errors); the verdicts on values are checked against the libraries that
would refuse them later (torch.optim.Adam, lightning.Trainer, OmegaConf) and the metric names against what the
metrics runner logs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from metrics_testing import PixelDistance, PixelFeatures
from stylegan import preflight
from stylegan.metrics.runner import MetricRunner, Networks
from stylegan.report.__main__ import main as report_main
from sweeping import PIX, QUICK, in_process, refusal

CONF = str(Path(__file__).resolve().parents[1] / "conf")
HYDRA_OWN = {"multirun.yaml"}  # besides .hydra/ and the job's log file


def _written(folder: Path) -> list[str]:
    """Files under ``folder`` that are not Hydra's own (``.hydra/``, ``<job>.log``, ``multirun.yaml``)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".hydra" not in p.parts
                  and p.suffix != ".log" and p.name not in HYDRA_OWN)


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _messages(cfg) -> list[str]:
    return [p.message for p in preflight.problems(cfg)]


# ------------------------------------------------------------------------------------ the issue's table, end to end
TABLE = {  # id: (entry, overrides, the line names)
    "evaluate_without_ckpt": ("stylegan.evaluate", [], "error: ckpt has no value (??? in the config): give it on "
                              "the command line, e.g. ckpt=PATH"),
    "folder_without_source": ("stylegan.train", ["data=folder"], "error: data.source has no value (??? in the "
                              "config): give it on the command line, e.g. data.source=~/images.zip"),
    "negative_lr": ("stylegan.train", ["model.optim.g_lr=-1"], "error: model.optim.g_lr=-1 must be a finite number > "
                    "0 (Adam's learning rate"),
    "beta_above_1": ("stylegan.train", ["model.optim.betas=[0,1.5]"], "error: model.optim.betas=[0, 1.5] must be "
                     "two numbers in [0, 1)"),
    "optuna_without_metrics": ("stylegan.train", ["-m", "hparams_search=optuna"], "error: optimized_metric=metrics/"
                               "fid50k_full but no metric is computed during training (callbacks.metrics is null"),
    "gpu_without_cuda": ("stylegan.train", ["trainer=gpu"], "error: trainer.accelerator=gpu but no CUDA device is "
                         "available: use trainer=cpu"),
}


@pytest.mark.parametrize("case", [*TABLE, "report_of_a_run_folder"])
def test_the_issue_table_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, case):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same verdict on a machine with a GPU
    folder = tmp_path / "run"
    if case == "report_of_a_run_folder":  # a single run's folder (its .hydra/ at the top), not a sweep's
        refusal(capsys, ["stylegan-train", *QUICK, f"hydra.run.dir={folder}", "model.optim.g_lr=-1"])
        before = sorted(folder.rglob("*"))
        assert report_main([str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"stylegan-report: error: {folder} is the folder of one run") and err.count("\n") == 1
        assert sorted(folder.rglob("*")) == before and not list(folder.glob("report.*"))
        return
    entry, overrides, expected = TABLE[case]
    where = "hydra.sweep.dir" if "-m" in overrides else "hydra.run.dir"
    args = [*QUICK, "logger=csv"] if entry == "stylegan.train" else []
    flags = [o for o in overrides if o.startswith("-")]  # Hydra's flags go before the overrides
    line = refusal(capsys, ["prog", *flags, *args, f"{where}={folder}", *overrides[len(flags):]], entry=entry)
    assert expected in line, line
    assert _written(folder) == []  # no status.json, checkpoint, log, sample grid or sweep report


# ------------------------------------------------------------------------------------- values, against the libraries
def _adam_accepts(lr, betas, eps) -> bool:
    try:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr, betas=betas, eps=eps)
    except Exception:
        return False
    return True


def test_adam_arguments_are_refused_where_torch_refuses_them():
    """Every (lr, betas, eps) of a grid: accepted by the preflight => torch.optim.Adam accepts it; refused by torch
    => refused here. The preflight is stricter only where torch accepts a run that cannot learn (lr 0 or inf) or can
    divide by zero (eps=0)."""
    stricter = 0
    for lr in [-1, 0, 1e-30, 0.002, 1e30, math.nan, math.inf, "x"]:
        for betas in [[0, 0.99], [0.9, 0.999], [0, 1], [0, 1.5], [-0.1, 0.5], [0.5]]:
            for eps in [1e-8, 0, -1, math.nan]:
                cfg = OmegaConf.create({"model": {"optim": {"g_lr": lr, "d_lr": 0.002, "betas": betas, "eps": eps}}})
                found = preflight.optimizer_values(cfg)
                torch_ok = _adam_accepts(lr, tuple(map(float, betas)), eps)  # lazy_adam passes beta ** c: floats
                assert torch_ok or found, (lr, betas, eps)
                if torch_ok and found:
                    assert lr in (0, math.inf) or eps == 0, (lr, betas, eps, found)
                    stricter += 1
                for p in found:
                    assert p.message.startswith(f"{p.keys[0]}=")
    assert stricter == 2 * 2 * 2 + 3 * 2 * 1  # lr 0 or inf (x 2 valid betas x eps 1e-8, 0); eps=0 (x 3 lrs x 2 betas)


def _trainer_accepts(**kwargs) -> bool:
    import lightning as L

    try:
        L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                  **kwargs)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("key,values", [
    ("precision", [32, "32-true", "bf16-mixed", "16-mixed", "64-true", "fp8", "half", 33]),
    ("strategy", ["auto", "ddp", "ddp_spawn", "single_device", "dp", "horovod", "bogus"]),
    ("devices", [1, 2, "auto", "2", 0, -1, [0, 1], "x"]),
    ("num_nodes", [1, 2, 0, -1]),
])
def test_trainer_values_are_refused_where_lightning_refuses_them(key, values):
    """On the CPU accelerator (the one every machine has) the preflight's verdict equals lightning.Trainer's."""
    for value in values:
        cfg = OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 1, key: value}})
        found = [p for p in preflight.trainer_values(cfg) if f"trainer.{key}" in p.keys]
        assert (not found) == _trainer_accepts(accelerator="cpu", **{"devices": 1, key: value}), (key, value, found)


@pytest.mark.parametrize("devices,strategy,accepted", [
    (1, None, True), (2, None, True), (3, None, False), (-1, None, True), ("auto", None, True), ("0,1", None, True),
    ([0, 1], None, True), ([1, 2], None, False), ([0, 0], None, False), (0, None, False), (2, "single_device", False),
    (1, "single_device", True), ("auto", "single_device", False), (2, "ddp", True),
])
def test_gpu_devices_against_what_the_machine_has(monkeypatch, devices, strategy, accepted):
    """A machine with 2 CUDA devices: a count in 1..2, distinct indices in [0, 1], -1 or auto; one device for a
    single-device strategy. Without CUDA, trainer=gpu is refused whatever the devices."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    trainer = {"accelerator": "gpu", "devices": devices, **({"strategy": strategy} if strategy else {})}
    cfg = OmegaConf.create({"trainer": trainer})
    found = preflight.trainer_values(cfg)
    assert (not found) == accepted, found
    if not accepted:
        assert found[0].message.startswith(f"{found[0].keys[0]}=") and "2" in found[0].message
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    (problem,) = preflight.trainer_values(cfg)
    assert problem.message.startswith("trainer.accelerator=gpu but no CUDA device is available: use trainer=cpu")


def test_missing_values_are_the_ones_omegaconf_finds():
    cfg = OmegaConf.create({"a": "???", "b": {"c": "???", "d": [1, "???", {"e": "???"}]}, "f": "${h.i}", "g": ["???"],
                            "h": {"i": 1}, "hydra": {"job": {"name": "???"}}})
    expected = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra."))
    assert sorted(p.keys[0] for p in preflight.missing_values(cfg)) == expected == ["a", "b.c", "b.d[1]", "b.d[2].e",
                                                                                   "g[0]"]


# ------------------------------------------------------------------------------------------------------ objective
def _logged(names: list[str], features, pr, distance) -> list[str]:
    """What the metrics callback logs (``metrics/`` + MetricRunner.keys()) with these networks."""
    runner = MetricRunner(names, Networks(features, pr, distance), cache_dir=None)
    return [f"metrics/{k}" for k in runner.keys()]  # noqa: SIM118 (a method, not a dict)


class _Standard(PixelFeatures):
    """Stands in for a built-in network (the builders' only mark: ``standard = True``)."""

    standard = True


def test_objective_is_a_value_the_configured_metrics_log():
    """Every name the runner logs is accepted as optimized_metric, and near misses are refused: with the built-in
    networks (``feature_extractor: inception``) the official names, with an injected module fd/kd...@<its name>."""
    names = ["fid64_full", "kid64_full", "pr64k3", "ppl2_wend"]
    base = ["experiment=smoke", "metrics=paper", f"callbacks.metrics.metrics=[{','.join(names)}]"]
    standard = _Standard()
    injected = {"callbacks.metrics.feature_extractor": PIX, "callbacks.metrics.pr_extractor": PIX,
                "callbacks.metrics.ppl_distance": "{_target_:metrics_testing.PixelDistance}"}
    for overrides, nets, other in [([], (standard, standard, _StandardDistance()), "metrics/fd64_full@pixproj"),
                                   ([f"{k}={v}" for k, v in injected.items()],
                                    (PixelFeatures(), PixelFeatures(), PixelDistance()), "metrics/fid64_full")]:
        logged = _logged(names, *nets)
        assert len(logged) == 5 and other not in logged
        cfg = _compose(*base, *overrides)
        for name in logged:
            cfg.optimized_metric = name
            assert _messages(cfg) == [], name
        misses = [other, "metrics/fid50k_full", "metrics/fd64_full@other", "metrics/fid64", "metrics/pr64k3_recall@x"]
        for name in misses:
            assert name not in logged
            cfg.optimized_metric = name
            (line,) = _messages(cfg)
            assert line.startswith(f"optimized_metric={name} is not logged by the configured metrics"), line
    assert _messages(_compose("experiment=smoke", "optimized_metric=loss/G")) == []  # logged by the module: unknown


class _StandardDistance(PixelDistance):
    standard = True


def test_a_problem_with_a_swept_value_is_left_to_its_job():
    """In a sweep only problems of keys the sweep does not vary end it; a group's package is what it varies."""
    cfg = _compose("experiment=smoke", "model.optim.g_lr=-1", "hparams_search=optuna")
    with pytest.raises(preflight.ConfigError, match=r"model\.optim\.g_lr=-1"):
        preflight.check(cfg)
    with pytest.raises(preflight.ConfigError, match=r"optimized_metric=metrics/fid50k_full "):
        preflight.check(cfg, frozenset({"model.optim.g_lr"}))
    preflight.check(cfg, frozenset({"model.optim", "callbacks"}))
    conf = Path(CONF)
    assert preflight._package("metrics", conf) == "callbacks"  # '# @package callbacks'
    assert preflight._package("model/style", conf) == "model.generator"
    assert preflight._package("model/generator", conf) == "model.generator"
    assert preflight._package("experiment", conf) is None  # _global_: any key
    assert preflight._package("loss.r1_gamma", conf) == "loss.r1_gamma"


def test_sweep_jobs_with_a_bad_swept_value_fail_alone(tmp_path, capsys):
    """``-m model.optim.g_lr=-1,-2``: not refused as a whole; each job fails with the one line in its status.json
    (nothing trains), and the sweep ends with the report's exit code 1."""
    import json

    root = tmp_path / "sweep"
    with pytest.raises(SystemExit) as exit_info:
        in_process("-m", *QUICK, "logger=csv", f"hydra.sweep.dir={root}", "model.optim.g_lr=-1,-2")
    assert exit_info.value.code == 1
    for job, lr in (("0", -1), ("1", -2)):
        status = json.loads((root / job / "status.json").read_text())
        assert status["status"] == "failed"
        assert status["error"].startswith(f"model.optim.g_lr={lr} must be a finite number > 0")
        assert not (root / job / "checkpoints").exists()
    assert "2 of 2 sweep jobs failed" in capsys.readouterr().err
