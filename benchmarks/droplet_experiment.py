"""The droplet experiment of issue 30 (StyleGAN2 Sec. 2, Fig. 1; Sec. 4.1, Fig. 8) from finished run folders.

Two runs trained with the same recipe except the style block (``model/style=adain`` against ``model/style=demod``),
both with ``callbacks.checkpoint.keep_snapshots=true``. For a freshly initialised G of each run's architecture (the
kimg-0 reference) and every ``checkpoints/snapshot-*.ckpt`` (G_ema) this measures the droplet statistics exactly as
``stylegan analyze droplets`` does (stylegan.analysis.droplets: ``measure`` on fixed seeds, ``Droplets.rows``; per
snapshot its droplets.csv / droplets.png under --per-snapshot), prints one table (kimg x resolution: median spike
ratio, its 90th percentile over seeds x channels, median co-location), writes it as CSV, and draws spike ratio and
co-location against kimg per resolution for all runs, with the mean-|activation| maps of the last snapshot of each
run under them. With --contributions RUN it also draws the per-resolution ToRGB contributions of that (skip) run's
snapshots against kimg (Fig. 8's stacked areas, ``stylegan analyze contributions --model RUN``'s figure).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/droplet_experiment.py \
        --run adain=outputs/droplets_exp/adain64 --run demod=outputs/droplets_exp/demod64 \
        --contributions outputs/droplets_exp/demod64

The spike ratio is ``max|x| / median|x|`` per channel over the H x W map; co-location the fraction of channels whose
argmax lies within 1 px of the most common one (see stylegan/analysis/droplets.py). The 90th percentile is an extra
summary of the same per-channel ratios (a spike in a minority of channels would not move the median); it is not the
tool's number.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np
import torch

from stylegan.analysis import contributions as contrib
from stylegan.analysis import droplets
from stylegan.model_files import load_generator
from stylegan.networks import Generator
from stylegan.tools.generate import parse_seeds

ROOT = Path(__file__).resolve().parents[1]

FIGURE = ROOT / "benchmarks" / "figures" / "droplets_adain_vs_demod.png"
CONTRIB_FIGURE = ROOT / "benchmarks" / "figures" / "contributions_skip.png"


def fresh_generator(snapshot: Path, seed: int = 0) -> tuple[Generator, float]:
    """The kimg-0 reference: a freshly initialised G (torch seed ``seed``) with the snapshot's G_kwargs; the same
    architecture and init scheme as the run's start, not its exact weights."""
    blob = torch.load(snapshot, map_location="cpu", weights_only=True)
    torch.manual_seed(seed)
    return Generator(**blob["stylegan"]["G_kwargs"]).eval().requires_grad_(False), 0.0


def measure_run(label: str, run: Path, seeds: list[int], per_snapshot: Path | None) -> tuple[list[dict], dict]:
    """Rows (run, kimg, resolution, spike_ratio, spike_ratio_p90, colocation) for a fresh G (kimg 0) and every
    snapshot of ``run``, and the last snapshot's Droplets (for the maps)."""
    snaps = contrib.snapshots(run)
    if not snaps:
        sys.exit(f"droplet_experiment.py: error: {run}: no checkpoints/snapshot-*.ckpt (train with "
                 "callbacks.checkpoint.keep_snapshots=true)")
    rows, last = [], None
    for path in [None, *snaps]:
        G, kimg = fresh_generator(snaps[0]) if path is None else load_generator(path, "--run ")
        result = droplets.measure(G, seeds, noise_mode="const", batch_size=8)
        p90 = {}
        for name, res in result.resolution.items():
            p90.setdefault(res, []).append(torch.cat(result.ratios[name]).flatten().numpy())
        for r in result.rows():
            if r["layer"] != "all":
                continue
            ratios = np.concatenate(p90[r["resolution"]])
            rows.append(dict(run=label, kimg=float(kimg), resolution=r["resolution"], spike_ratio=r["spike_ratio"],
                             spike_ratio_p90=float(np.nanpercentile(ratios, 90)), colocation=r["colocation"]))
        if per_snapshot is not None:
            out = per_snapshot / label / ("init" if path is None else path.stem)
            out.mkdir(parents=True, exist_ok=True)
            droplets.write_csv(result.rows(), out / "droplets.csv")
            droplets.figure(result, out / "droplets.png")
        last = (kimg, result)
        print(f"{label} {'fresh init' if path is None else path.name}: kimg {kimg:g}", file=sys.stderr)
    return rows, last


def print_table(rows: list[dict], labels: list[str]) -> None:
    """Markdown: one line per (kimg, resolution), per run median spike ratio / p90 / median co-location."""
    head = "| kimg | res | " + " | ".join(f"{lb} spike (p90) | {lb} coloc" for lb in labels) + " |"
    print(head)
    print("|" + "---|" * (2 + 2 * len(labels)))
    index = {(r["run"], r["kimg"], r["resolution"]): r for r in rows}
    for kimg in sorted({r["kimg"] for r in rows}):
        for res in sorted({r["resolution"] for r in rows}):
            cells = []
            for lb in labels:
                r = index.get((lb, kimg, res))
                cells += (["-", "-"] if r is None else
                          [f"{r['spike_ratio']:.2f} ({r['spike_ratio_p90']:.2f})", f"{r['colocation']:.2f}"])
            print(f"| {kimg:g} | {res} | " + " | ".join(cells) + " |")


def write_rows(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def draw(rows: list[dict], lasts: dict, labels: list[str], path: Path) -> None:
    """Top: per resolution, median spike ratio (solid; p90 dashed) and co-location against kimg, one colour per run.
    Bottom: per run, seed 0's image and its mean |activation| over channels per resolution at the last snapshot."""
    import torch.nn.functional as F
    from matplotlib.figure import Figure

    resolutions = sorted({r["resolution"] for r in rows})
    cols = len(resolutions) + 1
    fig = Figure(figsize=(2.3 * cols, 4.6 + 2.2 * len(labels)))
    top, bottom = fig.subfigures(2, 1, height_ratios=[4.6, 2.2 * len(labels)])
    axes = top.subplots(2, len(resolutions), squeeze=False)
    colours = {lb: f"C{(3, 0, 2, 4)[i % 4]}" for i, lb in enumerate(labels)}
    for j, res in enumerate(resolutions):
        for lb in labels:
            rs = sorted((r for r in rows if r["run"] == lb and r["resolution"] == res), key=lambda r: r["kimg"])
            k = [r["kimg"] for r in rs]
            axes[0, j].plot(k, [r["spike_ratio"] for r in rs], "-o", ms=3, color=colours[lb], label=f"{lb} median")
            axes[0, j].plot(k, [r["spike_ratio_p90"] for r in rs], "--", lw=1, color=colours[lb], label=f"{lb} p90")
            axes[1, j].plot(k, [r["colocation"] for r in rs], "-o", ms=3, color=colours[lb], label=lb)
        axes[0, j].set_title(f"{res}x{res}", fontsize=9)
        axes[1, j].set_ylim(0, 1.02)
        axes[1, j].set_xlabel("kimg", fontsize=8)
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("spike ratio max|x|/median|x|", fontsize=8)
    axes[1, 0].set_ylabel("co-location", fontsize=8)
    top.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper right", fontsize=7, ncol=len(labels))
    top.suptitle("droplet statistics of G_ema against training (median over seeds x channels)", fontsize=9)

    maps = bottom.subplots(len(labels), cols, squeeze=False)
    for i, lb in enumerate(labels):
        kimg, result = lasts[lb]
        img = result.images[0]
        size = img.shape[0]
        maps[i, 0].imshow(img[..., 0] if img.shape[-1] == 1 else img[..., :3], cmap="gray")
        maps[i, 0].set_title(f"{lb}, {kimg:g} kimg", fontsize=8)
        lastlayer = {res: name for name, res in result.resolution.items()}
        for j, res in enumerate(resolutions, start=1):
            m = F.interpolate(torch.cat(result.maps[lastlayer[res]])[0][None, None], size=(size, size),
                              mode="nearest")[0, 0].numpy()
            maps[i, j].imshow(m / max(m.max(), 1e-30), cmap="inferno", vmin=0, vmax=1)
            maps[i, j].set_title(f"{res}x{res} mean|x|", fontsize=7)
        for ax in maps[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def contributions(run: Path, seeds: list[int], path: Path) -> None:
    series = []
    for snap in contrib.snapshots(run):
        G, kimg = load_generator(snap, "--contributions ")
        why = contrib.needs_skip(G)
        if why:
            sys.exit(f"droplet_experiment.py: error: --contributions {snap}: {why}")
        series.append((float(kimg), contrib.contribution_stds(G, seeds, batch_size=16)))
    series.sort(key=lambda s: s[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    contrib.figure(series, path)
    print(f"\ncontributions of {run} (% of the summed std, seeds {seeds[0]}-{seeds[-1]}):")
    resolutions = list(series[0][1])
    print("| kimg | " + " | ".join(f"{r}x{r}" for r in resolutions) + " |")
    print("|" + "---|" * (1 + len(resolutions)))
    for kimg, stds in series:
        share = contrib.shares(stds)
        print(f"| {kimg:g} | " + " | ".join(f"{share[r]:.1f}" for r in resolutions) + " |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="droplet_experiment.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, metavar="LABEL=RUN_DIR",
                   help="a run folder with checkpoints/snapshot-*.ckpt, labelled (repeat)")
    p.add_argument("--seeds", default="0-31", help="droplet seeds (default 0-31)")
    p.add_argument("--figure", type=Path, default=FIGURE)
    p.add_argument("--csv", type=Path, default=None, help="write the table's rows here")
    p.add_argument("--per-snapshot", type=Path, default=None, help="droplets.csv/png of every snapshot under here")
    p.add_argument("--contributions", type=Path, default=None, help="a skip-G run folder: Fig. 8 over its snapshots")
    p.add_argument("--contributions-seeds", default="0-63")
    p.add_argument("--contributions-figure", type=Path, default=CONTRIB_FIGURE)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    runs = []
    for item in args.run:
        label, sep, folder = item.partition("=")
        if not sep or not label or not Path(folder).is_dir():
            p.error(f"--run {item}: expected LABEL=RUN_DIR with an existing folder")
        runs.append((label, Path(folder)))
    seeds = parse_seeds(args.seeds)
    rows, lasts = [], {}
    for label, folder in runs:
        r, lasts[label] = measure_run(label, folder, seeds, args.per_snapshot)
        rows += r
    labels = [lb for lb, _ in runs]
    print(f"droplets, seeds {args.seeds}, noise const: median spike ratio (p90 over seeds x channels), "
          "median co-location")
    print_table(rows, labels)
    if args.csv:
        write_rows(rows, args.csv)
    draw(rows, lasts, labels, args.figure)
    print(f"\nwrote {args.figure}")
    if args.contributions:
        contributions(args.contributions, parse_seeds(args.contributions_seeds), args.contributions_figure)
        print(f"wrote {args.contributions_figure}")
    if any(math.isnan(r["spike_ratio"]) for r in rows):
        print("note: NaN = every channel of a resolution had median |x| = 0", file=sys.stderr)


if __name__ == "__main__":
    main()
