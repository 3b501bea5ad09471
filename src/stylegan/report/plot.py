"""``report.png``: the metric against kimg for every job, and the two-factor grid as a heatmap (matplotlib)."""

from __future__ import annotations

import math
from pathlib import Path

from ..utils.atomic import atomic_open
from .collect import Job
from .tables import fmt, grid


def plot(jobs: list[Job], column: str, keys: list[str], reduce: str, path: Path) -> Path:
    from matplotlib.figure import Figure  # no pyplot: the caller's backend (e.g. a notebook's) stays as it is

    two = len(keys) == 2
    fig = Figure(figsize=(12 if two else 7, 4.5))
    axes = fig.subplots(1, 2 if two else 1, squeeze=False)
    ax = axes[0, 0]
    for job in jobs:
        points = [(k, v) for k, v in job.curves.get(column, []) if math.isfinite(k) and math.isfinite(v)]
        label = " ".join(f"{k.rsplit('/', 1)[-1]}={job.overrides.get(k, '')}" for k in keys) or f"job {job.num}"
        if job.status != "completed":
            label += f" ({job.status})"
        if points:
            ax.plot(*zip(*points, strict=True), marker="o" if len(points) < 20 else None, ms=3, label=label)
        else:
            ax.plot([], [], label=label)
    ax.set_xlabel("kimg")
    ax.set_ylabel(column)
    ax.set_title(f"{column} during training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if two:
        rows, cols, cells = grid(jobs, keys[0], keys[1], column, reduce)
        ax = axes[0, 1]
        values = [[cells[(r, c)][0] for c in cols] for r in rows]
        image = ax.imshow(values, cmap="viridis_r" if "precision" not in column else "viridis")
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(keys[1])
        ax.set_ylabel(keys[0])
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                v, text = cells[(r, c)]
                shade = image.norm(v) if math.isfinite(v) else 0.0  # dark text on the light end of the map
                light = shade < 0.5 if "precision" not in column else shade > 0.5
                ax.text(j, i, fmt(v) if math.isfinite(v) else text, ha="center", va="center", fontsize=9,
                        color="red" if not math.isfinite(v) else "black" if light else "white")
        ax.set_title(f"{column} ({reduce})")
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=100)
    return path
