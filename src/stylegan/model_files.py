"""Every model file a user can hand over, one loader: our Lightning checkpoints (their ``G_ema``), official-format
weights (``{'G', 'G_kwargs'}``, :mod:`stylegan.official`), NVlabs network pickles, PyTorch or TensorFlow (read without
running their code, :mod:`stylegan.official_pickle`). Used by ``stylegan-evaluate`` (``ckpt=PATH``) and the ``stylegan``
tools (``--model PATH``); each error names the file as the caller's option does (``named``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from .networks import Generator
from .networks.progressive import set_lod
from .official import load_official, load_official_file
from .official_pickle import OfficialWeightsError, is_network_pickle


class ModelFileError(ValueError):
    """A model file that does not exist or does not load; one line naming it."""


def submodule_state(state_dict: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The entries of the LightningModule's ``state_dict`` under submodule ``name`` (e.g. "G_ema"), prefix removed."""
    prefix = name + "."
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def snapshot_kimg(path: str | os.PathLike) -> float | None:
    """The kimg in the name the official training loop gives its pickles, ``network-snapshot-<kimg:06d>.pkl``."""
    m = re.fullmatch(r"network-snapshot-(\d+)\.pkl", Path(path).name)
    return float(m.group(1)) if m else None


def load_generator(path: str | os.PathLike, option: str = "ckpt=") -> tuple[Generator, float | None]:
    """(G, kimg) from our Lightning checkpoint (G_ema), an official-format file (G; kimg unknown) or an NVlabs network
    pickle (G_ema; kimg from a ``network-snapshot-NNNNNN.pkl`` name, else unknown), told apart by content.
    ``option``: how the caller's user named the file (``ckpt=``, ``--model ``), the start of every error line."""
    G, kimg, _ = load_checkpoint(path, option)
    return G, kimg


def load_checkpoint(path: str | os.PathLike, option: str = "ckpt=") -> tuple[Generator, float | None,
                                                                          dict[str, Any] | None]:
    """(G, kimg, data settings) as :func:`load_generator`; the data settings of the training run are those our
    checkpoints store (None for other files and for checkpoints written before they were stored)."""
    named = f"{option}{path}"
    if not Path(path).is_file():
        raise ModelFileError(f"{named} does not exist")
    if is_network_pickle(path):
        try:
            G, _ = load_official_file(path)  # its messages start with the path
        except OfficialWeightsError as e:
            msg = str(e)
            raise ModelFileError(f"{option}{msg}" if msg.startswith(str(path)) else f"{named}: {msg}") from None
        return G.eval().requires_grad_(False), snapshot_kimg(path), None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelFileError(f"{named} is not a loadable torch file ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(blob, dict):
        raise ModelFileError(f"{named} holds a {type(blob).__name__}, not a checkpoint dict")
    if "state_dict" in blob and "stylegan" in blob:
        state = submodule_state(blob["state_dict"], "G_ema")
        G = Generator(**blob["stylegan"]["G_kwargs"])
        missing, unexpected = G.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ModelFileError(f"{named}: G_ema weights do not match G_kwargs (missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]})")
        set_lod(blob["stylegan"].get("lod", 0.0), G)  # mid-growth: the resolution it trained at, upsampled
        data = blob["stylegan"].get("data")
        return G.eval().requires_grad_(False), blob["stylegan"].get("cur_nimg", 0) / 1000, data
    if "G" in blob:
        try:
            G, _ = load_official(blob)
        except OfficialWeightsError as e:
            raise ModelFileError(f"{named}: {e}") from None
        if G is None:
            raise ModelFileError(f"{named}: its 'G' entry is empty")
        return G.eval().requires_grad_(False), None, None
    raise ModelFileError(f"{named} is neither a stylegan-train checkpoint (state_dict + stylegan) nor an "
                         "official-format weights file (G + G_kwargs)")
