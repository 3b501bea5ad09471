"""Transfer learning: start from trained networks (``model.init_from``) and freeze parts of them while fine-tuning.

- ``init_from``: G, D and G_ema take every parameter and buffer of the source whose name and shape match, the rest
  keep their fresh initialization (as stylegan2-ada-pytorch's ``--resume``, ``copy_params_and_buffers`` by name;
  Karras et al. 2020 "ADA", transfer learning), so e.g. a 64x64 run can start from 32x32 weights. The source is our
  Lightning checkpoint (its G, D and G_ema) or official-format weights (``load_official_file``: ``.pt`` or a network
  ``.pkl``; G_ema = G = the file's generator). One log line lists what was not copied. A file of which no weight
  (a parameter of 2+ dimensions) fits is refused. Fresh runs only: a resumed run (``ckpt_path``) keeps its
  checkpoint's weights.
- ``freeze_d=K``: Freeze-D (Mo et al. 2020, "Freeze the Discriminator"): D's K highest-resolution blocks (b{R},
  b{R/2}, ...: those nearest the image) keep their weights. They are left out of D's optimizer and never require
  grad, so nothing moves them (no Adam step or momentum); gradients still flow through them to the image (R1) and
  to G. ADA's ``--freezed`` counts layers instead (fromrgb, conv0, conv1, skip: a resnet block is 3-4 of them).
- ``freeze_g_mapping``: G's mapping network is frozen likewise. G_ema's mapping equals it (the EMA of a constant
  stays put); from our checkpoint both take the source's G_ema mapping. ``w_avg`` (a statistic) is still tracked.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig
from torch import nn

from ..networks import Discriminator, Generator
from ..networks.kwargs import differences
from ..official import load_official_file
from .config import ConfigError

log = logging.getLogger(__name__)
NETS = ("G", "D", "G_ema")
REQUIRED = "required"  # experiment=finetune's placeholder for model.init_from
SHAPELESS = {"conv_clamp", "fused_modconv_default", "output_activation", "mbstd_group_size"}  # no tensor shapes
KINDS = "a stylegan-train checkpoint (outputs/<run>/checkpoints/last.ckpt) or official-format weights"


# ----------------------------------------------------------------- freezing
def frozen_parameters(G: Generator, D: Discriminator, freeze_d: int, freeze_g_mapping: bool) -> list[nn.Parameter]:
    """The parameters that do not train (now ``requires_grad=False``): D's ``freeze_d`` highest-resolution blocks
    and, with ``freeze_g_mapping``, G's mapping network. D's 4x4 epilogue and label mapping always train."""
    blocks = [f"b{r}" for r in D.block_resolutions]
    if isinstance(freeze_d, bool) or not isinstance(freeze_d, int) or not 0 <= freeze_d <= len(blocks):
        raise ValueError(f"model.freeze_d={freeze_d} must be an integer in [0, {len(blocks)}]: the number of D's "
                         f"highest-resolution blocks to freeze ({', '.join(blocks)}; the 4x4 epilogue always trains)")
    modules = [getattr(D, b) for b in blocks[:freeze_d]] + ([G.mapping] if freeze_g_mapping else [])
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(False)
    return params


def trainable(net: nn.Module, frozen: list[nn.Parameter]) -> list[nn.Parameter]:
    """``net``'s parameters for its optimizer: all but the frozen ones."""
    skip = {id(p) for p in frozen}
    return [p for p in net.parameters() if id(p) not in skip]


# ----------------------------------------------------------------- initialization
def check_required(model_cfg: DictConfig) -> None:
    """``experiment=finetune`` sets ``model.init_from: required`` (OmegaConf's ``???`` would not override the
    default null in a merge): refuse in one line when no path replaced it."""
    if model_cfg.get("init_from") == REQUIRED:
        raise ConfigError(f"experiment=finetune needs model.init_from=PATH: {KINDS} to start from")


def _read(path: str, error: type[Exception]) -> tuple[dict[str, dict | None], dict[str, dict]]:
    """(state_dicts of G, D, G_ema (None: not in the file), their kwargs) of our checkpoint or official weights."""
    if not Path(path).is_file():
        raise error(f"model.init_from={path} does not exist: pass {KINDS}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        blob = None  # not a plain torch file: perhaps official weights in another format
    if isinstance(blob, dict) and "state_dict" in blob and "stylegan" in blob:  # as model_files.load_checkpoint
        state, meta = blob["state_dict"], blob["stylegan"]
        states = {n: {k[len(n) + 1:]: v for k, v in state.items() if k.startswith(n + ".")} for n in NETS}
        return states, {"G": meta.get("G_kwargs") or {}, "D": meta.get("D_kwargs") or {}}
    try:
        G, D = load_official_file(path)
    except Exception as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise error(f"model.init_from={path} is not a model: neither a stylegan-train checkpoint nor official-format "
                    f"weights ({reason})") from None
    if G is None and D is None:
        raise error(f"model.init_from={path} holds neither G nor D weights")
    g = None if G is None else G.state_dict()
    states = {"G": g, "D": None if D is None else D.state_dict(), "G_ema": g}
    return states, {"G": {} if G is None else G.init_kwargs, "D": {} if D is None else D.init_kwargs}


@torch.no_grad()
def _copy_matching(net: nn.Module, source: dict[str, torch.Tensor] | None) -> tuple[list[str], list[str]]:
    """Copy every tensor of ``source`` whose name and shape match into ``net``; (copied names, the others)."""
    copied, left = [], []
    for name, tensor in net.state_dict(keep_vars=True).items():
        src = (source or {}).get(name)
        if src is not None and src.shape == tensor.shape:
            tensor.copy_(src)
            copied.append(name)
        else:
            left.append(name)
    return copied, left


def _block(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2] if parts[0] == "synthesis" and len(parts) > 2 else parts[:1])


def _grouped(names: list[str], left: list[str]) -> str:
    """``left`` by block: a whole block by name ('synthesis.b64'), one partly copied with its layers
    ('b32[fromrgb]')."""
    if len(left) == len(names):
        return "all"
    blocks: dict[str, list[str]] = {}
    for n in names:
        blocks.setdefault(_block(n), []).append(n)
    missing, out = set(left), []
    for block, members in blocks.items():
        gone = [n for n in members if n in missing]
        if gone and len(gone) == len(members):
            out.append(block)
        elif gone:
            out.append(f"{block}[{','.join(dict.fromkeys(n[len(block) + 1:].split('.')[0] for n in gone))}]")
    return ", ".join(out)


def _differences(kwargs: dict[str, dict], model: nn.Module) -> str:
    """The network arguments (those that shape tensors) in which the file and this run differ."""
    diffs = [d for key, name, net in (("model.generator", "G", model.G), ("model.discriminator", "D", model.D))
             for d in differences(kwargs[name], net.init_kwargs, key, "file", only_shared=True, ignore=SHAPELESS)]
    return f": {'; '.join(diffs[:4])}{' ...' if len(diffs) > 4 else ''}" if diffs else ""


def initialize(model: nn.Module, resumed: bool) -> None:
    """Copy ``model.init_from``'s matching tensors into G, D and G_ema before a fresh run (see the module docstring);
    a bad file or one of which no weight fits raises ConfigError (one line, exit code 2)."""

    path = model.init_from
    if not path:
        return
    say = log.info if rank_zero_only.rank == 0 else log.debug  # DDP ranks > 0 run this too: one console line
    if resumed:
        say("model.init_from=%s not used: the run resumes from ckpt_path, whose weights win", path)
        return
    states, kwargs = _read(str(path), ConfigError)
    if model.freeze_g_mapping and states["G_ema"] is not None:  # G and G_ema share the frozen mapping
        states["G"] = {**states["G"], **{k: v for k, v in states["G_ema"].items() if k.startswith("mapping.")}}
    counts, groups, weights = [], [], 0
    for name in NETS:
        net = getattr(model, name)
        copied, left = _copy_matching(net, states[name])
        params = dict(net.named_parameters())
        weights += sum(1 for n in copied if n in params and params[n].ndim >= 2)
        counts.append(f"{name} {len(copied)}/{len(copied) + len(left)}")
        groups.append((name, _grouped(copied + left, left) if left else ""))
    if not weights:
        raise ConfigError(f"model.init_from={path}: none of its weights fits these networks (no weight tensor has the "
                          f"same name and shape){_differences(kwargs, model)}")
    if groups[2][1] == groups[0][1]:
        groups[2] = ("G_ema", "as G" if groups[0][1] else "")
    kept = "; ".join(f"{name} {text}" for name, text in groups if text)
    say("model.init_from=%s: copied %s tensors (same name and shape); %s", path, ", ".join(counts),
             f"fresh initialization kept for {kept}" if kept else "nothing left out")
