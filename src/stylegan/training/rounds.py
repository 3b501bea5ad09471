"""Gradient accumulation in rounds (``model.batch_gpu``; the official ``--batch-gpu``).

As the official PyTorch loop (stylegan2-ada-pytorch / stylegan3 ``training_loop``): each phase splits its
per-device minibatch into rounds of ``batch_gpu`` images; every round runs the phase's loss, a mean over its own
images times the phase's gain (the lazy interval), and back-propagates it, so the rounds' gradients are *summed*;
the optimizer then steps once per phase. Minibatch-std groups, style mixing, path length (on ``batch_gpu //
pl_batch_shrink`` images) and the path-length running mean (updated after every round) work per round, as the
official ``accumulate_gradients`` is called per round. Latents are drawn for the phase's whole batch, then split.
``batch_gpu`` is a limit: a per-device batch at or below it is one round (stylegan2-ada-pytorch's loop; null: the
whole per-device batch in one round). Adam's step does not depend on the gradient's scale (up to its eps), so
K rounds train like one batch of K x batch_gpu apart from the per-round groups and means (NVlabs' TensorFlow
StyleGAN2 divides the sum by K instead). Under DDP only the last backward before each optimizer step all-reduces the
gradients (:func:`gradient_sync`), as the official ``ddp_sync`` on a phase's last round.
"""

from __future__ import annotations

import contextlib

import torch

from .config import ConfigError
from .progressive import stage_at, stage_batch_gpu


def check_batch_gpu(batch_gpu: int | None) -> int | None:
    if batch_gpu is not None and (isinstance(batch_gpu, bool) or not isinstance(batch_gpu, int) or batch_gpu < 1):
        raise ConfigError(f"model.batch_gpu={batch_gpu!r} must be a positive integer (images per round on one "
                          "device) or null (the whole per-device batch in one round)")
    return batch_gpu


def round_size(batch: int, batch_gpu: int | None, group: int | None = None, where: str | None = None,
               key: str = "model.batch_gpu") -> int:
    """Images per round for a per-device ``batch``: ``batch_gpu`` when it splits the batch into several rounds, else
    the whole batch. ConfigError when it does not divide the batch, or (``group``: D's minibatch-std group size, None
    when the layer is off or groups the whole batch) when a round does not fill whole groups (the official
    ``--batch-gpu cannot be smaller than --mbstd``; a non-multiple cannot be grouped). ``where``, ``key``: the
    batch's and the round size's config keys, for the message."""
    if batch_gpu is None or batch_gpu >= batch:
        return batch
    if batch % batch_gpu:
        where = where or f"data.batch_size={batch} (per device)"
        raise ConfigError(f"{key}={batch_gpu} does not divide {where} into rounds: use a divisor of it, or "
                          "model.batch_gpu=null (the whole batch in one round)")
    if group and batch_gpu % group:
        raise ConfigError(f"{key}={batch_gpu} is not a multiple of model.discriminator.mbstd_group_size="
                          f"{group}: the minibatch-std layer groups the images of each round; use a multiple of "
                          f"{group} (or a smaller mbstd_group_size)")
    return batch_gpu


def count_rounds(n: int, batch_gpu: int | None, D: torch.nn.Module, progressive=None, cur_nimg: int = 0) -> int:
    """The number of rounds of a phase on ``n`` images (this device's); under progressive growing (``progressive``:
    its config) with the round size of the resolution after ``cur_nimg`` images."""
    if progressive is not None:
        res = stage_at(cur_nimg, D.img_resolution, progressive).resolution
        batch_gpu = stage_batch_gpu(progressive, batch_gpu, res)
    return n // round_size(n, batch_gpu, mbstd_group(D))


def mbstd_group(D: torch.nn.Module) -> int | None:
    """D's minibatch-std group size, None when the layer is off or groups the whole batch."""
    kw = getattr(D, "init_kwargs", {})
    return kw.get("mbstd_group_size") if kw.get("mbstd_num_channels", 1) else None


def check_setup(batch_gpu: int | None, G: torch.nn.Module, D: torch.nn.Module, datamodule, progressive,
                world_size: int) -> None:
    """Before training: ``batch_gpu`` splits the per-device batch (``data.batch_size``) into whole rounds of whole
    minibatch-std groups; under progressive growing, at every resolution the growth passes, the round size of that
    resolution (``model.progressive.batch_gpu``) splits that resolution's per-device minibatch."""
    group = mbstd_group(D)
    batch = getattr(datamodule, "batch_size", None)
    if progressive is None:
        if isinstance(batch, int):
            round_size(batch, batch_gpu, group)
        return
    res = progressive.start_resolution
    while res <= G.img_resolution:
        size, limit = progressive.minibatch.get(res), stage_batch_gpu(progressive, batch_gpu, res)
        key = f"model.progressive.batch_gpu.{res}" if res in progressive.batch_gpu else "model.batch_gpu"
        if size is None and isinstance(batch, int):
            round_size(batch, limit, group, f"data.batch_size={batch} (per device, at {res}x{res})", key)
        elif size is not None and size % world_size == 0:  # else refused by progressive.schedule_minibatch
            where = f"model.progressive.minibatch {res}: {size} ({size // world_size} per device)"
            round_size(size // world_size, limit, group, where, key)
        res *= 2


class RoundLosses:
    """The detached losses of one optimizer step's rounds, by phase name: the NaN guard's inputs and the logs."""

    def __init__(self) -> None:
        self.values: dict[str, list[torch.Tensor]] = {}

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for name, loss in losses.items():
            self.values.setdefault(name, []).append(loss.detach())

    def flat(self) -> list[torch.Tensor]:
        return [v for vs in self.values.values() for v in vs]

    def mean(self, name: str) -> torch.Tensor:
        """Mean over the rounds (each a mean over its images): the minibatch's loss for the logs."""
        return torch.stack(self.values[name]).mean()

    def summary(self) -> dict[str, float]:
        return {k: float(self.mean(k)) for k in self.values}


def split(k: int, *tensors: torch.Tensor):
    """The rounds of equal-sized ``tensors`` (k chunks of the first dimension each), zipped."""
    return zip(*(t.chunk(k) for t in tensors), strict=True)


def gradient_sync(trainer, sync: bool):
    """The context of one round's backward: under DDP, a round that does not end an optimizer step keeps its
    gradients on its device (Lightning's ``block_backward_sync``, DDP's ``no_sync``) and the step's last backward
    all-reduces their sum, once per step, as the official loop's ``misc.ddp_sync(module, sync=...)`` on the last
    round of a phase. Averaging the sum once equals summing the rounds' averages."""
    block = getattr(getattr(trainer, "strategy", None), "block_backward_sync", None)
    return contextlib.nullcontext() if sync or block is None else block()
