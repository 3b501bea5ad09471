"""Readers for image folders, zip archives (NVlabs dataset_tool layout) and prepared datasets.

A *container* lists and reads raw image files. A *store* is a validated, indexable dataset of uint8 images
``[C, R, R]`` with optional integer labels; the data module only ever talks to stores.

Prepared format (written by ``stylegan-prepare``): a directory holding ``images.npy`` (uint8
``[N, C, R, R]``, memory-mapped on load) and ``meta.json`` (format tag, resolution, channels, names,
labels or null, c_dim, and how it was made).
"""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
LABELS_FILE = "dataset.json"
PREPARED_FORMAT = "stylegan-prepared"
PREPARED_VERSION = 1
PREPARED_IMAGES = "images.npy"
PREPARED_META = "meta.json"


def _is_image_name(name: str) -> bool:
    parts = name.split("/")
    if any(p.startswith(".") for p in parts) or parts[0] == "__MACOSX":
        return False
    return name.lower().endswith(IMAGE_EXTENSIONS)


class Container:
    """A folder or zip archive of image files, addressed by relative POSIX names."""

    kind = "container"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def list_images(self) -> list[str]:
        """Sorted relative names of all PNG/JPEG/WebP files (hidden files left out)."""
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        """The raw bytes of one file."""
        raise NotImplementedError

    def read_text(self, name: str) -> str | None:
        """A text member (e.g. ``dataset.json``) or None when absent."""
        raise NotImplementedError

    def where(self, name: str) -> str:
        """The file's location for messages."""
        return f"{self.path}/{name}"

    def spec(self) -> tuple[str, str]:
        """A picklable description from which :func:`container_from_spec` reopens this container."""
        return (self.kind, str(self.path))


class FolderContainer(Container):
    """Images anywhere below a directory."""

    kind = "folder"

    def list_images(self) -> list[str]:
        names = []
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.path).as_posix()
            for f in filenames:
                name = f if rel == "." else f"{rel}/{f}"
                if _is_image_name(name):
                    names.append(name)
        return sorted(names)

    def read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def read_text(self, name: str) -> str | None:
        p = self.path / name
        return p.read_text(encoding="utf-8") if p.is_file() else None


class ZipContainer(Container):
    """Images inside a zip archive; the handle is reopened in each process (safe with forked workers)
    and reads are serialized by a lock (safe with the validation threads)."""

    kind = "zip"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._zip: zipfile.ZipFile | None = None
        self._pid = -1
        self._lock = threading.Lock()
        try:
            self._file()
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetError(f"{self.path} is not a readable zip archive ({e}); re-create it") from None

    def _file(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._pid = os.getpid()
            self._lock = threading.Lock()
        return self._zip

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_zip": None, "_pid": -1, "_lock": None}

    def list_images(self) -> list[str]:
        return sorted(n for n in self._file().namelist() if not n.endswith("/") and _is_image_name(n))

    def read(self, name: str) -> bytes:
        zf = self._file()
        with self._lock:
            return zf.read(name)

    def read_text(self, name: str) -> str | None:
        try:
            return self.read(name).decode("utf-8")
        except KeyError:
            return None

    def where(self, name: str) -> str:
        return f"{self.path}:{name}"


def container_from_spec(spec: tuple[str, str]) -> Container:
    """Reopen a container from :meth:`Container.spec`."""
    kind, path = spec
    return ZipContainer(Path(path)) if kind == "zip" else FolderContainer(Path(path))


def read_label_map(container: Container) -> dict[str, int] | None:
    """Class labels from the container's ``dataset.json``: ``{name: label}``, or None if absent or null."""
    text = container.read_text(LABELS_FILE)
    if text is None:
        return None
    where = container.where(LABELS_FILE)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{where} is not valid JSON ({e}); fix or delete it") from None
    if not isinstance(obj, dict) or "labels" not in obj:
        raise DatasetError(
            f'{where} must be an object with a "labels" key, like {{"labels": [["a.png", 0]]}}'
        )
    entries = obj["labels"]
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise DatasetError(f'{where}: "labels" must be a list of [file, class] pairs or null')
    labels: dict[str, int] = {}
    for entry in entries:
        ok = isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[0], str)
        label = entry[1] if ok else None
        if not ok or isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise DatasetError(
                f"{where}: bad entry {json.dumps(entry)[:80]}; each entry must be [file, class] with an "
                "integer class >= 0 (vector labels are not supported)"
            )
        labels[entry[0].replace("\\", "/")] = label
    return labels


class ImageStore:
    """A validated dataset: ``load(i)`` gives uint8 ``[C, R, R]``; ``labels`` are ints or None."""

    def __init__(
        self, names: list[str], labels: np.ndarray | None, resolution: int, channels: int, description: str
    ) -> None:
        self.names = list(names)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.resolution = int(resolution)
        self.channels = int(channels)
        self.description = description

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> np.ndarray:
        """Image ``index`` as uint8 ``[C, R, R]``."""
        raise NotImplementedError

    def subset(self, count: int) -> ImageStore:
        """The first ``count`` images (for ``max_images``)."""
        raise NotImplementedError


class ArrayStore(ImageStore):
    """Images held in an (optionally memory-mapped) uint8 array ``[N, C, R, R]``."""

    def __init__(
        self, images: np.ndarray, names: list[str], labels: np.ndarray | None, description: str
    ) -> None:
        super().__init__(names, labels, images.shape[-1], images.shape[1], description)
        self.images = images

    def load(self, index: int) -> np.ndarray:
        return np.array(self.images[index], dtype=np.uint8, copy=True)

    def subset(self, count: int) -> ArrayStore:
        labels = None if self.labels is None else self.labels[:count]
        return ArrayStore(self.images[:count], self.names[:count], labels, self.description)


class PreparedStore(ArrayStore):
    """A ``stylegan-prepare`` output; the array is memory-mapped lazily in each process."""

    def __init__(
        self, root: Path, meta: dict[str, Any], images: np.ndarray, count: int | None = None
    ) -> None:
        count = images.shape[0] if count is None else count
        labels = meta.get("labels")
        labels = None if labels is None else np.asarray(labels[:count], dtype=np.int64)
        super().__init__(images[:count], list(meta["names"][:count]), labels, str(root))
        self.root, self.meta, self._count = root, meta, count

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "images": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.images = np.load(self.root / PREPARED_IMAGES, mmap_mode="r")[: self._count]

    def subset(self, count: int) -> PreparedStore:
        return PreparedStore(self.root, self.meta, self.images, min(count, self._count))


def is_prepared(path: Path) -> bool:
    """True if ``path`` is a prepared-dataset directory (or its images.npy / meta.json)."""
    root = path.parent if path.is_file() and path.name in (PREPARED_IMAGES, PREPARED_META) else path
    return root.is_dir() and (root / PREPARED_META).is_file() and (root / PREPARED_IMAGES).is_file()


def open_prepared(path: Path) -> PreparedStore:
    """Open and check a prepared dataset; damaged or foreign files raise :class:`DatasetError`."""
    root = path.parent if path.is_file() else path
    redo = "re-run stylegan-prepare to rebuild it"
    try:
        meta = json.loads((root / PREPARED_META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{root / PREPARED_META} cannot be read ({e}); {redo}") from None
    if not isinstance(meta, dict) or meta.get("format") != PREPARED_FORMAT:
        raise DatasetError(f"{root / PREPARED_META} is not a stylegan-prepare metadata file; {redo}")
    if meta.get("version") != PREPARED_VERSION:
        raise DatasetError(f"{root} has prepared-format version {meta.get('version')}, expected 1; {redo}")
    try:
        images = np.load(root / PREPARED_IMAGES, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise DatasetError(f"{root / PREPARED_IMAGES} is damaged or incomplete ({e}); {redo}") from None
    n, c, r = meta.get("num_images"), meta.get("channels"), meta.get("resolution")
    labels = meta.get("labels")
    if (
        images.dtype != np.uint8
        or images.shape != (n, c, r, r)
        or len(meta.get("names", [])) != n
        or (labels is not None and len(labels) != n)
    ):
        raise DatasetError(
            f"{root} is inconsistent: images.npy is {images.dtype}{list(images.shape)} but meta.json says "
            f"{n} images of {c}x{r}x{r}; {redo}"
        )
    return PreparedStore(root, meta, images)


def decode_image(data: bytes) -> Image.Image:
    """Open and fully decode image bytes (raises PIL/OS errors on corrupt or truncated data)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


class FileStore(ImageStore):
    """Raw image files already validated as square, ``resolution`` sized, L or RGB."""

    def __init__(
        self,
        container: Container,
        names: list[str],
        labels: np.ndarray | None,
        resolution: int,
        channels: int,
    ) -> None:
        super().__init__(names, labels, resolution, channels, str(container.path))
        self.container = container

    def load(self, index: int) -> np.ndarray:
        name = self.names[index]
        try:
            arr = np.asarray(decode_image(self.container.read(name)))
        except (OSError, ValueError, KeyError) as e:
            raise DatasetError(
                f"{self.container.where(name)} became unreadable during training ({e})"
            ) from None
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        if arr.shape != (self.channels, self.resolution, self.resolution):
            raise DatasetError(
                f"{self.container.where(name)} changed during training (now {list(arr.shape)})"
            )
        return np.ascontiguousarray(arr, dtype=np.uint8)

    def subset(self, count: int) -> FileStore:
        labels = None if self.labels is None else self.labels[:count]
        return FileStore(self.container, self.names[:count], labels, self.resolution, self.channels)
