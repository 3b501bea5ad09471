"""A sweep as the paper's tables: a two-factor sweep as a grid (StyleGAN2 Table 2: rows G architecture, columns D
architecture), any sweep as one row per job (Table 1: configs A-F with every metric and sec/kimg)."""

from __future__ import annotations

import csv
import io
import math
import statistics

from .collect import Job, best_of, metric_columns


def fmt(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


REDUCE = ("last", "best", "median")


def value_of(job: Job, column: str, reduce: str) -> float:
    """A job's value of ``column``: the last logged, the best, or the median over the run (for timings)."""
    return {"last": job.last, "best": job.best, "median": job.median}[reduce](column)


def _cell(jobs: list[Job], column: str, reduce: str) -> tuple[float, str]:
    """(value for ranking, text). Several jobs in a cell (e.g. seeds): mean ± std of the finished ones."""
    done = [value_of(j, column, reduce) for j in jobs if j.status == "completed"]
    done = [v for v in done if math.isfinite(v)]
    if not done:
        states = sorted({j.status for j in jobs})
        return math.nan, "/".join(states) if states != ["completed"] else "-"
    mean = statistics.fmean(done)
    text = fmt(mean) if len(done) == 1 else f"{fmt(mean)} ± {fmt(statistics.stdev(done))} (n={len(done)})"
    other = [j.status for j in jobs if j.status != "completed"]
    return mean, text + (f" ({len(other)} {'/'.join(sorted(set(other)))})" if other else "")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def grid(jobs: list[Job], rows_key: str, cols_key: str, column: str, reduce: str):
    """(row values, column values, {(r, c): (value, text)}) in command-line order."""
    row_values = list(dict.fromkeys(j.overrides.get(rows_key, "") for j in jobs))
    col_values = list(dict.fromkeys(j.overrides.get(cols_key, "") for j in jobs))
    cells = {}
    for r in row_values:
        for c in col_values:
            members = [j for j in jobs if j.overrides.get(rows_key, "") == r and j.overrides.get(cols_key, "") == c]
            cells[(r, c)] = _cell(members, column, reduce) if members else (math.nan, "")
    return row_values, col_values, cells


def grid_markdown(jobs: list[Job], rows_key: str, cols_key: str, column: str, reduce: str) -> str:
    row_values, col_values, cells = grid(jobs, rows_key, cols_key, column, reduce)
    best = best_of([v for v, _ in cells.values()], column)
    rows = [[f"**{r}**"] + [f"**{t}**" if v == best else t for v, t in (cells[(r, c)] for c in col_values)]
            for r in row_values]
    return _table([f"{rows_key} \\ {cols_key}", *col_values], rows)


def summary_columns(jobs: list[Job], column: str) -> list[str]:
    """Every ``metrics/*`` column, the report's metric, and sec/kimg where logged."""
    timing = ["timing/sec_per_kimg"] if any("timing/sec_per_kimg" in j.curves for j in jobs) else []
    return list(dict.fromkeys([*metric_columns(jobs), column, *timing]))


BATCH = ("progress/minibatch", "progress/rounds")  # the global batch and its accumulation rounds, as logged


def _count(value: float) -> int | float:
    return int(value) if math.isfinite(value) else value


def batch_columns(jobs: list[Job]) -> list[str]:
    """``batch`` and ``rounds`` (the last logged global batch and rounds per step) when the jobs logged them."""
    return ["batch", "rounds"] if any(BATCH[0] in j.curves for j in jobs) else []


def summary_rows(jobs: list[Job], keys: list[str], columns: list[str], reduce: str) -> tuple[list[str], list[list]]:
    """One row per job: job, factor values, status, kimg reached, [global batch, rounds,] each column's value,
    error."""
    batch = batch_columns(jobs)
    header = ["job", *keys, "status", "kimg", *batch, *columns, "error"]
    rows = [[j.num, *(j.overrides.get(k, "") for k in keys), j.status, j.kimg,
             *(_count(j.last(c)) for c in BATCH[: len(batch)]), *(value_of(j, c, reduce) for c in columns),
             j.error or ""]
            for j in jobs]
    return header, rows


def summary_markdown(jobs: list[Job], keys: list[str], columns: list[str], reduce: str) -> str:
    header, rows = summary_rows(jobs, keys, columns, reduce)
    n, m = len(keys), len(batch_columns(jobs))
    values = [r[n + 3 + m : -1] for r in rows]
    done = [j.status == "completed" for j in jobs]
    best = {c: best_of([v[i] for v, ok in zip(values, done, strict=True) if ok], c) for i, c in enumerate(columns)}
    text_rows = [[str(r[0]), *map(str, r[1 : n + 1]), r[n + 1], *map(fmt, r[n + 2 : n + 3 + m]),
                  *(f"**{fmt(x)}**" if ok and x == best[c] else fmt(x) for c, x in zip(columns, v, strict=True))]
                 for r, v, ok in zip(rows, values, done, strict=True)]
    return _table(header[:-1], text_rows)


def summary_csv(jobs: list[Job], keys: list[str], columns: list[str], reduce: str) -> str:
    header, rows = summary_rows(jobs, keys, columns, reduce)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow(["" if isinstance(v, float) and not math.isfinite(v) else v for v in r])
    return buf.getvalue()
