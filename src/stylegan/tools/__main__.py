"""``stylegan`` (or ``python -m stylegan.tools``): tools for a trained generator.

    stylegan generate --model MODEL --seeds 0-99,120 --outdir out [--trunc 0.7] [--class 3] [--grid]
    stylegan export --model MODEL g.safetensors

MODEL: a stylegan-train checkpoint (its G_ema), official-format weights (``{'G', 'G_kwargs'}``) or a file written by
``stylegan export``. Bad input stops before any work with one line ``stylegan: error: ...`` and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..networks import Generator


def load_model(path: str) -> Generator:
    """G (eval, no grad) from any of the three model formats."""
    from ..evaluate import EvaluateError, load_generator
    from ..export import load_safetensors

    if str(path).endswith(".safetensors"):
        return load_safetensors(path)
    try:
        return load_generator(path)[0]
    except EvaluateError as e:
        raise EvaluateError(str(e).replace(f"ckpt={path}", f"--model {path}", 1)) from None


def _device(name: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def cmd_generate(args: argparse.Namespace) -> None:
    from .generate import check_options, class_labels, generate, parse_seeds, write_images

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


def cmd_export(args: argparse.Namespace) -> None:
    from ..export import export_safetensors

    path = export_safetensors(load_model(args.model), args.out)
    print(f"wrote {path} and {path.with_suffix('.json')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stylegan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="images for seeds (official seed convention)")
    gen.add_argument("--model", required=True, help="checkpoint, official-format weights or .safetensors")
    gen.add_argument("--seeds", required=True, help="seeds and inclusive ranges, e.g. 0-99,120")
    gen.add_argument("--outdir", required=True, help="folder for seedNNNN.png (or grid.png)")
    gen.add_argument("--trunc", type=float, default=1.0, help="truncation psi (1 = none; default 1)")
    gen.add_argument("--trunc-cutoff", type=int, default=None, help="truncate only the first N ws")
    gen.add_argument("--class", dest="class_idx", type=int, default=None, help="class of a conditional G")
    gen.add_argument("--noise-mode", default="const", help="const (default) | random | none")
    gen.add_argument("--grid", action="store_true", help="one grid.png instead of one file per seed")
    gen.add_argument("--batch-size", type=int, default=None, help="images per batch (default 8 CPU, 64 GPU)")
    gen.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda | cuda:N")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(run=cmd_generate)
    exp = sub.add_parser("export", help="G_ema to safetensors + JSON kwargs (load with stylegan.export)")
    exp.add_argument("--model", required=True, help="checkpoint or official-format weights")
    exp.add_argument("out", help="output .safetensors path")
    exp.set_defaults(run=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..cli import bad_input_line
    from ..evaluate import EvaluateError
    from ..export import ExportError
    from .generate import ToolError

    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except Exception as e:
        line = bad_input_line(e, (ToolError, EvaluateError, ExportError))
        if line is None:
            raise
        print(f"stylegan: error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
