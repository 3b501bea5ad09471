"""Read a sweep folder back: every job's overrides, status and logged scalars (local files; no network).

A job is a sub-folder with ``.hydra/overrides.yaml`` (Hydra writes it for each multirun job). Its status comes
from ``status.json`` (``stylegan-train`` writes it: running / completed / failed with the error / interrupted with
the signal); a job that never finished (killed, preempted, still running) is ``unfinished``. Scalars come from the
CSV logger's ``metrics.csv``, else from the job's W&B run files (:mod:`.wandb_files`; ``logger=wandb`` alone).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..utils.direction import higher_is_better as metric_higher_is_better


class ReportError(ValueError):
    """A folder that is not a sweep, or a metric that no job logged; reported as one line."""


@dataclass
class Job:
    path: Path
    num: int
    overrides: dict[str, str]
    status: str  # completed | failed | interrupted | unfinished
    error: str | None = None
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # column -> [(kimg, value)]
    source: str | None = None  # where the scalars came from: csv | wandb | None (no log found)
    signal: str | None = None  # the signal that interrupted the job (SIGTERM, SIGINT)
    status_kimg: float | None = None  # the kimg status.json records (where an interrupted job stopped)
    tags: list[str] = field(default_factory=list)

    def last(self, column: str) -> float:
        points = self.curves.get(column)
        return points[-1][1] if points else math.nan

    def best(self, column: str) -> float:
        return best_of([v for _, v in self.curves.get(column, [])], column)

    def median(self, column: str) -> float:
        values = [v for _, v in self.curves.get(column, []) if math.isfinite(v)]
        return statistics.median(values) if values else math.nan

    @property
    def kimg(self) -> float:
        return max((k for points in self.curves.values() for k, _ in points), default=math.nan)


def higher_is_better(column: str) -> bool:
    """``metrics/...``: the metric's own direction (:func:`stylegan.metrics.names.higher_is_better`: precision,
    recall, class accuracy up; distances down); other columns: rates (``timing/img_per_sec``) up, the rest down."""
    if column.startswith("metrics/"):
        return metric_higher_is_better(column)
    return column.rsplit("/", 1)[-1].endswith("per_sec")


def best_of(values: list[float], column: str) -> float:
    """The best finite value for ``column``'s direction; NaN when there is none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan
    return max(finite) if higher_is_better(column) else min(finite)


def _overrides(path: Path) -> dict[str, str]:
    items = yaml.safe_load(path.read_text()) or []
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        if not key.lstrip("+~").startswith("hydra."):
            out[key] = value
    return out


def _curves(job_dir: Path) -> tuple[dict[str, list[tuple[float, float]]], str | None]:
    """The job's scalars and their source: the CSV log if there is one, else its W&B run files, else nothing."""
    files = sorted(p for p in job_dir.rglob("metrics.csv") if "wandb" not in p.parts)
    if not files:
        from .wandb_files import WandbFileError, curves

        try:
            found = curves(job_dir)
        except (OSError, WandbFileError):
            return {}, None
        return found, "wandb" if found else None
    curves: dict[str, list[tuple[float, float]]] = {}
    for path in files[:1]:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    kimg = float(row.get("kimg") or "nan")
                except ValueError:
                    kimg = math.nan
                for key, text in row.items():
                    if key in ("epoch", "step", "kimg") or text in ("", None):
                        continue
                    try:
                        curves.setdefault(key, []).append((kimg, float(text)))
                    except ValueError:
                        continue
    return curves, "csv"


STATUSES = ("completed", "failed", "interrupted", "unfinished")


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _status(job_dir: Path) -> dict:
    """``status.json`` (``{}`` when missing or unreadable) with ``status`` one of :data:`STATUSES`."""
    try:
        record = json.loads((job_dir / "status.json").read_text())
    except (OSError, ValueError):
        record = {}
    record = record if isinstance(record, dict) else {}
    if record.get("status") not in STATUSES[:3]:  # running (killed, or still running), or no file
        record["status"] = "unfinished"
    return record


def load_sweep(sweep_dir: str | Path) -> list[Job]:
    """The jobs of ``sweep_dir`` in job order."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise ReportError(f"{root} is not a folder: pass a multirun folder (e.g. multirun/<date>_<time>)")
    jobs = []
    for overrides in sorted(root.glob("**/.hydra/overrides.yaml")):
        job_dir = overrides.parent.parent
        if job_dir == root and any(root.glob("*/.hydra/overrides.yaml")):
            continue
        record = _status(job_dir)
        num = record.get("job_num")
        if num is None:
            num = int(job_dir.name) if job_dir.name.isdigit() else len(jobs)
        curves, source = _curves(job_dir)
        jobs.append(Job(job_dir, num, _overrides(overrides), record["status"], record.get("error"), curves, source,
                        record.get("signal"), _number(record.get("kimg")), [str(t) for t in record.get("tags") or []]))
    if not jobs:
        raise ReportError(f"{root} holds no Hydra job folders (<job>/.hydra/overrides.yaml): pass the folder a "
                          "`stylegan-train -m ...` sweep wrote, e.g. multirun/<date>_<time>")
    return sorted(jobs, key=lambda j: j.num)


def factors(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs, in command-line order."""
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys]
    return [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1]


def metric_columns(jobs: list[Job]) -> list[str]:
    columns: list[str] = []
    for job in jobs:
        columns += [c for c in job.curves if c.startswith("metrics/") and c not in columns]
    return columns


def default_metric(jobs: list[Job]) -> str:
    """The first FID-like metric logged, else the first metric, else seconds per kimg."""
    columns = metric_columns(jobs)
    fid = [c for c in columns if c.split("/", 1)[1].startswith(("fid", "fd"))]
    return (fid or columns or ["timing/sec_per_kimg"])[0]


def resolve_metric(jobs: list[Job], name: str | None) -> str:
    if name is None:
        return default_metric(jobs)
    logged = sorted({c for job in jobs for c in job.curves})
    for candidate in (name, f"metrics/{name}"):
        if candidate in logged:
            return candidate
    if all(job.status == "failed" for job in jobs):
        return name
    if not logged:
        raise ReportError(f"--metric {name}: no job logged anything readable (no csv/metrics.csv, no W&B run file "
                          "wandb/*run-*/run-*.wandb): run the sweep with logger=csv or logger=[csv,wandb]")
    raise ReportError(f"--metric {name} was not logged by any job; logged: {', '.join(logged)}")
