"""The sweep report without CSV logs: values read from the jobs' W&B run files equal the CSV log's; a job with no
readable log is named with what to add; interrupted jobs are shown as such, with their signal."""

from __future__ import annotations

import csv
import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from wandb.proto import wandb_internal_pb2

from stylegan.report import ReportError, write_report
from stylegan.report.wandb_files import curves, history, records
from sweeping import FD, logged_last


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.xdist_group("grid")  # the session sweep grid (conftest): logger=[csv,wandb]
def test_a_wandb_only_sweep_reports_the_values_of_the_csv_log(grid, tmp_path):
    """The grid with its CSV logs removed is what `logger=wandb` alone leaves: the same report, each value equal to
    the last one in the (removed) CSV log."""
    wandb_only = tmp_path / "wandb_only"
    shutil.copytree(grid, wandb_only, ignore=shutil.ignore_patterns("csv", "report.*"))
    report = write_report(wandb_only, plot=False)
    assert report.metric == FD and {j.source for j in report.jobs} == {"wandb"}
    rows = _read_csv(report.paths["csv"])
    assert len(rows) == 4
    for row, job in zip(rows, report.jobs, strict=True):
        assert float(row[FD]) == logged_last(grid / job.path.name, FD)
        assert float(row["timing/sec_per_kimg"]) == logged_last(grid / job.path.name, "timing/sec_per_kimg")
    with_csv = tmp_path / "with_csv"
    shutil.copytree(grid, with_csv, ignore=shutil.ignore_patterns("report.*"))
    write_report(with_csv, plot=False)
    assert _read_csv(with_csv / "report.csv") == rows
    md = report.paths["md"].read_text()
    assert "Values of job(s) 0, 1, 2, 3 read from their W&B run files" in md and "No logged values" not in md

    # a run file cut short (a killed job): the rows before the cut
    (path,) = (wandb_only / "0").glob("wandb/offline-run-*/run-*.wandb")
    full = history(path)
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(FD.encode())])  # inside the last row, the one with the metric
    assert history(path) == full[:-1] and FD in full[-1]

    # no log at all: the cells are '-' and report.md says why and what to add
    for job in wandb_only.glob("[0-9]"):
        shutil.rmtree(job / "wandb")
    md = write_report(wandb_only, plot=False).paths["md"].read_text()
    assert "**No logged values for job(s) 0, 1, 2, 3**" in md and "`logger=[csv,wandb]`" in md
    with pytest.raises(ReportError, match=r"--metric fid64_full: no job logged anything readable .* run the sweep "
                       r"with logger=csv or logger=\[csv,wandb\]"):
        write_report(wandb_only, "fid64_full", plot=False)


def _log_record(payload: bytes, pos: int) -> tuple[bytes, int]:
    """LevelDB log format, written from its definition: records split at 32 KiB block ends, tails padded."""
    out = b""
    first = True
    while True:
        left = 32768 - pos % 32768
        if left < 7:
            out, pos = out + b"\0" * left, pos + left
            continue
        chunk, payload = payload[: left - 7], payload[left - 7 :]
        kind = (1 if not payload else 2) if first else (4 if not payload else 3)
        out += struct.pack("<IHB", zlib.crc32(chunk), len(chunk), kind) + chunk
        pos += 7 + len(chunk)
        first = False
        if not payload:
            return out, pos


def test_records_split_across_blocks_are_reassembled(tmp_path):
    rows = [{"kimg": 0.5 * i, FD: 10.0 - i, "note/blob": None} for i in range(40)]
    data, pos = b":W&B\xce\xbe\x01", 7
    for i, row in enumerate(rows):
        rec = wandb_internal_pb2.Record()
        for key, value in row.items():
            item = rec.history.item.add()
            item.nested_key.append(key)
            item.value_json = json.dumps("x" * (12000 * (i % 7)) if value is None else value)  # 0 to 72 kB
        chunk, pos = _log_record(rec.SerializeToString(), pos)
        data += chunk
    path = tmp_path / "wandb" / "offline-run-20260101_000000-abc" / "run-abc.wandb"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    assert len(data) > 4 * 32768 and len(records(path)) == 40
    assert curves(tmp_path) == {FD: [(0.5 * i, 10.0 - i) for i in range(40)]}  # strings (the blob) left out


def _job(root: Path, num: int, overrides: list[str], rows: list[dict], status: dict | None) -> None:
    """A job folder as a sweep leaves it: ``.hydra/overrides.yaml``, a CSV log of ``rows`` (its columns: the rows'
    keys in order of appearance; a key a row lacks is an empty cell) and ``status.json`` (None: none written)."""
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / "csv").mkdir()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(job / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)
    if status is not None:
        (job / "status.json").write_text(json.dumps({"job_num": num, **status}))


def _fid_job(root: Path, num: int, g: str, values: list[float], status: dict | None) -> None:
    rows = [{"kimg": 0.5 * (i + 1), "step": i, "metrics/fid50k_full": v} for i, v in enumerate(values)]
    _job(root, num, [f"model/generator={g}", f"seed={num}"], rows, status)


def test_interrupted_jobs_are_shown_with_their_signal(tmp_path):
    root = tmp_path / "sweep"
    _fid_job(root, 0, "orig", [30.0, 20.0], {"status": "completed", "tags": ["baseline"]})
    _fid_job(root, 1, "skip", [25.0], {"status": "interrupted", "signal": "SIGTERM", "kimg": 0.75})  # after its log
    _fid_job(root, 2, "resnet", [40.0], {"status": "running"})  # killed without a word: unfinished
    _fid_job(root, 3, "orig2", [35.0], {"status": "failed", "error": "ValueError: boom"})
    report = write_report(root, plot=False)
    assert [j.num for j in report.interrupted] == [1] and [j.num for j in report.unfinished] == [2]
    md = report.paths["md"].read_text()
    assert "4 jobs: 1 completed, 1 failed, 1 interrupted, 1 unfinished." in md
    assert md.splitlines()[6] == "Tags: `baseline`."  # status.json's tags, after the fixed overrides
    assert "- job 1 (model/generator=skip seed=1): interrupted by SIGTERM at kimg 0.75 — " in md
    assert "- job 2 (model/generator=resnet seed=2): unfinished at kimg 0.5 — " in md
    assert "- job 3 (model/generator=orig2 seed=3): failed: ValueError: boom — " in md
    rows = _read_csv(report.paths["csv"])
    assert [r["status"] for r in rows] == ["completed", "interrupted", "unfinished", "failed"]
    assert rows[1]["metrics/fid50k_full"] == "25.0"  # its last value is kept, marked by its status


def test_the_global_batch_and_its_rounds_are_columns(tmp_path):
    """progress/minibatch and progress/rounds (logged by the module every step): the last values per job."""
    root = tmp_path / "sweep"
    for num, (batch, rounds) in enumerate([(32, 1), (64, 4)]):
        rows = [{"kimg": 0.1, "step": 0, "progress/minibatch": 16, "progress/rounds": 2},
                {"kimg": 0.2, "step": 1, "progress/minibatch": batch, "progress/rounds": rounds},
                {"kimg": 0.2, "step": 1, "metrics/fid50k_full": 50.0 - num}]
        _job(root, num, [f"model.batch_gpu={batch // rounds}"], rows, {"status": "completed"})
    report = write_report(root, plot=False)
    rows = _read_csv(report.paths["csv"])
    assert [(r["batch"], r["rounds"], r["metrics/fid50k_full"]) for r in rows] == [
        ("32", "1", "50.0"), ("64", "4", "49.0")]
    md = report.paths["md"].read_text()
    assert "| job | model.batch_gpu | status | kimg | batch | rounds | metrics/fid50k_full |" in md
    assert "| 1 | 16 | completed | 0.2 | 64 | 4 | **49** |" in md
