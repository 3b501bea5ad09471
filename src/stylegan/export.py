"""The file people share: G_ema as safetensors plus its constructor kwargs, rebuilt with torch + safetensors only
(no Lightning, no Hydra, no pickle).

``export_safetensors(G, "g.safetensors")`` writes the tensors with the kwargs as JSON in the file's metadata, and
the same JSON next to it (``g.json``, for people). ``load_safetensors("g.safetensors")`` returns the Generator.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .networks import Generator

FORMAT = "stylegan-lab/generator"
VERSION = "1"


class ExportError(ValueError):
    """A file that is not a generator exported by this project; reported as one line."""


def export_safetensors(G: Generator, path: str | os.PathLike) -> Path:
    """Write ``G``'s state_dict and kwargs (atomically: a temp file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = json.dumps(G.init_kwargs, sort_keys=True)
    state = {k: v.detach().contiguous().cpu() for k, v in G.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(state, str(tmp), metadata={"format": FORMAT, "version": VERSION, "G_kwargs": kwargs})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    path.with_suffix(".json").write_text(json.dumps(G.init_kwargs, indent=2, sort_keys=True) + "\n")
    return path


def load_safetensors(path: str | os.PathLike, device: str = "cpu") -> Generator:
    """The exported generator, in eval mode without gradients."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise ExportError(f"{path} is not a safetensors file ({str(e).splitlines()[0][:200]})") from None
    if meta.get("format") != FORMAT or "G_kwargs" not in meta:
        raise ExportError(f"{path} is a safetensors file but not a generator exported by `stylegan export`")
    G = Generator(**json.loads(meta["G_kwargs"]))
    state = load_file(str(path), device=device)
    missing, unexpected = G.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ExportError(f"{path}: tensors do not match its G_kwargs (missing {missing[:3]}, unexpected "
                          f"{unexpected[:3]})")
    return G.to(device).eval().requires_grad_(False)
