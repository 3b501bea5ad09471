"""lightning-hydra-template habits: the ``debug`` group (fdr, limit, overfit, profiler) and ``tags`` reaching every
logger and the run folder's status.json, through the real entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from sweeping import in_process
from wandb_records import records

CONF = str(Path(__file__).resolve().parents[1] / "conf")
SMOKE_BATCH = 8


def _files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and ".hydra" not in p.parts}


def test_fdr_runs_two_iterations_and_writes_nothing_but_its_status(tmp_path):
    in_process("experiment=smoke", "debug=fdr", f"hydra.run.dir={tmp_path}", "tags=[dev]")
    assert _files(tmp_path) == {"status.json", "train.log"}
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "completed" and status["kimg"] == 2 * SMOKE_BATCH / 1000 and status["tags"] == ["dev"]


def test_profiler_limits_the_run_and_tags_reach_every_logger(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    in_process("experiment=smoke", "debug=profiler", "trainer.limit_train_batches=3", f"hydra.run.dir={tmp_path}",
               "logger=[csv,wandb]", "tags=[baseline,ffhq]")
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["stylegan"]["cur_nimg"] == 3 * SMOKE_BATCH  # a normal end after 3 iterations
    assert (tmp_path / "samples" / "fakes_final.png").is_file()
    profile = (tmp_path / "fit-profile.txt").read_text()
    (calls,) = re.findall(r"\|\s*run_training_batch\s*\|\s*[\d.e-]+\s*\|\s*(\d+)\s*\|", profile)
    assert int(calls) == 3
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "completed" and status["tags"] == ["baseline", "ffhq"]
    assert yaml.safe_load((tmp_path / "csv" / "hparams.yaml").read_text())["tags"] == ["baseline", "ffhq"]
    (path,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    (run,) = [r.run for r in records(path) if r.WhichOneof("record_type") == "run"]
    assert list(run.tags) == ["baseline", "ffhq"]


def test_overfit_repeats_one_batch_of_images():
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=smoke", "debug=overfit"])
        plain = compose(config_name="train", overrides=["experiment=smoke"])
    assert cfg.data.max_images == cfg.data.batch_size == SMOKE_BATCH and not cfg.data.xflip
    dm = instantiate(cfg.data)
    dm.setup("fit")
    assert len(dm.dataset) == SMOKE_BATCH
    batches = [real for real, _ in (b for _, b in zip(range(4), dm.train_dataloader(), strict=False))]
    rows = [sorted(map(bytes, ((b + 1) * 127.5).round().to(torch.uint8).flatten(1).numpy())) for b in batches]
    assert all(r == rows[0] for r in rows) and len(set(rows[0])) == SMOKE_BATCH  # the same 8 distinct images
    assert not torch.equal(batches[0], batches[1])  # in another order: still a shuffled stream
    full = instantiate(plain.data)
    full.setup("fit")
    images = {bytes(full.dataset[i][0].flatten()) for i in range(len(full.dataset))}
    assert set(rows[0]) <= images  # real training images (the seeded subset), not something made up
