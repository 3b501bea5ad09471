"""The regularizers' precision rule: R1 and path length are computed in at least float32 (bf16 runs promote,
float64 runs stay float64)."""

from __future__ import annotations

import torch


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or in its own dtype if that is wider (float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))
