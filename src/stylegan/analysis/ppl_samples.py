"""Per-image perceptual path length (StyleGAN2 Sec. 3, Figs. 3-4): ``stylegan analyze ppl``. (Being built.)"""

from __future__ import annotations

import argparse
from pathlib import Path


def options(parser: argparse.ArgumentParser) -> None:
    """This analysis's own command-line options."""


def check(G, path: Path, args: argparse.Namespace) -> None:
    """Every input of this analysis checked before any work (``ToolError``: one line, exit 2)."""
    from ..tools.generate import ToolError

    if args.analysis == "ppl":
        raise ToolError("stylegan analyze ppl is not built yet")


def run(G, opts: dict, args: argparse.Namespace, out: Path) -> list[Path]:
    """The measurement; the files it wrote."""
    raise NotImplementedError
