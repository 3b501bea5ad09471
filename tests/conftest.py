"""Shared fixtures: the official StyleGAN2 reference dump (weights, inputs, outputs, gradients)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylegan.utils.resolvers import register

register()  # ${sg.*} resolvers of conf/, for tests that compose the configs

OFFICIAL_FIXTURE = Path(__file__).parent / "fixtures" / "official_g-skip_d-resnet_r32_small.pt"


@pytest.fixture
def one_thread():
    """Tiny networks: one intra-op thread is faster than several, much faster on a shared, busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ref() -> dict:
    """The official dump; treat as read-only (tests that modify it deep-copy first)."""
    return torch.load(OFFICIAL_FIXTURE, map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def grid(tmp_path_factory) -> Path:
    """A real 2x2 sweep (G orig/skip x D orig/resnet) of tiny runs with a test metric, logged to CSV and W&B offline;
    shared by the sweep, report and notebook tests."""
    from sweeping import METRIC, QUICK, sweep

    root = tmp_path_factory.mktemp("grid") / "sweep"
    sweep(root, *QUICK, *METRIC, "logger=[csv,wandb]", "model/generator=orig,skip", "model/discriminator=orig,resnet")
    return root
