"""Projection attribution (StyleGAN2 Sec. 5, Fig. 10): ``stylegan analyze attribution``.

A generated image can be projected back into the generator almost exactly, a real one only approximately, so the
distance between an image and its re-synthesis ``g(g^-1(x))`` tells which generator made an image. Measured here:
the images of N seeds (psi 1, uint8 as an image file holds them) and N real images are each projected with the
project command's projector (:func:`stylegan.tools.projection.project`: the official schedule, in W unless
``--w-plus``, the noise maps started from torch seed 303 as there), re-synthesized with the projected w and noise
maps (uint8, as ``proj.png``), and compared with the image by the projection's own distance: LPIPS-VGG16 when its
weights load (the paper's), else, with a warning, the projector's stand-in ``pixel-pyramid`` distance, which is
never called LPIPS (the csv column and the figure carry the distance's name).

The separation is the ROC AUC of "generated if the distance is <= t" (:mod:`.roc`):
``AUC = P(d_generated < d_real) + P(d_generated == d_real) / 2`` over all (generated, real) pairs; 1: every
generated image projects closer than every real one (the paper's finding), 1/2: the distance cannot tell them
apart, below 1/2: the real images project closer.

The real images (``--reals``) are what ``data.source`` takes for training: a folder or .zip of PNG/JPEG/WebP files
at the generator's resolution and channel count, a ``stylegan-prepare`` output, or the built-in ``mnist`` / ``lfw``
(resized to the generator's resolution, as training resizes them). N = the number of seeds of them, drawn as
``data.max_images`` draws a subset (seed 0; all of them in order when there are exactly N). They are not resized:
an interpolated image would be smoother than the generator's and project differently for that reason alone.

``--steps`` defaults to the official 1000: every image costs that many forward and backward passes of G (one CPU
thread: ~14 s per image for the 32x32 ``mnist_demo`` G, far more for wide 64x64+ generators; ``--steps 200 --seeds
0-7`` gives a first look, with a weaker projection of both kinds). Outputs: ``attribution.csv`` (kind, seed,
file, the distance), ``attribution.png`` (both histograms and the ROC curve with its AUC).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import re
from pathlib import Path

import numpy as np
import torch

from ..networks import Generator
from ..utils.atomic import atomic_open
from . import latents
from .roc import auc, roc_curve

PROJECTION_SEED = 303  # the project command's default torch seed for the noise maps


def options(parser: argparse.ArgumentParser) -> None:
    """``--reals``, ``--steps``/``--num-steps``, ``--w-plus`` and ``--distance`` (shared with another analysis
    if it defines the same option)."""
    parser.add_argument("--reals", help="attribution: the real images to project, as data.source takes them (a "
                        "folder or .zip of images at G's resolution, a stylegan-prepare output, mnist or lfw); as "
                        "many as there are seeds are drawn")
    parser.add_argument("--steps", "--num-steps", dest="num_steps", type=int, default=1000,
                        help="attribution: projection steps per image (default 1000, the official projector's)")
    parser.add_argument("--w-plus", dest="w_plus", action="store_true",
                        help="attribution: project into W+ (one w per layer) instead of W (the paper's)")
    with contextlib.suppress(argparse.ArgumentError):  # another analysis has it already: the same option
        parser.add_argument("--distance", default="auto", help="auto (LPIPS if its weights load, else the named "
                            "pixel-pyramid stand-in, with a warning) | lpips | pixel")


def check(G: Generator, path: Path, args: argparse.Namespace) -> None:
    """Steps, distance, seeds and the real images (listed, decoded and checked against G), before any work; the
    real images are kept in ``args.attribution_reals`` for :func:`run`."""
    from ..tools.generate import ToolError, parse_seeds
    from ..tools.projection import DISTANCES
    from .command import DEFAULT_SEEDS

    if args.num_steps < 1:
        raise ToolError(f"--steps {args.num_steps}: the projection needs at least 1 step (the official 1000)")
    if args.distance not in DISTANCES:
        raise ToolError(f"--distance {args.distance!r}: use one of {', '.join(DISTANCES)}")
    n = len(parse_seeds(args.seeds or DEFAULT_SEEDS["attribution"]))
    if n < 2:
        raise ToolError(f"--seeds {args.seeds}: the AUC needs at least 2 generated and 2 real images; pass 2 or "
                        "more seeds (default 0-15)")
    if not args.reals:
        raise ToolError("attribution projects real images too: pass --reals (a folder or .zip of images at the "
                        f"generator's {G.img_resolution}x{G.img_resolution}, a stylegan-prepare output, mnist or lfw)")
    args.attribution_reals = open_reals(args.reals, G, n)


def open_reals(source: str, G: Generator, count: int):
    """``count`` images of ``source`` (as ``data.source``; checked against G's resolution and channels) as an
    image store; a one-line ``ToolError`` when they cannot be had."""
    from ..data.demo import load_lfw, load_mnist
    from ..data.errors import DatasetError
    from ..data.sources import FolderContainer, ZipContainer, is_prepared, open_prepared, subset_indices
    from ..data.validate import build_raw_store
    from ..tools.generate import ToolError

    R, C = G.img_resolution, G.img_channels
    wanted = f"this generator makes {R}x{R} images with {C} channel(s)"
    path = Path(source).expanduser()
    try:
        if source in ("mnist", "lfw"):
            store = (load_mnist if source == "mnist" else load_lfw)(R, C)
        elif not path.exists():
            raise ToolError(f"--reals {source} does not exist: pass a folder or .zip of images, a stylegan-prepare "
                            "output, mnist or lfw")
        elif is_prepared(path):
            store = open_prepared(path)
        elif path.is_dir() or path.suffix.lower() == ".zip":
            store = build_raw_store(FolderContainer(path) if path.is_dir() else ZipContainer(path), R, C, False,
                                    "error", count)
        else:
            raise ToolError(f"--reals {source} is not a folder, a .zip or a stylegan-prepare output")
    except DatasetError as e:  # its advice speaks of data.* settings: here G fixes the resolution and channels
        why = re.sub(r"set data\.\w+=\d+(?: if it is a power of two)?, or ", "", str(e))
        why = why.replace("data.resolution=", "the generator's resolution is ")
        why = why.replace("data.channels=", "the generator's channel count is ")
        why = why.replace(", or set data.on_bad_image=skip to leave bad files out", "")
        raise ToolError(f"--reals {source} ({wanted}): {why.replace('check data.source', 'check --reals')}") from None
    if (store.resolution, store.channels) != (R, C):
        raise ToolError(f"--reals {source} holds {store.resolution}x{store.resolution} images with {store.channels} "
                        f"channel(s), but {wanted}; prepare them with stylegan-prepare --resolution {R} --channels {C}")
    if len(store) < count:
        raise ToolError(f"--reals {source} has {len(store)} usable image(s) but there are {count} seeds: pass as "
                        f"many real images as seeds, or fewer seeds")
    return store.subset(subset_indices(len(store), count)) if len(store) > count else store


def generated_images(G: Generator, seeds: list[int], noise_mode: str, class_idx: int | None,
                     device: torch.device, batch_size: int) -> list[torch.Tensor]:
    """G's images of ``seeds`` (psi 1) as [C, R, R] float in [0, 255], quantized to uint8 as an image file."""
    from ..utils.images import to_uint8

    z_all, c_all = latents(G, seeds, class_idx)
    G = G.to(device).eval()
    images = []
    with torch.no_grad():
        for start in range(0, len(seeds), batch_size):
            img = G(z_all[start:start + batch_size].to(device), c_all[start:start + batch_size].to(device),
                    noise_mode=noise_mode)
            images += [torch.from_numpy(u).permute(2, 0, 1).float() for u in to_uint8(img)]
    return images


def resynthesis_distance(G: Generator, target: torch.Tensor, distance: torch.nn.Module, cfg,
                         class_idx: int | None, device: torch.device) -> float:
    """Project ``target`` ([C, R, R] in [0, 255]), render the result as uint8 and measure it against the target
    exactly as the projection's loss does (same distance, same input scaling)."""
    from ..tools.projection import _to_distance_input, project, render

    result = project(G, target, distance, cfg, PROJECTION_SEED, class_idx, device)
    resynth = torch.from_numpy(render(G, result)).permute(2, 0, 1).float()
    with torch.no_grad():
        a, b = (_to_distance_input(x[None].to(device) / 127.5 - 1) for x in (resynth, target))
        return float(distance.to(device)(a, b).sum())


def run(G: Generator, opts: dict, args: argparse.Namespace, out: Path) -> list[Path]:
    """Project the seeds' images and the real ones; ``attribution.csv`` and ``attribution.png``."""
    from tqdm.auto import tqdm

    from ..tools.projection import ProjectionConfig, build_distance

    store = getattr(args, "attribution_reals", None)
    store = open_reals(args.reals, G, len(opts["seeds"])) if store is None else store
    device = opts["device"]
    distance = build_distance(args.distance)
    cfg = ProjectionConfig(num_steps=args.num_steps, w_plus=args.w_plus)
    rows = [("generated", seed, "", img) for seed, img in zip(opts["seeds"], generated_images(
        G, opts["seeds"], opts["noise_mode"], opts["class_idx"], device, opts["batch_size"]), strict=True)]
    rows += [("real", "", store.names[i], torch.from_numpy(store.load(i)).float()) for i in range(len(store))]
    measured = []
    for kind, seed, name, img in tqdm(rows, unit="image", desc="projecting", disable=None):
        measured.append((kind, seed, name, resynthesis_distance(G, img, distance, cfg, opts["class_idx"], device)))
    gen = [d for kind, *_, d in measured if kind == "generated"]
    real = [d for kind, *_, d in measured if kind == "real"]
    score = auc(gen, real)
    print(f"{distance.name} distance to the re-synthesis, median: generated {np.median(gen):.4g}, real "
          f"{np.median(real):.4g}; ROC AUC {score:.3f} (P(generated closer than real), 1/2 = no separation)")
    return [write_csv(measured, distance.name, out / "attribution.csv"),
            figure(gen, real, distance.name, args, out / "attribution.png")]


def write_csv(rows: list[tuple], distance_name: str, path: Path) -> Path:
    """``kind,seed,file,<distance name>``: one row per image (seed for generated, file for real ones)."""
    with atomic_open(path, "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["kind", "seed", "file", distance_name])
        for kind, seed, name, d in rows:
            w.writerow([kind, seed, name, repr(d)])
    return path


def figure(gen: list[float], real: list[float], distance_name: str, args: argparse.Namespace, path: Path) -> Path:
    """Both histograms on shared bins (log-spaced when the distances span more than a factor 20), and the ROC curve
    with its AUC."""
    from matplotlib.figure import Figure

    stand_in = "" if distance_name.startswith("lpips") else " (stand-in, not LPIPS)"
    fig = Figure(figsize=(9, 3.4))
    hist, roc = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
    both = np.concatenate([gen, real])
    count = int(np.clip(len(both) // 2, 5, 30))
    log = bool(np.isfinite(both).all() and both.min() > 0 and both.max() > 20 * both.min())  # spans decades
    bins = np.geomspace(both.min(), both.max(), count + 1) if log else np.histogram_bin_edges(both, bins=count)
    for values, label, color in ((gen, "generated", "tab:blue"), (real, "real", "tab:orange")):
        hist.hist(values, bins=bins, alpha=0.55, color=color, label=f"{label} ({len(values)}, median "
                  f"{np.median(values):.3g})")
    hist.set_xscale("log" if log else "linear")
    hist.set_xlabel(f"{distance_name} distance{stand_in} to the re-synthesis" + (" (log scale)" if log else ""))
    hist.set_ylabel("images")
    hist.legend(fontsize=8)
    fpr, tpr = roc_curve(gen, real)
    roc.plot(fpr, tpr, color="tab:blue")
    roc.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1)
    roc.set_xlabel("false positives: real called generated")
    roc.set_ylabel("true positives: generated called so")
    roc.set_title(f"ROC AUC {auc(gen, real):.3f}", fontsize=9)
    space = "W+" if args.w_plus else "W"
    fig.suptitle(f"projection attribution (StyleGAN2 Sec. 5): {args.num_steps} steps in {space}", fontsize=9)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=100)
    return path
