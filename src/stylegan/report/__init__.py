"""``stylegan-report MULTIRUN_DIR``: a sweep folder as the paper's tables.

Writes ``report.md`` (a two-factor sweep as a grid with the best cell in bold, then one row per job with every
metric, sec/kimg, status; failed jobs with their errors), ``report.csv`` (one row per job) and ``report.png``
(the metric against kimg per job; the grid as a heatmap). Reads only the run folders (CSV logs, else W&B run files;
``status.json``, ``.hydra/overrides.yaml``): no network and no W&B account. ``stylegan-train -m`` writes it when a
sweep ends. A job without a readable log is named in ``report.md`` with what to add, never left as a silent ``-``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..utils.atomic import atomic_open
from .collect import STATUSES, Job, ReportError, factors, higher_is_better, load_sweep, resolve_metric
from .tables import REDUCE, grid_markdown, summary_columns, summary_csv, summary_markdown

__all__ = ["Report", "ReportError", "load_sweep", "write_report"]


@dataclass
class Report:
    jobs: list[Job]
    metric: str
    factors: list[str]
    paths: dict[str, Path]

    @property
    def failed(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "failed"]

    @property
    def unfinished(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "unfinished"]

    @property
    def interrupted(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "interrupted"]


def _label(job: Job, keys: list[str]) -> str:
    return " ".join(f"{k}={job.overrides.get(k)}" for k in keys) or job.path.name


def _stopped(job: Job) -> float:
    return job.status_kimg if job.status == "interrupted" and job.status_kimg is not None else job.kimg


def _logs(jobs: list[Job], metric: str) -> list[str]:
    """Where the values came from, and for jobs without any, what to add to the sweep's command."""
    sources = {s: [j for j in jobs if j.source == s] for s in ("csv", "wandb", None)}
    text = []
    if sources["wandb"]:
        nums = ", ".join(str(j.num) for j in sources["wandb"])
        text.append(f"Values of job(s) {nums} read from their W&B run files (`wandb/*run-*/run-*.wandb`; no CSV log).")
    if sources[None]:
        nums = ", ".join(str(j.num) for j in sources[None])
        text.append(f"**No logged values for job(s) {nums}**: neither `csv/metrics.csv` nor a readable W&B run file "
                    "(`wandb/*run-*/run-*.wandb`, read with the `wandb` package) is in their folders (a job stopped "
                    "before its first log has neither), so their cells show `-`. The report reads CSV logs and W&B "
                    "run files, not TensorBoard events: run the sweep with `logger=csv` or `logger=[csv,wandb]` (or "
                    "`logger=[csv,tensorboard]`).")
    elif not any(j.curves.get(metric) for j in jobs) and not all(j.status == "failed" for j in jobs):
        text.append(f"**No job logged `{metric}`**: pass `--metric` with a logged column "
                    f"({', '.join(sorted({c for j in jobs for c in j.curves})[:8]) or 'none'}).")
    return text


def markdown(jobs: list[Job], root: Path, metric: str, keys: list[str], reduce: str, rows: str, cols: str) -> str:
    counts = {s: sum(j.status == s for j in jobs) for s in STATUSES}
    fixed = {k: v for k, v in jobs[0].overrides.items() if k not in keys}
    direction = "higher" if higher_is_better(metric) else "lower"
    lines = [f"# Sweep report: {root}", "",
             f"{len(jobs)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ".",
             f"Metric: `{metric}`, {reduce} logged value per job ({direction} is "
             "better; the best in **bold**).",
             "Varied: " + (", ".join(f"`{k}`" for k in keys) or "nothing (one job)") + ".",
             "Fixed: " + (" ".join(f"`{k}={v}`" for k, v in fixed.items()) or "-") + ".", *_logs(jobs, metric)]
    tags = list(dict.fromkeys(t for j in jobs for t in j.tags))
    if tags:
        lines.insert(6, "Tags: " + ", ".join(f"`{t}`" for t in tags) + ".")
    if rows and cols:
        lines += ["", f"## {metric}: rows `{rows}`, columns `{cols}`", "",
                  grid_markdown(jobs, rows, cols, metric, reduce)]
    columns = summary_columns(jobs, metric)
    lines += ["", "## Every job", "", summary_markdown(jobs, keys, columns, reduce)]
    bad = [j for j in jobs if j.status != "completed"]
    if bad:
        lines += ["", "## Failed and unfinished jobs", ""]  # unfinished: also interrupted (by a signal)
        lines += [f"- job {j.num} ({_label(j, keys)}): {j.status}" + (f" by {j.signal}" if j.signal else "")
                  + (f": {j.error}" if j.error else f" at kimg {_stopped(j):g}") + f" — `{j.path}`" for j in bad]
    lines += ["", "![report](report.png)", ""]
    return "\n".join(lines)


def write_report(sweep_dir: str | Path, metric: str | None = None, reduce: str = "last", rows: str | None = None,
                 cols: str | None = None, plot: bool = True) -> Report:
    """Read ``sweep_dir`` and write ``report.md``, ``report.csv`` (and ``report.png``) into it."""
    if reduce not in REDUCE:
        raise ReportError(f"--reduce {reduce!r}: use last (last logged value), best or median")
    root = Path(sweep_dir)
    jobs = load_sweep(root)
    metric = resolve_metric(jobs, metric)
    keys = factors(jobs)
    for name, key in (("--rows", rows), ("--cols", cols)):
        if key is not None and key not in keys:
            raise ReportError(f"{name} {key} is not a swept override; swept: {', '.join(keys) or 'none'}")
    if rows is None and cols is None and len(keys) == 2:
        rows, cols = keys
    elif (rows is None) != (cols is None):
        raise ReportError("--rows and --cols go together")
    paths = {"md": root / "report.md", "csv": root / "report.csv"}
    with atomic_open(paths["csv"], "w") as f:
        f.write(summary_csv(jobs, keys, summary_columns(jobs, metric), reduce))
    if plot:
        from .plot import plot as plot_png

        paths["png"] = plot_png(jobs, metric, [rows, cols] if rows else keys, reduce, root / "report.png")
    text = markdown(jobs, root, metric, keys, reduce, rows or "", cols or "")
    with atomic_open(paths["md"], "w") as f:
        f.write(text if plot else text.replace("\n![report](report.png)\n", ""))
    return Report(jobs, metric, keys, paths)
