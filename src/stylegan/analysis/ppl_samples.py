"""Per-image perceptual path length (StyleGAN2 Sec. 3.2, Figs. 3-4): ``stylegan analyze ppl``.

The paper's PPL is the mean of per-sample path lengths within their 1st-99th percentiles; here every sample is kept.
The sample of seed ``s`` is the ``ppl`` metric's batch ``s`` at batch size 1 with metrics seed 0: from
``torch.Generator().manual_seed(batch_seed(0, s))`` are drawn, in this order, t (uniform in [0, 1) for sampling
'full', none and t = 0 for 'end'), z0, z1, the label (``--class``), then the constant noise maps shared by the pair
(:func:`stylegan.metrics.ppl.draw_pairs`); its value is ``distance(img(t), img(t + epsilon)) / epsilon^2`` with lerp
in W or slerp in Z and the metric's crop and 256 px rules (:func:`stylegan.metrics.ppl.pair_distances`, the code the
metric runs). So seeds 0..N-1 are exactly the N pairs of the metric of the same settings (``ppl2_wend_N`` for the
defaults) computed with batch size 1 and seed 0, and the trimmed mean of ``ppl.csv`` is that metric's value (at
another batch size the metric draws other pairs from the same distribution).

The distance is LPIPS-VGG16, the paper's: the column ``ppl``. Without its weights (``--distance auto``) or with
``--distance pixel``, ``stylegan project``'s pixel-pyramid distance stands in, and the column and the figures say
``path length@pixel-pyramid``: never PPL.

Files: ``ppl.csv`` (seed, t, the path length, its decile 1-10 by rank, whether it is within the 1 %-99 % trim),
``ppl_hist.png`` (histogram, trim bounds marked), ``ppl_low.png`` / ``ppl_high.png`` (up to ``--gallery`` samples of
the lowest / highest decile, evenly spaced by rank: the images at t and t + epsilon and their difference).
"""

from __future__ import annotations

import argparse
import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..networks import Generator
from ..utils.atomic import atomic_open

MIN_SEEDS = 10  # one sample per decile at least
STANDARD_COLUMN = "ppl"


@dataclass(frozen=True)
class Settings:
    """The metric's settings: ``ppl2_wend`` is w / end / 1e-4 / no crop (``ppl_*``, StyleGAN1's, crop)."""

    space: str = "w"
    sampling: str = "end"
    epsilon: float = 1e-4
    crop: bool = False

    def metric_name(self, num: int) -> str:
        return f"ppl{'' if self.crop else '2'}_{self.space}{self.sampling}_{num}"


def _option(parser: argparse.ArgumentParser, flag: str, **kwargs) -> None:
    """Add ``flag`` unless another analysis already did (``--distance`` has one meaning: projection's)."""
    if flag not in parser._option_string_actions:
        parser.add_argument(flag, **kwargs)


def options(parser: argparse.ArgumentParser) -> None:
    """This analysis's own command-line options (and what a seed means to it, in ``--seeds``' help)."""
    notes = {"--seeds": "ppl (default 0-999): seed s is the ppl metric's pair s at batch size 1, seed 0 (t, z0, z1 "
             "and the noise maps drawn from torch.Generator().manual_seed(batch_seed(0, s)))",
             "--batch-size": "ppl: one seed at a time (each pair has noise maps of its own)"}
    for flag, note in notes.items():
        action = parser._option_string_actions.get(flag)
        if action is not None and action.help and "ppl" not in action.help:
            action.help += f"; {note}"
    _option(parser, "--space", default="w", help="ppl: w (lerp, the paper's; default) | z (slerp)")
    _option(parser, "--sampling", default="end", help="ppl: end (t = 0, the paper's; default) | full (t uniform)")
    _option(parser, "--epsilon", default="1e-4", help="ppl: the step along the path (default 1e-4, official)")
    _option(parser, "--crop", action=argparse.BooleanOptionalAction, default=False,
            help="ppl: the distance on the central face crop (StyleGAN1's ppl_*; default --no-crop, ppl2_*)")
    _option(parser, "--distance", default="auto", help="ppl (and attribution): lpips (LPIPS-VGG16, the paper's) | "
            "pixel (a stand-in, never reported as PPL) | auto (lpips when its weights load, else pixel; default)")
    _option(parser, "--gallery", default="8", help="ppl: samples shown per decile gallery (default 8)")


def _seeds(args: argparse.Namespace) -> list[int]:
    from ..tools.generate import parse_seeds
    from .command import DEFAULT_SEEDS

    return parse_seeds(args.seeds or DEFAULT_SEEDS["ppl"])


def settings_of(args: argparse.Namespace) -> Settings:
    """The checked :class:`Settings` of the command line (``ToolError``: one line)."""
    from ..tools.generate import ToolError

    if args.space not in ("w", "z"):
        raise ToolError(f"--space {args.space!r}: use w (the paper's) or z")
    if args.sampling not in ("end", "full"):
        raise ToolError(f"--sampling {args.sampling!r}: use end (the paper's) or full")
    try:
        eps = float(args.epsilon)
    except ValueError:
        eps = math.nan
    if not (math.isfinite(eps) and 0 < eps < 1):
        raise ToolError(f"--epsilon {args.epsilon!r}: must be a number in (0, 1); the official value is 1e-4")
    return Settings(args.space, args.sampling, eps, bool(args.crop))


def check(G, path: Path, args: argparse.Namespace) -> None:
    """Every input of this analysis checked before any work (``ToolError``: one line, exit 2); the distance is
    built here (``args.ppl_distance``), so that ``--distance lpips`` without its weights stops before any work."""
    from ..tools.generate import ToolError

    if args.analysis != "ppl":
        return
    settings_of(args)
    seeds = _seeds(args)
    given = f"--seeds {args.seeds}" if args.seeds else "the seeds"
    if len(seeds) < MIN_SEEDS:
        raise ToolError(f"{given}: {len(seeds)} seed(s); the lowest and highest deciles need at least {MIN_SEEDS} "
                        "(default 0-999)")
    if len(set(seeds)) < len(seeds):
        twice = next(s for i, s in enumerate(seeds) if s in seeds[:i])
        raise ToolError(f"{given}: seed {twice} is listed twice; each seed is one sample")
    if args.noise_mode != "const":
        raise ToolError(f"--noise-mode {args.noise_mode}: ppl draws each pair's constant noise from its seed, as the "
                        "ppl metric (official); drop --noise-mode")
    if not str(args.gallery).isdigit() or int(args.gallery) < 1:
        raise ToolError(f"--gallery {args.gallery!r}: the samples per gallery, a whole number >= 1")
    args.ppl_distance = build_distance(args.distance)


def build_distance(kind: str) -> nn.Module:
    """The projector's distances (:func:`..tools.projection.build_distance`): LPIPS-VGG16, the pixel-pyramid
    stand-in, or ``auto`` (LPIPS when it loads, else the stand-in with a warning)."""
    from ..tools.projection import build_distance as projector_distance

    return projector_distance(kind, "ppl measures path lengths with the pixel-pyramid stand-in (not PPL)")


def column(distance: nn.Module) -> str:
    """The name of the path length: ``ppl`` with the paper's distance, else ``path_length@<distance>``."""
    from ..metrics.extractors import standard

    return STANDARD_COLUMN if standard(distance) else f"path_length@{distance.name}"


@torch.no_grad()
def sample(G: Generator, distance: nn.Module, seed: int, settings: Settings, class_idx: int | None = None,
           device: torch.device | str = "cpu") -> tuple[float, float, torch.Tensor]:
    """(path length, t, the images at t and t + epsilon ``[2, C, H, W]``) of ``seed`` (module docstring). ``G``'s
    constant noise maps are overwritten: pass a copy."""
    from ..metrics.generate import LabelSampler, batch_seed
    from ..metrics.ppl import draw_pairs, pair_distances

    labels = LabelSampler(None if not G.c_dim else np.array([class_idx]), G.c_dim)
    g = torch.Generator().manual_seed(batch_seed(0, seed))
    t, z0, z1, c = draw_pairs(G, 1, g, labels, settings.sampling)
    d, img = pair_distances(G, distance, t, z0, z1, c, torch.device(device), settings.space, settings.epsilon,
                            settings.crop)
    return float(d[0]), float(t[0, 0]), img


def measure(G: Generator, distance: nn.Module, seeds: list[int], settings: Settings, class_idx: int | None = None,
            device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(path lengths float64, t) of every seed, in the order given."""
    G = copy.deepcopy(G).eval().to(device)
    distance = distance.to(device).eval()
    rows = [sample(G, distance, s, settings, class_idx, device)[:2] for s in seeds]
    return np.array([r[0] for r in rows], dtype=np.float64), np.array([r[1] for r in rows], dtype=np.float64)


def summarize(d: np.ndarray) -> dict:
    """The 1 %-99 % trim of the metric (bounds, in-trim mask, trimmed mean) and each sample's decile by rank
    (1 = the lowest tenth; ties in order of appearance)."""
    from ..metrics.ppl import trim_bounds, trimmed_mean

    t = torch.from_numpy(np.asarray(d, dtype=np.float64))
    lo, hi = trim_bounds(t)
    rank = np.empty(len(d), dtype=np.int64)
    rank[np.argsort(d, kind="stable")] = np.arange(len(d))
    return dict(lo=lo, hi=hi, in_trim=(d >= lo) & (d <= hi), mean=trimmed_mean(t), decile=rank * 10 // len(d) + 1,
                rank=rank)


def write_csv(seeds: list[int], t: np.ndarray, d: np.ndarray, summary: dict, name: str, path: Path) -> Path:
    with atomic_open(path, "w") as f:
        f.write(f"seed,t,{name},decile,in_trim\n")
        for i, s in enumerate(seeds):
            f.write(f"{s},{float(t[i])!r},{float(d[i])!r},{int(summary['decile'][i])},"
                    f"{int(summary['in_trim'][i])}\n")
    return path


def histogram(d: np.ndarray, summary: dict, title: str, label: str, path: Path) -> Path:
    """The samples' histogram; the trimmed-away tails shaded, the trim bounds and the trimmed mean marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    ax.hist(d, bins=int(np.clip(len(d) // 4, 10, 50)), color="tab:blue", alpha=0.8)
    lo, hi = summary["lo"], summary["hi"]
    ax.axvspan(min(d.min(), lo), lo, color="gray", alpha=0.25, label="trimmed (below 1 %, above 99 %)")
    ax.axvspan(hi, max(d.max(), hi), color="gray", alpha=0.25)
    ax.axvline(lo, color="k", ls="--", lw=1, label=f"1 % = {lo:.4g}")
    ax.axvline(hi, color="k", ls=":", lw=1, label=f"99 % = {hi:.4g}")
    ax.axvline(summary["mean"], color="tab:red", lw=1.5, label=f"trimmed mean = {summary['mean']:.4g}")
    ax.set_xlabel(label)
    ax.set_ylabel("samples")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=100)
    return path


def picks(summary: dict, decile: int, k: int) -> list[int]:
    """Indices of up to ``k`` samples of ``decile``, evenly spaced by rank (its extremes included), ascending."""
    members = sorted(np.flatnonzero(summary["decile"] == decile), key=lambda i: summary["rank"][i])
    if len(members) <= k:
        return members
    return [members[j] for j in np.linspace(0, len(members) - 1, k).round().astype(int)]


def gallery(items: list[tuple[int, float, torch.Tensor]], title: str, label: str, path: Path) -> Path:
    """Per sample (seed, path length, images [2, C, H, W]) a column: the image at t, at t + epsilon, and their
    per-pixel |difference| (mean over channels, scaled to its own maximum)."""
    from matplotlib.figure import Figure

    from ..utils.images import to_uint8

    fig = Figure(figsize=(max(6.0, 1.5 * len(items) + 0.8), 5.4))
    axes = fig.subplots(3, len(items), squeeze=False)
    for j, (seed, value, img) in enumerate(items):
        pair = to_uint8(img)
        diff = (img[1] - img[0]).abs().float().mean(0).cpu().numpy()
        for i, shown in enumerate([pair[0], pair[1]]):
            axes[i, j].imshow(shown[..., 0] if shown.shape[-1] == 1 else shown[..., :3], cmap="gray")
        axes[2, j].imshow(diff / max(float(diff.max()), 1e-30), cmap="inferno", vmin=0, vmax=1)
        axes[0, j].set_title(f"seed {seed}\n{value:.4g}", fontsize=7)
    for i, name in enumerate(["t", "t + eps", "|difference|"]):
        axes[i, 0].set_ylabel(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title}\ncolumn titles: seed, {label}; |difference| scaled to its own maximum", fontsize=8)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=100)
    return path


def run(G, opts: dict, args: argparse.Namespace, out: Path) -> list[Path]:
    """The measurement; the files it wrote. One seed at a time (each pair has noise maps of its own)."""
    settings, seeds, device = settings_of(args), opts["seeds"], opts["device"]
    distance = args.ppl_distance
    d, t = measure(G, distance, seeds, settings, opts["class_idx"], device)
    summary = summarize(d)
    name = column(distance)
    label = ("PPL (LPIPS-VGG16)" if name == STANDARD_COLUMN
             else f"path length@{distance.name} (a stand-in distance, not PPL)")
    where = (f"{settings.space.upper()}, sampling {settings.sampling}, eps {settings.epsilon:g}, "
             f"{'crop' if settings.crop else 'no crop'}")
    paths = [write_csv(seeds, t, d, summary, name, out / "ppl.csv"),
             histogram(d, summary, f"{label}\n{len(seeds)} samples, {where}", name, out / "ppl_hist.png")]
    k = int(args.gallery)
    copy_G = copy.deepcopy(G).eval().to(device)
    distance = distance.to(device).eval()
    for decile, file, which in ((1, "ppl_low.png", "lowest"), (10, "ppl_high.png", "highest")):
        items = [(seeds[i], float(d[i]), sample(copy_G, distance, seeds[i], settings, opts["class_idx"], device)[2])
                 for i in picks(summary, decile, k)]
        paths.append(gallery(items, f"the {which} decile of {len(seeds)} samples\n{label}\n{where}", name, out / file))
    kept = int(summary["in_trim"].sum())
    metric = settings.metric_name(len(seeds)) + ("" if name == STANDARD_COLUMN else f"@{distance.name}")
    same = seeds == list(range(len(seeds))) and settings.epsilon == 1e-4
    print(f"{label}: trimmed mean {summary['mean']:.6g} over {kept} of {len(seeds)} samples in "
          f"[{summary['lo']:.6g}, {summary['hi']:.6g}]" + (f" (the metric {metric} at batch size 1, seed 0)" if same
                                                            else ""))
    return paths
