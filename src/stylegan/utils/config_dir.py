"""Where the Hydra configs (the repository's top-level ``conf/``) are, for ``python -m`` and console scripts alike.

Hydra resolves a relative ``config_path`` against the *calling module*, which breaks when the entry point is a
console script (``stylegan-train``) rather than ``python -m stylegan.train``; so the entry points pass an absolute
directory: ``$STYLEGAN_CONF`` if set, else ``conf/`` of the checkout this package lives in (editable install), else
``./conf`` in the working directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def config_dir() -> str:
    env = os.environ.get("STYLEGAN_CONF")
    candidates = [Path(env)] if env else [Path(__file__).resolve().parents[3] / "conf", Path.cwd() / "conf"]
    for path in candidates:
        if (path / "train.yaml").is_file():
            return str(path.resolve())
    return str(candidates[0])  # missing: Hydra then reports that directory when an entry point runs


def refuse_file_output_dir(prog: str, argv: list[str]) -> None:
    """One line and exit 2 when ``hydra.run.dir`` / ``hydra.sweep.dir`` on the command line is, or lies under, an
    existing file: Hydra would otherwise stop in a FileExistsError traceback before any of our code runs."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key.lstrip("+~") not in ("hydra.run.dir", "hydra.sweep.dir") or not value or "${" in value:
            continue
        path = Path(value).expanduser()
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            where = "is a file" if blocker == path else f"lies under the file {blocker}"
            print(f"{prog}: error: {key}={value} {where}; give a directory (an existing one, or a new path)",
                  file=sys.stderr)
            sys.exit(2)
