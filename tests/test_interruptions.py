"""Interruptions without loss, with real processes and real signals: SIGINT / SIGTERM at a random point of a run
stop it at a step boundary with last.ckpt written (exit 130 / 143, status.json "interrupted"), and ``ckpt_path=auto``
then ends bit for bit where the uninterrupted run ends (1 process; a sweep of 2-process gloo jobs with the signal
sent to the launcher only); a finished run started again changes nothing, and a re-run sweep skips its finished
jobs; a checkpoint write that hits a full disk is one line with the previous checkpoint intact."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import stylegan.utils.atomic as atomic
from sweeping import in_process, run_env, train_process
from wandb_records import records

# no periodic checkpoint: the one a stopped run leaves is the one written at the stop; a sample grid every 4 steps
# (batch 8) says when the run is training
SMALL = ["experiment=smoke", "callbacks.checkpoint.every_kimg=100", "callbacks.samples.every_kimg=0.032"]  # CSV log
GRID = Path("samples") / "fakes_kimg00000.03.png"  # written at 32 images
RNG = random.Random()  # the delays are random on purpose; each assertion message prints the one it used


def _load(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)


def _tensors(x, prefix: str = ""):
    """Every tensor of a checkpoint (weights, optimizer moments, every rank's RNG states), by its path."""
    if isinstance(x, torch.Tensor):
        yield prefix, x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _tensors(v, f"{prefix}/{k}")
    elif isinstance(x, list | tuple):
        for i, v in enumerate(x):
            yield from _tensors(v, f"{prefix}/{i}")


def assert_same_state(a: Path, b: Path) -> None:
    sa, sb = _load(a), _load(b)
    assert (sa["stylegan"]["cur_nimg"], sa["stylegan"]["iteration"]) == (sb["stylegan"]["cur_nimg"],
                                                                          sb["stylegan"]["iteration"])
    ta, tb = dict(_tensors(sa)), dict(_tensors(sb))
    assert ta.keys() == tb.keys() and any(k.startswith("/optimizer_states") for k in ta)
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, differ[:10]


def signal_after(proc: subprocess.Popen, path: Path, signum: int, group: bool = True) -> float:
    """Send ``signum`` at a random moment (0-0.25 s) after ``path`` appears, to ``proc``'s process group (a
    terminal's Ctrl-C, a scheduler) or to ``proc`` alone. Returns the delay."""
    deadline = time.time() + 240
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before {path} appeared: " + proc.communicate()[0][-3000:]
    delay = RNG.uniform(0, 0.25)
    time.sleep(delay)
    (os.killpg if group else os.kill)(proc.pid, signum)
    return delay


def start(*args: str) -> subprocess.Popen:
    """``python -m stylegan.train *args`` in a session of its own (W&B offline), output piped."""
    return subprocess.Popen([sys.executable, "-m", "stylegan.train", *args], env=run_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


@contextlib.contextmanager
def stopped_in_the_end(proc: subprocess.Popen):
    """Whatever the test finds, no process of ``proc``'s session outlives it (a rank hung in a collective)."""
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def finish(proc: subprocess.Popen, code: int, note: str = "") -> str:
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{note}: still running 240 s later (a rank waiting in a collective?)") from None
    assert proc.returncode == code, f"{note}\n{out[-3000:]}"
    deadline = time.time() + 60  # every rank exits too: none is left waiting in a collective
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return out
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{note}: a process of the job was still running 60 s after the launcher exited")
        time.sleep(0.05)


def interrupted_status(run: Path, name: str) -> int:
    """status.json says interrupted by ``name``; the checkpoint (written at the stop) holds the step it names.
    Returns its image count."""
    status = json.loads((run / "status.json").read_text())
    assert (status["status"], status["signal"]) == ("interrupted", name), status
    nimg = _load(run / "checkpoints" / "last.ckpt")["stylegan"]["cur_nimg"]
    assert status["kimg"] == nimg / 1000 and nimg >= 32, (status, nimg)  # after the grid at 32 images
    return nimg


@pytest.mark.slow  # three processes, about 20 s
def test_sigint_then_resume_equals_the_straight_run_and_a_rerun_changes_nothing(tmp_path, capsys):
    """One run (CSV and W&B offline) stopped by Ctrl-C at a random moment, as a terminal sends it (to the process
    group): exit code 130, the checkpoint of the step it stopped at (no periodic one is due), its W&B run marked
    preempting with the signal and exit code 130. Resumed with ckpt_path=auto it ends bit for bit as the straight
    run (weights, optimizer moments, RNG states). Started again once finished (a requeued job): no training step,
    checkpoint and status.json untouched (bytes and mtime), exit 0, and the temp file of a killed checkpoint write
    removed. (One test, not three: pytest-xdist's groups do not work with pytest 9, a shared fixture ran twice.)"""
    run = tmp_path / "run"
    with stopped_in_the_end(start(*SMALL, "logger=[csv,wandb]", f"hydra.run.dir={run}", "total_kimg=100")) as proc:
        delay = signal_after(proc, run / GRID, signal.SIGINT)
        out = finish(proc, 130, f"SIGINT {delay:.3f} s after the grid at 32 images")
    stop = interrupted_status(run, "SIGINT")
    assert "SIGINT: stopped at kimg" in out and "Traceback" not in out, out[-3000:]
    (path,) = run.glob("wandb/offline-run-*/run-*.wandb")
    recs = records(path)
    assert "preempting" in [r.WhichOneof("record_type") for r in recs]
    assert [r.exit.exit_code for r in recs if r.HasField("exit")] == [130]
    summary = {i.key: json.loads(i.value_json) for r in recs if r.HasField("summary") for i in r.summary.update}
    assert summary.get("interrupted") == "SIGINT"

    total = f"total_kimg={(stop + 16) / 1000}"  # two more steps of 8 images
    train_process(*SMALL, f"hydra.run.dir={run}", total, "ckpt_path=auto")
    train_process(*SMALL, f"hydra.run.dir={tmp_path / 'straight'}", total)
    ckpt, status = run / "checkpoints" / "last.ckpt", run / "status.json"
    assert_same_state(ckpt, tmp_path / "straight" / "checkpoints" / "last.ckpt")
    assert json.loads(status.read_text())["status"] == "completed"

    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (ckpt, status)}
    partial = atomic.temp_path(ckpt).with_name(".last.ckpt.tmp99999999")
    partial.write_bytes(b"half a checkpoint")
    capsys.readouterr()
    assert in_process(*SMALL, f"hydra.run.dir={run}", total, "ckpt_path=auto") is None  # no SystemExit
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before
    assert not partial.exists()
    out = capsys.readouterr().out
    assert len([x for x in out.splitlines() if "] - complete: " in x]) == 1, out[-3000:]
    assert "output directory" not in out  # no trainer was built


@pytest.mark.slow  # two sweeps, four processes in all
def test_sigterm_to_a_ddp_sweep_stops_it_after_that_jobs_checkpoint_and_a_rerun_continues_exactly(tmp_path):
    """A sweep of two identical 2-process gloo jobs and a 1-process one. SIGTERM to the launcher alone (a
    container's PID 1) during job 1: rank 1, which got no signal, stops at the same step (else it would wait in a
    collective), job 1's checkpoint holds both ranks' RNG streams, job 2 does not start, exit code 143. The re-run
    skips the finished job 0 untouched, continues job 1 (under another seed) to end bit for bit as job 0, and runs
    job 2."""
    sweep_dir = tmp_path / "sweep"
    cmd = ["-m", f"hydra.sweep.dir={sweep_dir}", *SMALL, "trainer=ddp_sim,ddp_sim,cpu", "total_kimg=0.192",
           "ckpt_path=auto"]
    ckpt = [sweep_dir / str(j) / "checkpoints" / "last.ckpt" for j in range(3)]
    with stopped_in_the_end(start(*cmd)) as proc:
        delay = signal_after(proc, sweep_dir / "1" / GRID, signal.SIGTERM, group=False)
        out = finish(proc, 143, f"SIGTERM {delay:.3f} s after job 1's grid at 32 images")
    assert _load(ckpt[0])["stylegan"]["cur_nimg"] == 192
    assert interrupted_status(sweep_dir / "1", "SIGTERM") < 192
    assert len(_load(ckpt[1])["stylegan"]["rng_per_rank"]) == 2
    assert not (sweep_dir / "2" / "status.json").exists() and "job 2 not started" in out, out[-3000:]
    done = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (ckpt[0], sweep_dir / "0" / "status.json")}
    # another seed: a job 1 that ignored its checkpoint and started again from zero would end elsewhere than job 0
    rerun = subprocess.run([sys.executable, "-m", "stylegan.train", *cmd, "seed=7"], env=run_env(),
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in done} == done  # job 0 was finished: untouched
    for j in range(3):
        assert json.loads((sweep_dir / str(j) / "status.json").read_text())["status"] == "completed"
        assert _load(ckpt[j])["stylegan"]["cur_nimg"] == 192
    assert_same_state(ckpt[1], ckpt[0])


class _FullDisk:
    """A file that takes ``room`` bytes, then fails as a full disk does (the test double of the writer)."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        n = len(memoryview(data).cast("B"))
        if n > self.room:
            self.f.write(bytes(memoryview(data).cast("B")[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= n
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_a_full_disk_at_a_checkpoint_write_is_one_line_and_the_previous_checkpoint_stays(tmp_path, monkeypatch,
                                                                                          capsys):
    writes = []

    def full_at_second_checkpoint(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)  # noqa: SIM115 (closed by the double)
        if Path(path).name.startswith(".last.ckpt.tmp"):
            writes.append(path)
            if len(writes) == 2:
                return _FullDisk(f, room=4096)
        return f

    monkeypatch.setattr(atomic, "open", full_at_second_checkpoint, raising=False)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        in_process("experiment=smoke", "callbacks.checkpoint.every_kimg=0.032", f"hydra.run.dir={run}",
                   "total_kimg=0.128")
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "Traceback" not in err, err[-3000:]
    ckpt = run / "checkpoints" / "last.ckpt"
    (line,) = [x for x in err.splitlines() if x.startswith("stylegan-train: error:")]
    assert line.startswith(f"stylegan-train: error: could not write checkpoint {ckpt}: {os.strerror(errno.ENOSPC)}")
    assert "the previous last.ckpt (kimg 0.032) is intact" in line
    assert _load(ckpt)["stylegan"]["cur_nimg"] == 32 and len(writes) == 2
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and status["error"] == line.removeprefix("stylegan-train: error: ")
    assert not list(ckpt.parent.glob(".*tmp*"))


def test_a_rank_that_exits_143_first_does_not_get_rank_0_killed_once_it_stopped_watching():
    """Lightning's launcher SIGKILLs rank 0 when a rank it started exits non-zero (CI saw the DDP sweep above end
    with -9: rank 1 left with 143 while rank 0 wrote status.json). A real watcher, on a stand-in rank 0 (a sleeping
    process) and a rank that exits 143: it kills the stand-in, unless rank 0 stopped it watching first."""
    from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

    from stylegan.training.interrupt import stop_watching_children

    def watch() -> tuple[_ChildProcessObserver, subprocess.Popen]:
        main = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        rank = subprocess.Popen([sys.executable, "-c", "raise SystemExit(143)"])
        rank.wait()
        watcher = _ChildProcessObserver(main_pid=main.pid, child_processes=[rank], sleep_period=0)
        watcher.daemon = True
        return watcher, main

    watcher, main = watch()
    watcher.start()  # as Lightning does: it looks, finds 143 and kills the main process
    assert main.wait(timeout=30) == -signal.SIGKILL
    watcher, main = watch()
    try:
        assert stop_watching_children() == 0  # not started yet: not among the threads
        watcher._sleep_period = 0.2
        watcher.start()
        assert stop_watching_children() == 1
        watcher.join(timeout=30)
        assert not watcher.is_alive()
        with pytest.raises(subprocess.TimeoutExpired):  # ended without killing it
            main.wait(timeout=1)
    finally:
        main.kill()
        main.wait()
