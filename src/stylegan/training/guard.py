"""The non-finite guard of every optimizer step, without a host-device sync under the default policy.

After a phase's backward one fused pass flags any non-finite loss or gradient (the kernel ``torch.amp.GradScaler``
uses); under DDP the flag is max-reduced, so every rank agrees. Policy ``skip``: the flag goes to fused Adam as its
``found_inf``, which leaves the weights and the Adam state (step count included) untouched on the device when set,
the mechanism GradScaler uses to drop fp16 steps; the skips are counted on the device, so the CPU never waits for the
accelerator. Policy ``stop`` reads the flag every step (one sync) to stop at once. An optimizer without that fused
path (or a run whose fp16 GradScaler owns ``found_inf``) falls back to reading the flag and skipping on the host.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist


def supports_found_inf(optimizer: torch.optim.Optimizer) -> bool:
    """Fused Adam(W)/SGD: ``step`` honours ``optimizer.found_inf`` (all groups fused, e.g. after a resume)."""
    # private, kept: the attribute torch.amp.GradScaler itself reads to hand a fused optimizer found_inf; torch has
    # no public way to ask whether an optimizer takes it
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False)) and all(
        g.get("fused") for g in optimizer.param_groups)


def nonfinite_flag(losses: Iterable[torch.Tensor], grads: Iterable[torch.Tensor], world_size: int = 1) -> torch.Tensor:
    """A float32 scalar on the tensors' device: 1 if any loss or gradient holds a NaN or an infinity, else 0
    (max over all ranks when ``world_size`` > 1). Reads each tensor once; leaves the values unchanged."""
    grads = list(grads)
    losses = list(losses)
    device = (grads or losses)[0].device
    found = torch.zeros([], dtype=torch.float32, device=device)  # the dtype fused optimizers take
    one = torch.ones([], dtype=torch.float32, device=device)
    groups: dict[torch.dtype, list[torch.Tensor]] = {}
    for g in grads:
        groups.setdefault(g.dtype, []).append(g)
    if losses:
        dtype = grads[0].dtype if grads else torch.float32
        groups.setdefault(dtype, []).append(torch.stack([v.detach().reshape([]) for v in losses]).to(dtype))
    # private, kept: GradScaler's one-pass kernel over a tensor list, no host sync; the public alternatives
    # (isfinite per tensor, a norm) read every tensor again or sync. It multiplies by 1 in place: values unchanged
    for tensors in groups.values():
        torch._amp_foreach_non_finite_check_and_unscale_(tensors, found, one)
    if world_size > 1:
        dist.all_reduce(found, op=dist.ReduceOp.MAX)
    return found


def guarded_step(optimizer, found: torch.Tensor, on_device: bool = True) -> bool | None:
    """Step ``optimizer`` (a LightningOptimizer or a torch one) unless ``found`` is set. On the device when the
    optimizer supports it and ``on_device``: returns None (nothing was read). Otherwise reads ``found`` and returns
    whether it stepped."""
    inner = getattr(optimizer, "optimizer", optimizer)
    if on_device and supports_found_inf(inner):
        inner.found_inf = found
        try:
            optimizer.step()
        finally:
            del inner.found_inf
        return None
    if found.item():
        return False
    optimizer.step()
    return True
