"""Shared fixtures: the official StyleGAN2 reference dump (weights, inputs, outputs, gradients)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylegan.utils.resolvers import register

register()  # ${sg.*} resolvers of conf/, for tests that compose the configs

OFFICIAL_FIXTURE = Path(__file__).parent / "fixtures" / "official_g-skip_d-resnet_r32_small.pt"


@pytest.fixture(scope="session")
def ref() -> dict:
    """The official dump; treat as read-only (tests that modify it deep-copy first)."""
    return torch.load(OFFICIAL_FIXTURE, map_location="cpu", weights_only=True)
