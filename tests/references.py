"""What several test files share, as a plain module (conftest.py is pytest's, not for importing): the official
StyleGAN2 reference dump's path and a one-thread context for tiny networks."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

OFFICIAL_FIXTURE = Path(__file__).parent / "fixtures" / "official_g-skip_d-resnet_r32_small.pt"


@contextlib.contextmanager
def single_thread():
    """Tiny networks: one intra-op thread is faster than several, much faster on a shared, busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
