"""``stylegan`` (or ``python -m stylegan.tools``): tools for a trained generator.

    stylegan generate --model MODEL --seeds 0-99,120 --outdir out [--trunc 0.7] [--class 3] [--grid]
    stylegan mix --model MODEL --rows 85,100,75 --cols 55,821,1789 --styles coarse --out mix.png
    stylegan video --model MODEL --seeds 0-7 --grid 2x2 [--space z|w] [--frames 60] --out walk.mp4
    stylegan project --model MODEL --target photo.png --outdir proj [--steps 1000] [--w-plus] [--save-video]
    stylegan export --model MODEL g.safetensors
    stylegan analyze droplets|contributions|ppl|attribution --model MODEL|RUN_DIR --out DIR [--seeds 0-7]
                                                     (StyleGAN2 Figs. 1, 8, 3-4, Sec. 5)

The official scripts' commands work as printed in their READMEs with ``python`` replaced by ``stylegan``
(``stylegan gen_images.py --outdir=out --trunc=1 --seeds=2 --network=ffhq.pkl``): the subcommands answer to
generate.py / gen_images.py, style_mixing.py, gen_video.py and projector.py (with or without ``.py``), and take
their spellings: ``--network``, ``--outdir`` for the mixing figure (``grid.png`` and ``{row}-{col}.png``),
``--output`` and ``--w-frames`` for videos, ``--num-steps`` and ``--save-video=True|False`` for projections,
``--projected_w``. Their defaults are this tool's (see each option's help).

MODEL: a stylegan-train checkpoint (its G_ema), official-format weights (``{'G', 'G_kwargs'}``), an NVlabs StyleGAN2
network pickle (``.pkl``, read without running its code) or a file written by ``stylegan export``. Bad input stops
before any work with one line ``stylegan: error: ...`` and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from ..networks import Generator
from ..utils.images import save_image
from .generate import ToolError, check_outdir


def load_model(path: str) -> Generator:
    """G (eval, no grad) from any of the three model formats."""
    from ..export import load_safetensors
    from ..model_files import load_generator

    if str(path).endswith(".safetensors"):
        return load_safetensors(path)
    return load_generator(path, "--model ")[0]


def _device(name: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def cmd_generate(args: argparse.Namespace) -> None:
    from .generate import check_options, class_labels, generate, parse_seeds, write_images

    if (args.seeds is None) == (args.projected_w is None):
        raise ToolError("pass --seeds or --projected-w (one of them)")
    if args.projected_w is not None:
        return generate_projected(args)
    seeds = parse_seeds(args.seeds)
    check_options(args.trunc, args.noise_mode)
    G = load_model(args.model)
    class_labels(G, args.class_idx, 1)  # the class check, before any work
    device = _device(args.device)
    batch = args.batch_size or (64 if device.type == "cuda" else 8)
    images = generate(G, seeds, args.trunc, args.trunc_cutoff, args.class_idx, args.noise_mode, batch, device,
                      progress=not args.quiet)
    paths = write_images(images, Path(args.outdir), args.grid)
    print(f"wrote {len(paths)} file(s) to {args.outdir}")


def generate_projected(args: argparse.Namespace) -> None:
    """``--projected-w FILE``: the ws saved by ``stylegan project`` (``w`` [N, num_ws, w_dim]), as projNN.png."""
    from ..utils.images import to_uint8

    try:
        ws = torch.from_numpy(np.load(args.projected_w, allow_pickle=False)["w"]).float()
    except (OSError, ValueError, KeyError) as e:
        raise ToolError(f"--projected-w {args.projected_w}: not a .npz with a 'w' array ({e})") from None
    check_outdir(Path(args.outdir))
    G = load_model(args.model)
    if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
        raise ToolError(f"--projected-w {args.projected_w}: w has shape {tuple(ws.shape)}, this generator needs "
                        f"[N, {G.num_ws}, {G.w_dim}]")
    outdir = Path(args.outdir)
    with torch.no_grad():
        images = to_uint8(G.synthesis(ws, noise_mode=args.noise_mode))
    paths = [save_image(img, outdir / f"proj{i:02d}.png") for i, img in enumerate(images)]
    print(f"wrote {len(paths)} file(s) to {outdir}")


def cmd_mix(args: argparse.Namespace) -> None:
    from .generate import check_options, class_labels, parse_seeds
    from .mixing import figure, mixing_images, official_files, parse_styles

    rows, cols = parse_seeds(args.rows, "--rows"), parse_seeds(args.cols, "--cols")
    check_options(args.trunc, args.noise_mode)
    if (args.out is None) == (args.outdir is None):
        raise ToolError("pass --out FILE.png (the figure) or --outdir DIR (the official style_mixing.py files: "
                        "grid.png and {row}-{col}.png), one of them")
    if args.out is not None:
        check_output_file(args.out, (".png",))
    else:
        check_outdir(Path(args.outdir))
    G = load_model(args.model)
    class_labels(G, args.class_idx, 1)
    styles = parse_styles(args.styles, G)
    images = mixing_images(G, rows, cols, styles, args.trunc, args.class_idx, args.noise_mode, args.batch_size or 8,
                           _device(args.device))
    what = f"{len(rows)} rows x {len(cols)} columns, ws {styles} from the columns"
    if args.out is not None:
        print(f"wrote {save_image(figure(*images), args.out)}: {what}")
        return
    outdir = Path(args.outdir)
    files = official_files(rows, cols, *images)
    for name, img in files.items():
        save_image(img, outdir / name)
    save_image(figure(*images), outdir / "grid.png")
    print(f"wrote {outdir / 'grid.png'} and {len(files)} images ({{row}}-{{col}}.png) to {outdir}: {what}")


def cmd_video(args: argparse.Namespace) -> None:
    from .generate import check_options, class_labels, parse_seeds
    from .video import check_walk, keyframe_seeds, parse_grid, walk_frames, write_video

    seeds, grid = parse_seeds(args.seeds), parse_grid(args.grid)
    seeds = keyframe_seeds(seeds, grid, args.num_keyframes, args.shuffle_seed)
    check_options(args.trunc, args.noise_mode)
    check_walk(seeds, grid, args.space, args.frames, args.out)
    G = load_model(args.model)
    class_labels(G, args.class_idx, 1)
    frames = walk_frames(G, seeds, grid, args.space, args.frames, not args.no_loop, args.trunc, args.class_idx,
                         args.noise_mode, args.batch_size or 16, _device(args.device))
    if not args.quiet:
        from tqdm.auto import tqdm

        per = len(seeds) // (grid[0] * grid[1])
        frames = tqdm(frames, total=args.frames * (per if not args.no_loop else per - 1) + args.no_loop, unit="frame")
    path, n = write_video(frames, args.out, args.fps)
    print(f"wrote {path}: {n} frames at {args.fps} fps")


def cmd_project(args: argparse.Namespace) -> None:
    from .generate import class_labels
    from .projection import DISTANCES, ProjectionConfig, build_distance, load_target, project, render, write_projection

    outdir = Path(args.outdir)
    check_outdir(outdir)
    if args.steps < 1:
        raise ToolError(f"--steps {args.steps}: must be >= 1")
    if args.distance not in DISTANCES:
        raise ToolError(f"--distance {args.distance!r}: use one of {', '.join(DISTANCES)}")
    if args.save_video:
        from .video import mp4_writer_module

        mp4_writer_module(outdir / "proj.mp4")
    G = load_model(args.model)
    class_labels(G, args.class_idx, 1)
    target = load_target(os.path.expanduser(args.target), G)
    distance = build_distance(args.distance)
    from tqdm.auto import tqdm

    frames: list = []
    every = max(1, args.steps // 100)
    with tqdm(total=args.steps, unit="step", disable=args.quiet) as bar:
        def progress(step: int, dist: float, state: dict) -> None:
            bar.update(1)
            bar.set_postfix(dist=f"{dist:.4f}")
            if args.save_video and (step % every == 0 or step == args.steps - 1):
                frames.append(render(G, state))  # that step's w and noise maps: the last frame is proj.png

        cfg = ProjectionConfig(num_steps=args.steps, w_plus=args.w_plus)
        result = project(G, target, distance, cfg, args.seed, args.class_idx, _device(args.device), progress)
    paths = write_projection(outdir, target, G, result)
    if frames:
        from .video import write_video

        left = target.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        paths.append(write_video((np.concatenate([left, f], axis=1) for f in frames), outdir / "proj.mp4")[0])
    print(f"wrote {', '.join(p.name for p in paths)} to {outdir} (distance: {distance.name})")


def check_output_file(path: str, suffixes: tuple[str, ...]) -> None:
    if Path(path).suffix.lower() not in suffixes or Path(path).is_dir():
        raise ToolError(f"--out {path}: pass a file name ending in {' or '.join(suffixes)}")


def cmd_export(args: argparse.Namespace) -> None:
    from ..export import export_safetensors

    path = export_safetensors(load_model(args.model), args.out)
    print(f"wrote {path} and {path.with_suffix('.json')}")


def cmd_analyze(args: argparse.Namespace) -> None:
    from ..analysis.command import analyze

    analyze(args, load_model, _device(args.device))


# the official scripts' names (stylegan2-ada-pytorch, stylegan3), so that their commands work with `stylegan`
ALIASES = {"generate": ["generate.py", "gen_images", "gen_images.py"], "mix": ["style_mixing", "style_mixing.py"],
           "video": ["gen_video", "gen_video.py"], "project": ["projector", "projector.py"]}
_TRUE, _FALSE = ("1", "true", "t", "yes", "y", "on"), ("0", "false", "f", "no", "n", "off")


def official_bool(text: str) -> bool:
    """A boolean as click reads one (the official ``--save-video=True``): true/false, yes/no, 1/0, on/off."""
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use True or False")


def _model(p: argparse.ArgumentParser, help: str = "checkpoint, official weights or .pkl, or .safetensors") -> None:
    p.add_argument("--model", "--network", dest="model", required=True, help=help + " (--network: the official "
                   "spelling; a local file, not a URL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stylegan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", aliases=ALIASES["generate"], help="images for seeds (official seed convention)")
    _model(gen)
    gen.add_argument("--seeds", help="seeds and inclusive ranges, e.g. 0-99,120")
    gen.add_argument("--projected-w", "--projected_w", dest="projected_w",
                     help="instead of seeds: a projected_w.npz written by 'stylegan project' (or projector.py)")
    gen.add_argument("--outdir", required=True, help="folder for seedNNNN.png (or grid.png)")
    gen.add_argument("--trunc-cutoff", type=int, default=None, help="truncate only the first N ws")
    gen.add_argument("--grid", action="store_true", help="one grid.png instead of one file per seed")
    mix = sub.add_parser("mix", aliases=ALIASES["mix"], help="style mixing figure (rows x columns, chosen ws from "
                         "the columns)")
    _model(mix)
    mix.add_argument("--rows", required=True, help="row seeds (destinations), e.g. 85,100,75")
    mix.add_argument("--cols", required=True, help="column seeds (style sources), e.g. 55,821,1789")
    mix.add_argument("--styles", default="0-6", help="ws taken from the columns: coarse|middle|fine and/or "
                     "index ranges (default 0-6, as the official script)")
    mix.add_argument("--out", help="output .png: the figure")
    mix.add_argument("--outdir", help="instead of --out, as the official style_mixing.py: grid.png (the figure), "
                     "{row}-{col}.png (each mixed image) and {seed}-{seed}.png (each source)")
    vid = sub.add_parser("video", aliases=ALIASES["video"], help="latent walk through seeds as GIF or MP4")
    _model(vid)
    vid.add_argument("--seeds", required=True, help="keyframe seeds, split into one walk per grid cell")
    vid.add_argument("--grid", default="1x1", help="COLSxROWS walks side by side (default 1x1)")
    vid.add_argument("--space", default="z", help="z (slerp, default) or w (lerp)")
    vid.add_argument("--frames", "--w-frames", dest="frames", type=int, default=60,
                     help="frames per transition (default 60; gen_video.py's --w-frames, whose default is 120 at "
                     "60 fps: the same 2 s per transition)")
    vid.add_argument("--fps", type=int, default=30, help="frames per second (default 30)")
    vid.add_argument("--no-loop", action="store_true", help="stop at the last seed instead of returning")
    vid.add_argument("--out", "--output", dest="out", required=True, help="output .gif or .mp4")
    vid.add_argument("--num-keyframes", type=int, default=None, help="seeds per walk, the --seeds repeated "
                     "cyclically to fill every cell (as gen_video.py; default: the seeds split evenly)")
    vid.add_argument("--shuffle-seed", type=int, default=None, help="shuffle the keyframe seeds with "
                     "RandomState(N) first (as gen_video.py)")
    prj = sub.add_parser("project", aliases=ALIASES["project"], help="project an image into W (or W+): StyleGAN2 "
                         "paper, Appendix D")
    _model(prj)
    prj.add_argument("--target", required=True, help="image to project (centre-cropped, resized to G)")
    prj.add_argument("--outdir", required=True, help="folder for proj.png, side_by_side.png, projected_w.npz/.pt")
    prj.add_argument("--steps", "--num-steps", dest="steps", type=int, default=1000,
                     help="optimization steps (default 1000)")
    prj.add_argument("--w-plus", action="store_true", help="one w per layer (W+) instead of one w (W)")
    prj.add_argument("--distance", default="auto", help="auto (LPIPS if its weights load, else pixel) | lpips | "
                     "pixel")
    prj.add_argument("--seed", type=int, default=303, help="torch seed for the noise maps (default 303)")
    prj.add_argument("--save-video", nargs="?", const=True, default=False, type=official_bool, metavar="BOOL",
                     help="also proj.mp4 of the optimization (--save-video, or the official --save-video=True|False;"
                     " default: no video, while projector.py's default is True)")
    for p, run in ((gen, cmd_generate), (mix, cmd_mix), (vid, cmd_video), (prj, cmd_project)):
        if p is not prj:
            p.add_argument("--trunc", type=float, default=1.0, help="truncation psi (1 = none; default 1)")
            p.add_argument("--noise-mode", default="const", help="const (default) | random | none")
            p.add_argument("--batch-size", type=int, default=None, help="images per batch (default 8 CPU, 64 GPU "
                           "for generate)")
        p.add_argument("--class", dest="class_idx", type=int, default=None, help="class of a conditional G")
        p.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda | cuda:N")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(run=run)
    exp = sub.add_parser("export", help="G_ema to safetensors + JSON kwargs (load with stylegan.export)")
    _model(exp, "checkpoint or official-format weights")
    exp.add_argument("out", help="output .safetensors path")
    exp.set_defaults(run=cmd_export)
    from ..analysis.command import ANALYSES, add_arguments

    ana = sub.add_parser("analyze", help="the StyleGAN2 paper's analyses: droplets (Fig. 1: spike ratio and "
                         "co-location per layer) | contributions (Fig. 8: each resolution's share, skip G) | ppl "
                         "(Figs. 3-4: per-image path lengths) | attribution (Sec. 5: projection distances)")
    ana.add_argument("analysis", choices=ANALYSES)
    _model(ana, "checkpoint, official weights or .pkl, or .safetensors; for contributions also a run folder (its "
           "checkpoints/snapshot-*.ckpt, against kimg)")
    ana.add_argument("--out", required=True, help="folder for <analysis>.csv and <analysis>.png")
    ana.add_argument("--seeds", help="seeds and inclusive ranges (default 0-7 for droplets, 0-63 for contributions)")
    ana.add_argument("--noise-mode", default="const", help="const (default) | random | none")
    ana.add_argument("--class", dest="class_idx", type=int, default=None, help="class of a conditional G")
    ana.add_argument("--batch-size", type=int, default=None, help="images per batch (default 8 CPU, 64 GPU)")
    ana.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda | cuda:N")
    add_arguments(ana)
    ana.set_defaults(run=cmd_analyze)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..cli import bad_input_line, freeze_heap
    from ..export import ExportError
    from ..model_files import ModelFileError
    args = build_parser().parse_args(argv)
    freeze_heap()
    show = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *_, **__: f"stylegan: warning: {message}\n"
    try:
        args.run(args)
    except Exception as e:
        line = bad_input_line(e, (ToolError, ModelFileError, ExportError))
        if line is None:
            raise
        print(f"stylegan: error: {line}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = show
    return 0


if __name__ == "__main__":
    sys.exit(main())
