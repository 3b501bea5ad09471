"""Bad non-data input to ``stylegan-train``: one line naming the key or file and the fix, exit code 2, no traceback,
and an existing checkpoint left as it was. The entry point runs in this process (``main()`` with ``sys.argv``, the
console script's own code path) to keep the suite short; test_train_hydra checks the same rule across a real
process boundary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from sweeping import QUICK, in_process, refusal


def _cli(capsys, run_dir: Path, *overrides: str) -> str:
    return refusal(capsys, ["stylegan-train", *QUICK, "logger=csv", f"hydra.run.dir={run_dir}", *overrides])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("trained")
    in_process(*QUICK, "logger=csv", f"hydra.run.dir={run}")
    return run / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("overrides,expected", [
    (["total_kimg=0"], "total_kimg=0 must be > 0"),
    (["total_kimg=-1"], "total_kimg=-1 must be > 0"),
    (["model.generator.z_dim=0"], "model.generator: z_dim must be an integer >= 1, got 0"),
    (["model.generator.mapping_kwargs.num_layers=0"], "model.generator: mapping_num_layers must be an integer >= 1"),
    (["data.batch_size=6"], "data.batch_size=6 (per device) is not a multiple of model.discriminator.mbstd_group_size"),
    (["loss.style_mixing_prob=7"], "error: loss.style_mixing_prob must be in [0, 1], got 7"),
    (["ckpt_path=/no/such.ckpt"], "ckpt_path=/no/such.ckpt does not exist"),
    (["data.use_labels=true"], "data has c_dim=10 labels but the generator has c_dim=0: set model.generator.c_dim=10"),
    (["model.compile=fast"], "error: model.compile.mode='fast' is not one of ('default', 'max-autotune-no-"),
    (["model.compile=reduce-overhead"], "error: model.compile.mode='reduce-overhead' uses CUDA graphs"),
    (["model.compile={backend:nope}"], "error: model.compile.backend='nope' is not a torch.compile backend here: ["),
    (["model.compile={speed:1}"], "error: model.compile.speed is not a torch.compile option here"),
    (["model.compile={phases:[gmain]}"], "error: model.compile.phases=['gmain'] must be a non-empty list of ['main',"),
    # what Lightning refuses inside Hydra's instantiate (MisconfigurationException): the key, target and reason
    (["trainer.max_epochs=-2"], "error: trainer: lightning.pytorch.trainer.trainer.Trainer refused these arguments: "
                                "`max_epochs` must be a non-negative integer or -1. You passed in -2."),
])
def test_bad_config_is_one_line(tmp_path, capsys, overrides, expected):
    assert expected in _cli(capsys, tmp_path / "run", *overrides)
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before training wrote anything


@pytest.mark.parametrize("env", [{"LOCAL_RANK": "1"}, {"SLURM_LOCALID": "3"}])
def test_the_other_ranks_of_a_machine_exit_2_without_repeating_the_line(tmp_path, capsys, monkeypatch, env):
    """Under DDP every rank meets the same bad input: only the first process of a machine (LOCAL_RANK / srun's
    SLURM_LOCALID 0 or unset) prints the line; all exit with code 2 (the line printed twice before)."""
    assert "total_kimg=0 must be > 0" in _cli(capsys, tmp_path / "first", "total_kimg=0")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_info:
        in_process(*QUICK, "logger=csv", f"hydra.run.dir={tmp_path / 'other'}", "total_kimg=0")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "error:" not in err and "Traceback" not in err, err[-2000:]


@pytest.mark.parametrize("sub", ["", "/run"])
@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_output_dir_that_is_a_file_is_one_line(tmp_path, capsys, key, sub):
    """Hydra would stop in a FileExistsError / NotADirectoryError traceback before our code; the file is kept."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    line = refusal(capsys, ["stylegan-train", *QUICK, f"{key}={blocker}{sub}"])
    assert f"{key}={blocker}{sub}" in line and ("is a file" if not sub else f"under the file {blocker}") in line
    assert blocker.read_text() == "keep me"


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_unreadable_checkpoint_is_named(tmp_path, capsys, trained, damage):
    bad = tmp_path / "bad.ckpt"
    data = trained.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a checkpoint\n")
    assert f"ckpt_path={bad} is not a readable checkpoint" in _cli(capsys, tmp_path / "run", f"ckpt_path={bad}")


def test_checkpoint_of_other_networks_names_the_config_that_differs(capsys, trained):
    before = trained.read_bytes()
    # total_kimg beyond the checkpoint's: a run that already reached it trains nothing and checks nothing
    line = _cli(capsys, trained.parent.parent, f"ckpt_path={trained}", "model/generator=resnet", "total_kimg=1")
    assert "model.generator.architecture='skip' in the checkpoint, 'resnet' here" in line
    assert trained.read_bytes() == before  # resumed in its own folder: the checkpoint is untouched
    assert torch.load(trained, weights_only=True)["stylegan"]["cur_nimg"] == 16


def test_wandb_without_key_or_offline_mode_is_one_line(tmp_path, capsys, monkeypatch):
    for key in [k for k in os.environ if k.startswith("WANDB")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    line = _cli(capsys, tmp_path / "run", "logger=wandb")
    assert "logger.wandb: no W&B API key" in line and "WANDB_MODE=offline" in line
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "failed"


def _instantiate_error(**node) -> Exception:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    with pytest.raises(Exception) as info:
        instantiate(OmegaConf.create({"part": node}).part)
    return info.value


def test_instantiate_errors_are_one_line_unless_raised_by_our_code():
    """Hydra wraps what a target raises; Lightning's MisconfigurationException, a call's TypeError (an unknown
    argument) and a target that cannot be imported are bad input (one line naming key and target), but a TypeError
    raised inside this package is a bug and keeps its traceback (None)."""
    from stylegan.cli import bad_input_line

    trainer = {"_target_": "lightning.Trainer", "accelerator": "cpu", "logger": False}
    assert bad_input_line(_instantiate_error(**trainer, devices=0)) == (
        "part: lightning.pytorch.trainer.trainer.Trainer refused these arguments: `Trainer(devices=0)` value is not a "
        "valid input using cpu accelerator.")
    assert bad_input_line(_instantiate_error(**trainer, speed=1)) == (
        "part: lightning.pytorch.trainer.trainer.Trainer refused these arguments: Trainer.__init__() got an "
        "unexpected keyword argument 'speed'")
    line = bad_input_line(_instantiate_error(_target_="stylegan.no_such_module.Thing"))
    assert line.startswith("part: _target_ stylegan.no_such_module.Thing cannot be imported: ") and "\n" not in line
    assert "No module named 'stylegan.no_such_module'" in line
    bug = _instantiate_error(_target_="stylegan.training.LossConfig", r1_gamma="x")  # '<' of str and int in our code
    assert isinstance(bug.__cause__, TypeError) and bad_input_line(bug) is None
