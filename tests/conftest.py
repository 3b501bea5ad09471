"""Shared fixtures: the official StyleGAN2 reference dump (weights, inputs, outputs, gradients), the sweep grid.

`make test` runs the suite on pytest-xdist workers (``-n 2 --dist loadgroup``): each worker computes with one
intra-op thread (two workers fill the two CI cores), the `slow` tests start first so that the demo's minutes overlap
the rest, and the tests sharing the session's sweep grid run on one worker (``xdist_group("grid")``).
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest
import torch

from references import OFFICIAL_FIXTURE, single_thread
from stylegan.utils.resolvers import register

register()  # ${sg.*} resolvers of conf/, for tests that compose the configs
if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread here and in the runs the tests start (2 workers, 2 cores)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    """The `slow` tests first (a stable sort keeps the rest in file order), so that no long test trails the suite:
    xdist's loadgroup hands out the largest group (the sweep grid's) first, then single tests in this order."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_collection_finish(session):
    """What collection imported (torch, Lightning, Hydra) leaves the cyclic GC's reach, as in the entry points
    (stylegan.cli.freeze_heap): the collections during the tests and at the worker's exit skip it."""
    gc.freeze()


@pytest.fixture
def one_thread():
    with single_thread():
        yield


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
