"""Data layer: image sources, validation, the endless resumable sampler, DataModule, stylegan-prepare.

Exports are loaded lazily so that ``stylegan-prepare`` starts without importing torch or Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import DatasetError

if TYPE_CHECKING:
    from .datamodule import ImageDataModule
    from .sampler import InfiniteSampler

_LAZY = {"ImageDataModule": "stylegan.data.datamodule", "InfiniteSampler": "stylegan.data.sampler"}

__all__ = ["DatasetError", "ImageDataModule", "InfiniteSampler"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
