"""Data layer: image sources, validation, the endless resumable sampler, DataModule, stylegan-prepare."""

from stylegan.data.datamodule import ImageDataModule
from stylegan.data.errors import DatasetError
from stylegan.data.sampler import InfiniteSampler

__all__ = ["DatasetError", "ImageDataModule", "InfiniteSampler"]
