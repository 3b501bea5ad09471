"""The training loop's random draws (latents, style-mixing cutoffs, path-length directions, WGAN-GP's interpolation
weights).

Two modes:

- ``per_rank`` (official): every DDP rank draws its own minibatch from its own RNG stream (the global torch
  RNG, reseeded per rank). The result of a run depends on the number of devices.
- ``global``: every draw is made for the *global* batch from one generator seeded identically on all ranks,
  and rank ``r`` of ``W`` keeps rows ``r, r + W, ...`` (the data sampler's interleave). Up to float rounding,
  G and D then follow the same trajectory on 1 or W devices with the same global batch, provided the networks
  themselves are batch-split invariant (no synthesis noise, minibatch-std off or groups within a rank).
  Synthesis noise and conditional labels stay per rank in both modes.
"""

from __future__ import annotations

import torch

DRAW_MODES = ("per_rank", "global")


class Draws:
    """Random draws for one rank of ``world_size``; see the module docstring for the two modes."""

    def __init__(self, mode: str = "per_rank") -> None:
        if mode not in DRAW_MODES:
            raise ValueError(f"draws must be one of {DRAW_MODES}, got {mode!r}")
        self.mode = mode
        self.rank, self.world_size = 0, 1
        self.device = torch.device("cpu")
        self.generator: torch.Generator | None = None

    @property
    def shared(self) -> bool:
        return self.mode == "global"

    def start(self, device: torch.device, rank: int, world_size: int, state: torch.Tensor | None = None) -> None:
        """Bind to a device and rank. In ``global`` mode seed the shared generator from the torch RNG's initial
        seed (the run's seed: the same on every rank and for any device count), or restore ``state``."""
        self.device, self.rank, self.world_size = torch.device(device), rank, world_size
        if not self.shared:
            return
        self.generator = torch.Generator(device=self.device)
        if state is not None:
            self.generator.set_state(state)
        else:
            self.generator.manual_seed(torch.initial_seed() ^ 0x5EED_D4A5)

    def state(self) -> torch.Tensor | None:
        return None if self.generator is None else self.generator.get_state()

    def normal(self, shape: list[int] | tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """N(0, I) of this rank's ``shape`` (first dim: this rank's batch)."""
        return self._per_sample(torch.randn, shape, dtype)

    def uniform(self, shape: list[int] | tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """U[0, 1) of this rank's ``shape``, drawn like :meth:`normal`."""
        return self._per_sample(torch.rand, shape, dtype)

    def _per_sample(self, draw, shape: list[int] | tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """``draw`` (torch.randn / torch.rand) for this rank's rows: its own stream, or the global batch's rows
        ``rank, rank + W, ...`` from the shared generator."""
        if not self.shared:
            return draw(list(shape), dtype=dtype, device=self.device)
        W = self.world_size
        full = draw([shape[0] * W, *shape[1:]], dtype=dtype, device=self.device, generator=self.generator)
        return full[self.rank :: W]

    def randint(self, low: int, high: int) -> torch.Tensor:
        """One integer in ``[low, high)`` (an int64 scalar on the device: nothing is read back to the host), the
        same on every rank in ``global`` mode."""
        return torch.empty([], dtype=torch.int64, device=self.device).random_(low, high, generator=self.generator)

    def rand(self) -> torch.Tensor:
        """One uniform [0, 1) value (a scalar on the device), the same on every rank in ``global`` mode. Always
        drawn in float32 (as the official code does), so that a float64 run (whose default dtype is float64) draws
        the same stream."""
        return torch.rand([], dtype=torch.float32, device=self.device, generator=self.generator)
