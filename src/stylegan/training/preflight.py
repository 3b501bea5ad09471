"""Checks before any training step that need the built networks, in config terms: a run that cannot work stops
with one line naming the key or file and the fix, before anything is written or overwritten. The checks of the
config alone run earlier, before anything is instantiated: :mod:`stylegan.preflight`."""

from __future__ import annotations

from pathlib import Path

import torch

from ..networks.kwargs import differences
from ..preflight import check as check_config
from .config import ConfigError
from .module import StyleGAN2Module

__all__ = ["ConfigError", "check_config", "check_resume", "check_run"]


def check_run(total_kimg: float, batch_size: int | None, model: StyleGAN2Module) -> None:
    if not float(total_kimg) > 0:
        raise ConfigError(f"total_kimg={total_kimg} must be > 0 (thousands of real images to train for)")
    group = model.D.init_kwargs.get("mbstd_group_size")
    if batch_size and group and model.D.init_kwargs.get("mbstd_num_channels") and batch_size % min(group, batch_size):
        raise ConfigError(f"data.batch_size={batch_size} (per device) is not a multiple of "
                          f"model.discriminator.mbstd_group_size={group}: the minibatch-std layer splits the batch "
                          "into groups of that size; change either")


def check_resume(ckpt_path: str | None, model: StyleGAN2Module, ckpt: dict | None = None) -> None:
    """The checkpoint exists, is a whole stylegan-train checkpoint, and was trained with these networks. ``ckpt``:
    the file as the caller already loaded it (``torch.load``, weights only), else it is loaded here."""
    if ckpt_path is None:
        return
    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path} does not exist: pass a checkpoint written by stylegan-train "
                          "(outputs/<run>/checkpoints/last.ckpt), or ckpt_path=auto / null")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True) if ckpt is None else ckpt
    except Exception as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise ConfigError(f"ckpt_path={ckpt_path} is not a readable checkpoint (truncated, or not a torch file: "
                          f"{reason})") from None
    if not isinstance(ckpt, dict) or "stylegan" not in ckpt or "state_dict" not in ckpt:
        raise ConfigError(f"ckpt_path={ckpt_path} is not a stylegan-train checkpoint (no 'stylegan' / 'state_dict'); "
                          "official-format weights are evaluated with stylegan-evaluate, not resumed")
    state = ckpt["stylegan"]
    diffs = (differences(state.get("G_kwargs", {}), model.G.init_kwargs, "model.generator", "checkpoint")
             + differences(state.get("D_kwargs", {}), model.D.init_kwargs, "model.discriminator", "checkpoint"))
    if diffs:
        raise ConfigError(f"ckpt_path={ckpt_path} was trained with other networks: {'; '.join(diffs[:4])}"
                          f"{' ...' if len(diffs) > 4 else ''}. Resume with the run's own config (its "
                          ".hydra/overrides.yaml) or start a new run")
    _check_frozen(ckpt, model, ckpt_path)


def _check_frozen(ckpt: dict, model: StyleGAN2Module, ckpt_path: str) -> None:
    """The optimizers hold the trainable parameters only (Freeze-D, frozen mapping): another model.freeze_d or
    model.freeze_g_mapping than the checkpoint's would fail inside Lightning's optimizer loading."""
    from .transfer import trainable

    saved = [sum(len(g["params"]) for g in o.get("param_groups", [])) for o in ckpt.get("optimizer_states", [])]
    here = [len(trainable(net, model.frozen_params)) for net in (model.G, model.D)]
    if len(saved) == 2 and saved != here:
        raise ConfigError(f"ckpt_path={ckpt_path} trained {saved[0]} G and {saved[1]} D parameter tensors, this config "
                          f"{here[0]} and {here[1]}: model.freeze_d / model.freeze_g_mapping differ from the run's; "
                          "resume with the run's own values (its .hydra/overrides.yaml)")
