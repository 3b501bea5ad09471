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
StyleGAN2 divides the sum by K instead).
"""

from __future__ import annotations

import torch

from .config import ConfigError


def check_batch_gpu(batch_gpu: int | None) -> int | None:
    if batch_gpu is not None and (isinstance(batch_gpu, bool) or not isinstance(batch_gpu, int) or batch_gpu < 1):
        raise ConfigError(f"model.batch_gpu={batch_gpu!r} must be a positive integer (images per round on one "
                          "device) or null (the whole per-device batch in one round)")
    return batch_gpu


def round_size(batch: int, batch_gpu: int | None, group: int | None = None, where: str = "data.batch_size") -> int:
    """Images per round for a per-device ``batch``: ``batch_gpu`` when it splits the batch into several rounds, else
    the whole batch. ConfigError when it does not divide the batch, or (``group``: D's minibatch-std group size, None
    when the layer is off or groups the whole batch) when a round does not fill whole groups (the official
    ``--batch-gpu cannot be smaller than --mbstd``; a non-multiple cannot be grouped)."""
    if batch_gpu is None or batch_gpu >= batch:
        return batch
    if batch % batch_gpu:
        raise ConfigError(f"model.batch_gpu={batch_gpu} does not divide {where}={batch} (per device) into rounds: "
                          "use a divisor of it, or model.batch_gpu=null (the whole batch in one round)")
    if group and batch_gpu % group:
        raise ConfigError(f"model.batch_gpu={batch_gpu} is not a multiple of model.discriminator.mbstd_group_size="
                          f"{group}: the minibatch-std layer groups the images of each round; use a multiple of "
                          f"{group} (or a smaller mbstd_group_size)")
    return batch_gpu


def mbstd_group(D: torch.nn.Module) -> int | None:
    """D's minibatch-std group size, None when the layer is off or groups the whole batch."""
    kw = getattr(D, "init_kwargs", {})
    return kw.get("mbstd_group_size") if kw.get("mbstd_num_channels", 1) else None


def check_setup(batch_gpu: int | None, G: torch.nn.Module, D: torch.nn.Module, datamodule, progressive,
                world_size: int) -> None:
    """Before training: ``batch_gpu`` splits the per-device batch (``data.batch_size``) and every per-device size of
    ``model.progressive.minibatch`` that the growth passes into whole rounds of whole minibatch-std groups."""
    group = mbstd_group(D)
    batch = getattr(datamodule, "batch_size", None)
    if isinstance(batch, int):
        round_size(batch, batch_gpu, group)
    for res, size in sorted(getattr(progressive, "minibatch", {}).items()):
        # sizes that do not split over the devices are refused by progressive.schedule_minibatch
        if progressive.start_resolution <= res <= G.img_resolution and size % world_size == 0:
            round_size(size // world_size, batch_gpu, group, f"model.progressive.minibatch {res}: {size} / "
                       f"{world_size} devices")


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
