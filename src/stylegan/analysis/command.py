"""``stylegan analyze droplets|contributions|ppl|attribution --model M --out DIR``: every input checked first (one
line, exit 2, no file written), then the measurement, ``<analysis>.csv`` and ``<analysis>.png`` in DIR.

``ppl`` and ``attribution`` live in modules of their own (:mod:`.ppl_samples`, :mod:`.attribution`), each with
``options(parser)`` (its own command-line options), ``check(G, path, args)`` (before any work) and
``run(G, opts, args, out) -> list[Path]``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

from ..networks import Generator

ANALYSES = ("droplets", "contributions", "ppl", "attribution")
DEFAULT_SEEDS = {"droplets": "0-7", "contributions": "0-63", "ppl": "0-999", "attribution": "0-15"}
MODULES = {"ppl": "ppl_samples", "attribution": "attribution"}  # analyses with options and a run() of their own


def _module(analysis: str):
    from importlib import import_module

    return import_module(f".{MODULES[analysis]}", __package__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the analyses that have their own (after the common ones)."""
    for analysis in MODULES:
        _module(analysis).options(parser)


def _models(args: argparse.Namespace) -> list[Path]:
    """The model file, or a run folder's snapshots (contributions against kimg)."""
    from ..tools.generate import ToolError
    from .contributions import snapshots

    model = Path(args.model)
    if not model.is_dir():
        return [model]
    if args.analysis != "contributions":
        raise ToolError(f"--model {model} is a folder: {args.analysis} measures one model file (checkpoint, official "
                        f"weights, .pkl or .safetensors), e.g. {model / 'checkpoints' / 'last.ckpt'}")
    found = snapshots(model)
    if not found:
        raise ToolError(f"--model {model}: no checkpoints/snapshot-*.ckpt in this run folder (train with "
                        "callbacks.checkpoint.keep_snapshots=true), or pass one model file")
    return found


def _check(G: Generator, path: Path, args: argparse.Namespace) -> None:
    from ..tools.generate import ToolError, class_labels
    from .contributions import needs_skip

    class_labels(G, args.class_idx, 1)
    why = needs_skip(G) if args.analysis == "contributions" else None
    if why:
        raise ToolError(f"--model {path}: {why}")
    if args.analysis in MODULES:
        _module(args.analysis).check(G, path, args)


def analyze(args: argparse.Namespace, load_model: Callable[[str], Generator], device: torch.device) -> None:
    from ..model_files import load_generator
    from ..tools.generate import ToolError, check_options, parse_seeds

    seeds = parse_seeds(args.seeds or DEFAULT_SEEDS[args.analysis])
    check_options(1.0, args.noise_mode)
    if args.analysis == "contributions" and len(seeds) < 2:
        raise ToolError(f"--seeds {args.seeds}: a standard deviation over latents needs at least 2 seeds")
    if args.batch_size is not None and args.batch_size < 1:
        raise ToolError(f"--batch-size {args.batch_size}: must be >= 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ToolError(f"--out {out} is a file; pass a folder")
    models, run = _models(args), Path(args.model).is_dir()
    G, kimg = load_generator(models[0], "--model ") if run else (load_model(str(models[0])), None)
    _check(G, models[0], args)
    batch = args.batch_size or (64 if device.type == "cuda" else 8)
    opts = dict(seeds=seeds, noise_mode=args.noise_mode, class_idx=args.class_idx, device=device, batch_size=batch)
    if args.analysis in MODULES:
        paths = _module(args.analysis).run(G, opts, args, out)
    elif args.analysis == "droplets":
        paths = _droplets(G, opts, out)
    else:
        paths = _contributions((_kimg(kimg) if run else None, G), models[1:], opts, args, out)
    print(f"wrote {', '.join(p.name for p in paths)} to {out}")


def _kimg(kimg: float | None) -> float:
    return float("nan") if kimg is None else kimg


def _droplets(G: Generator, opts: dict, out: Path) -> list[Path]:
    from .droplets import figure, measure, write_csv

    result = measure(G, **opts)
    rows = result.rows()
    paths = [write_csv(rows, out / "droplets.csv"), figure(result, out / "droplets.png")]
    for r in rows:
        if r["layer"] == "all":
            print(f"{r['resolution']:>5}x{r['resolution']:<5} spike ratio {r['spike_ratio']:8.2f}  "
                  f"co-location {r['colocation']:.2f}")
    return paths


def _contributions(first: tuple[float | None, Generator], more: list[Path], opts: dict, args: argparse.Namespace,
                   out: Path) -> list[Path]:
    """One model, or a run's snapshots loaded one at a time (each checked as the first was)."""
    from ..model_files import load_generator
    from .contributions import contribution_stds, figure, shares, write_csv

    (kimg, G), series = first, []
    for path in [None, *more]:
        if path is not None:
            G, kimg = load_generator(path, "--model ")
            _check(G, path, args)
            kimg = _kimg(kimg)
        series.append((kimg, contribution_stds(G, **opts)))
    series.sort(key=lambda row: row[0] if row[0] is not None else 0.0)
    paths = [write_csv(series, out / "contributions.csv"), figure(series, out / "contributions.png")]
    kimg, stds = series[-1]
    print(("" if kimg is None else f"at {kimg:g} kimg: ") + ", ".join(
        f"{res}: {share:.1f}%" for res, share in shares(stds).items()))
    return paths
