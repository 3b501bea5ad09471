"""The data config groups instantiate the DataModule with every constructor argument spelled out."""

from __future__ import annotations

import inspect
import os
import warnings
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from data_factory import image_folder
from stylegan.data import ImageDataModule

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"
PARAMS = set(inspect.signature(ImageDataModule).parameters)


@pytest.mark.parametrize("name", ["mnist", "folder", "lfw"])
def test_every_argument_is_explicit(name: str) -> None:
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg._target_ == "stylegan.data.ImageDataModule"
    assert set(cfg.keys()) - {"_target_"} == PARAMS


def test_mnist_yaml() -> None:
    cfg = OmegaConf.load(CONF / "mnist.yaml")
    cfg.batch_size = 8  # as a `data.batch_size=8` override would
    dm = instantiate(cfg)
    assert isinstance(dm, ImageDataModule) and dm.batch_size == 8
    dm.setup()
    assert (dm.num_images, dm.resolution, dm.channels, dm.c_dim) == (5000, 32, 1, 0)


def test_lfw_yaml() -> None:
    dm = instantiate(OmegaConf.load(CONF / "lfw.yaml"))
    assert isinstance(dm, ImageDataModule) and dm.source == "lfw" and dm.xflip


def test_folder_yaml(tmp_path: Path) -> None:
    cfg = OmegaConf.load(CONF / "folder.yaml")
    with pytest.raises(MissingMandatoryValue):
        instantiate(cfg)
    image_folder(tmp_path / "imgs", n=3, size=16)
    cfg.source, cfg.resolution = str(tmp_path / "imgs"), 16
    dm = instantiate(cfg)
    dm.setup()
    assert dm.num_images == 3 and dm.channels == 3 and 1 <= dm.num_workers <= 4


def test_folder_workers_fit_the_machine(tmp_path: Path) -> None:
    """``num_workers: ${sg.cpu_workers:4}``: 4, capped at the usable CPUs, so that torch's DataLoader does not warn
    about more workers than cores (it did on every run of a 2-core machine)."""
    cfg = OmegaConf.load(CONF / "folder.yaml")
    image_folder(tmp_path / "imgs", n=8, size=16)
    cfg.source, cfg.resolution, cfg.batch_size = str(tmp_path / "imgs"), 16, 4
    dm = instantiate(cfg)
    assert dm.num_workers == min(4, len(os.sched_getaffinity(0)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 16, 16)
    assert not [w for w in caught if "worker" in str(w.message)], [str(w.message) for w in caught]
