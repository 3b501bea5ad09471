"""What the training benchmarks share (train_throughput.py, official_loop.py, fid_speed.py): device sync, peak
memory, the lazy-regularization cycle. Its own module, so neither benchmark imports the other for it."""

from __future__ import annotations

import math
import resource

import torch
from omegaconf import DictConfig


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_memory(device: str) -> int:
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def lazy_cycle(cfg: DictConfig) -> int:
    loss = cfg.loss
    return math.lcm(int(loss.g_reg_interval), int(loss.d_reg_interval)) if loss.get("lazy", True) else 1
