"""stylegan-evaluate on a checkpoint written by a real training run (a mirrored 8x8 zip): with no data override it
evaluates on the data the run trained on (stored in the checkpoint, flips included); a given ``data.key`` wins over
the stored one; a stored dataset that is gone, or a stored data module evaluate does not build, is one line, exit 2;
two processes launched as torchrun does give the one-process numbers.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from data_factory import nvlabs_zip, pattern
from metrics_testing import PixelFeatures
from stylegan.data import ImageDataModule
from stylegan.evaluate import load_generator
from stylegan.metrics import MetricRunner, Networks
from sweeping import PIX, in_process, refusal

METRICS = ["fid12_full", "fid4"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaldata")
    nvlabs_zip(root / "faces.zip", [pattern(8, 3, seed=200 + i) for i in range(6)], None)
    in_process("experiment=smoke", f"hydra.run.dir={root / 'run'}", "total_kimg=0.008", "data=folder",
               f"data.source={root / 'faces.zip'}", "data.resolution=8", "data.channels=3", "data.xflip=true",
               "data.num_workers=0", "data.pin_memory=false", "callbacks.samples=null")
    return root


def _evaluate(ckpt: Path, out: Path, *extra: str) -> dict:
    in_process(f"ckpt={ckpt}", f"output={out}", f"metric_names=[{','.join(METRICS)}]", f"feature_extractor={PIX}",
               "batch_size=4", f"cache_dir={out.parent / 'cache'}", "progress=false",
               f"hydra.run.dir={out.parent / 'hydra'}", *extra, entry="stylegan.evaluate")
    return json.loads(out.read_text())


def _direct(ckpt: Path, source: Path, xflip: bool) -> dict[str, float]:
    """The same metrics from the runner on a data module built here with the training run's settings."""
    G, _ = load_generator(ckpt)
    dm = ImageDataModule(source=str(source), resolution=8, channels=3, xflip=xflip)
    return MetricRunner(METRICS, Networks(features=PixelFeatures()), batch_size=4, progress=False).run(G, dm, "cpu")


def test_evaluate_takes_the_training_data_from_the_checkpoint_and_a_given_setting_wins(run, tmp_path):
    ckpt = run / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["stylegan"]["data"]["xflip"] is True
    stored = _evaluate(ckpt, tmp_path / "stored.json")  # no data.* given: the zip, mirrored, as in training
    assert stored["data"]["settings_from"] == "checkpoint"
    assert (stored["data"]["source"], stored["data"]["xflip"], stored["data"]["real_items"]) == (
        str(run / "faces.zip"), True, 12)
    assert [m["num_real"] for m in stored["metrics"]] == [12, 4]
    mirrored = _direct(ckpt, run / "faces.zip", True)
    assert stored["results"] == pytest.approx(mirrored, rel=1e-12)
    plain = _evaluate(ckpt, tmp_path / "plain.json", "data.xflip=false")  # the given setting wins, the rest stored
    assert (plain["data"]["xflip"], plain["data"]["real_items"], plain["data"]["source"]) == (
        False, 6, str(run / "faces.zip"))
    assert plain["results"] == pytest.approx(_direct(ckpt, run / "faces.zip", False), rel=1e-12)
    assert plain["results"]["fd12_full@pixproj"] != pytest.approx(stored["results"]["fd12_full@pixproj"], rel=1e-3)
    assert plain["results"]["fd4@pixproj"] == pytest.approx(stored["results"]["fd4@pixproj"], rel=1e-12)  # 4 of 6


def _edited(run: Path, tmp_path: Path, **data) -> Path:
    blob = torch.load(run / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    blob["stylegan"]["data"].update(data)
    path = tmp_path / "edited.ckpt"
    torch.save(blob, path)
    return path


def test_a_moved_dataset_is_one_line_and_data_source_points_to_its_new_place(run, tmp_path, capsys):
    gone = tmp_path / "was_here" / "faces.zip"
    ckpt = _edited(run, tmp_path, source=str(gone))
    out = tmp_path / "m.json"
    line = refusal(capsys, ["stylegan-evaluate", f"ckpt={ckpt}", f"output={out}", f"feature_extractor={PIX}",
                            "metric_names=[fid4]", f"hydra.run.dir={tmp_path / 'h'}"], entry="stylegan.evaluate")
    assert f"data.source={gone}" in line and "does not exist" in line and "data.source=PATH" in line
    assert not out.exists()
    moved = _evaluate(ckpt, out, f"data.source={run / 'faces.zip'}")  # the other stored settings (xflip) stay
    assert (moved["data"]["xflip"], moved["data"]["real_items"]) == (True, 12)
    assert moved["results"] == pytest.approx(_direct(ckpt, run / "faces.zip", True), rel=1e-12)


def test_a_stored_data_module_is_never_called_from_the_file(run, tmp_path, capsys):
    ckpt = _edited(run, tmp_path, _target_="os.system")
    line = refusal(capsys, ["stylegan-evaluate", f"ckpt={ckpt}", "metric_names=[fid4]", f"feature_extractor={PIX}",
                            f"hydra.run.dir={tmp_path / 'h'}"], entry="stylegan.evaluate")
    assert "'os.system'" in line and "data=" in line


def _rank(rank: int, port: int, args: list[str]) -> None:
    """One process of a 2-process launch, with the environment torchrun gives it."""
    for k in ("GROUP_RANK", "NODE_RANK"):
        os.environ.pop(k, None)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    in_process(*args, entry="stylegan.evaluate")


def test_two_gloo_processes_evaluate_exactly_as_one(run, tmp_path):
    """The entry point in 2 forked processes with torchrun's environment (gloo on CPU): rank 0 writes the JSON,
    whose values are bitwise those of one process; 12 + 4 generated images in batches of 4 (4 + 1 batches)."""
    ckpt = run / "run" / "checkpoints" / "last.ckpt"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [f"ckpt={ckpt}", f"output={tmp_path / 'two.json'}", f"metric_names=[{','.join(METRICS)}]",
            f"feature_extractor={PIX}", "batch_size=4", f"cache_dir={tmp_path / 'cache2'}", "progress=false",
            "device=cpu", f"hydra.run.dir={tmp_path / 'h2'}"]
    mp.start_processes(_rank, args=(port, args), nprocs=2, join=True, start_method="fork")
    two = json.loads((tmp_path / "two.json").read_text())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = _evaluate(ckpt, tmp_path / "one.json", "device=cpu")
    finally:
        torch.set_num_threads(threads)
    assert (two["processes"], one["processes"]) == (2, 1)
    assert two["results"] == one["results"] and two["data"] == one["data"]  # same floats, same reals (12, mirrored)
