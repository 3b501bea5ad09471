"""Helpers for tests that run real ``stylegan-train -m`` sweeps (importable with tests/ on the path)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# the entry points are imported here, at collection, not first inside a test (see in_process)
import stylegan.evaluate
import stylegan.train  # noqa: F401
from wandb_records import records

ROOT = Path(__file__).resolve().parents[1]
PIX = "{_target_:metrics_testing.PixelFeatures}"
FD = "metrics/fd64_full@pixproj"
QUICK = ["experiment=smoke", "total_kimg=0.016", "data.max_images=128", "callbacks.progress.refresh_rate=0"]
METRIC = ["metrics=fid", "callbacks.metrics.metrics=[fid64_full]", f"callbacks.metrics.feature_extractor={PIX}",
          "callbacks.metrics.batch_size=32", "callbacks.metrics.progress=false",
          "callbacks.metrics.cache_dir=${hydra:sweep.dir}/cache"]


PROGS = {"stylegan.train": "stylegan-train", "stylegan.evaluate": "stylegan-evaluate"}


def in_process(*args: str, entry: str = "stylegan.train"):
    """The console script's ``main()`` (``entry``: ``stylegan.train`` or ``stylegan.evaluate``) run in this process
    with ``args`` as its command line: the real entry point without a new interpreter's ~5 s of imports. Returns
    what ``main()`` returns; an exit (``SystemExit``) propagates. The entry modules are imported with this module:
    Lightning binds its log handler to the ``sys.stderr`` of its first import, and a test's ``capsys`` stream is
    closed once that test ends (the next run's "Seed set to 0" then printed a logging traceback)."""
    import importlib

    main = importlib.import_module(entry).main
    saved, sys.argv = sys.argv, [PROGS[entry], *args]
    try:
        return main()
    finally:
        sys.argv = saved


def refusal(capsys, argv: list[str], entry: str = "stylegan.train") -> str:
    """Run the console script's ``main()`` in-process (:func:`in_process`) with ``argv`` (``argv[0]``: any program
    name); it must stop with exit code 2 and no traceback. Returns its one ``<script>: error:`` line."""
    import pytest

    prog = PROGS[entry]
    with pytest.raises(SystemExit) as exit_info:
        in_process(*argv[1:], entry=entry)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    (line,) = [x for x in err.splitlines() if x.startswith(f"{prog}: error:")]
    return line


def clean_env() -> dict[str, str]:
    """This environment without W&B settings and without a launcher's rank variables (a child run must not
    believe it is a rank of some other job)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("WANDB", "LOCAL_RANK", "RANK", "WORLD", "MASTER_", "NODE_RANK", "GROUP_RANK"))}


def run_env(**extra: str) -> dict[str, str]:
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return {**env, "PYTHONHASHSEED": "0", "WANDB_MODE": "offline", **extra}


def sweep(sweep_dir: Path, *overrides: str, code: int = 0, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "stylegan.train", "-m", f"hydra.sweep.dir={sweep_dir}", *overrides]
    out = subprocess.run(cmd, env=env or run_env(), capture_output=True, text=True, timeout=600, cwd=sweep_dir.parent)
    assert out.returncode == code, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def logged_last(job: Path, column: str) -> float:
    """The last value of ``column`` in a job's CSV log, read independently of stylegan.report."""
    with open(job / "csv" / "metrics.csv") as f:
        values = [r[column] for r in csv.DictReader(f) if r.get(column)]
    return float(values[-1])


def wandb_run(job: Path):
    (path,) = job.glob("wandb/offline-run-*/run-*.wandb")
    recs = records(path)
    run = next(r.run for r in recs if r.WhichOneof("record_type") == "run")
    config = {i.key: json.loads(i.value_json) for r in recs if r.WhichOneof("record_type") == "config"
              for i in r.config.update}
    exits = [r.exit.exit_code for r in recs if r.WhichOneof("record_type") == "exit"]
    return run, config, exits


def train_process(*args: str, wait: bool = True, timeout: float = 300) -> subprocess.Popen:
    """``python -m stylegan.train *args`` in a session of its own (so that :func:`kill_at_checkpoint` reaches every
    DDP rank); ``wait``: until it ends, which must be with exit code 0."""
    proc = subprocess.Popen([sys.executable, "-m", "stylegan.train", *args], env={**clean_env(), "PYTHONHASHSEED": "0"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if wait:
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, out[-3000:]
    return proc


def kill_at_checkpoint(proc: subprocess.Popen, ckpt: Path, timeout: float = 240) -> None:
    """SIGKILL ``proc``'s whole process group (every DDP rank) as soon as ``ckpt`` exists (its writes are atomic:
    it appears whole). ``proc`` must have been started with ``start_new_session=True``."""
    deadline = time.time() + timeout
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert ckpt.exists(), "no checkpoint was written before the kill"
