"""Where the Hydra configs (the repository's top-level ``conf/``) are, for ``python -m`` and console scripts alike.

Hydra resolves a relative ``config_path`` against the *calling module*, which breaks when the entry point is a
console script (``stylegan-train``) rather than ``python -m stylegan.train``; so the entry points pass an absolute
directory: ``$STYLEGAN_CONF`` if set, else ``conf/`` of the checkout this package lives in (editable install), else
``./conf`` in the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> str:
    env = os.environ.get("STYLEGAN_CONF")
    candidates = [Path(env)] if env else [Path(__file__).resolve().parents[3] / "conf", Path.cwd() / "conf"]
    for path in candidates:
        if (path / "train.yaml").is_file():
            return str(path.resolve())
    return str(candidates[0])  # missing: Hydra then reports that directory when an entry point runs
