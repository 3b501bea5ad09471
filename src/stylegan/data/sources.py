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


def subset_indices(total: int, count: int, seed: int = 0) -> np.ndarray:
    """The images ``data.max_images`` keeps: a random ``count`` of ``total``, in dataset order, drawn as the
    official ``--subset`` (``max_size``) draws them from the run's seed. A class-sorted dataset keeps every class."""
    return np.sort(np.random.RandomState(int(seed) % (1 << 31)).permutation(int(total))[: int(count)])


class ImageStore:
    """A validated dataset: ``load(i)`` gives uint8 ``[C, R, R]``; ``labels`` are ints or None. ``num_classes``
    (the label dimension) counts the classes of the whole dataset, also in a subset (as the official dataset)."""

    def __init__(
        self, names: list[str], labels: np.ndarray | None, resolution: int, channels: int, description: str,
        num_classes: int | None = None,
    ) -> None:
        self.names = list(names)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.resolution = int(resolution)
        self.channels = int(channels)
        self.description = description
        if num_classes is None:
            num_classes = int(self.labels.max()) + 1 if self.labels is not None and self.labels.size else 0
        self.num_classes = int(num_classes)

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> np.ndarray:
        """Image ``index`` as uint8 ``[C, R, R]``."""
        raise NotImplementedError

    def subset(self, indices: np.ndarray) -> ImageStore:
        """The images at ``indices`` (sorted; for ``max_images``), keeping ``num_classes``."""
        raise NotImplementedError

    def _picked(self, indices: np.ndarray) -> tuple[list[str], np.ndarray | None]:
        return [self.names[i] for i in indices], None if self.labels is None else self.labels[indices]


class ArrayStore(ImageStore):
    """Images held in an (optionally memory-mapped) uint8 array ``[N, C, R, R]``; with ``index``, image ``i`` is
    ``images[index[i]]`` (a subset that leaves a memory map unread)."""

    def __init__(
        self, images: np.ndarray, names: list[str], labels: np.ndarray | None, description: str,
        num_classes: int | None = None, index: np.ndarray | None = None,
    ) -> None:
        super().__init__(names, labels, images.shape[-1], images.shape[1], description, num_classes)
        self.images, self.index = images, index

    def load(self, index: int) -> np.ndarray:
        row = index if self.index is None else int(self.index[index])
        return np.array(self.images[row], dtype=np.uint8, copy=True)

    def _rows(self, indices: np.ndarray) -> np.ndarray:
        """The array rows of this store's images ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        return indices if self.index is None else self.index[indices]

    def subset(self, indices: np.ndarray) -> ArrayStore:
        names, labels = self._picked(indices)
        return ArrayStore(self.images, names, labels, self.description, self.num_classes, self._rows(indices))


class PreparedStore(ArrayStore):
    """A ``stylegan-prepare`` output; the array is memory-mapped lazily in each process."""

    def __init__(
        self, root: Path, meta: dict[str, Any], images: np.ndarray, indices: np.ndarray | None = None
    ) -> None:
        labels = meta.get("labels")
        labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        num_classes = int(labels.max()) + 1 if labels is not None and labels.size else 0
        names = list(meta["names"])
        if indices is not None:
            names, labels = [names[i] for i in indices], None if labels is None else labels[indices]
        super().__init__(images, names, labels, str(root), num_classes, indices)
        self.root, self.meta = root, meta

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "images": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.images = np.load(self.root / PREPARED_IMAGES, mmap_mode="r")

    def subset(self, indices: np.ndarray) -> PreparedStore:
        return PreparedStore(self.root, self.meta, self.images, self._rows(indices))


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
        num_classes: int | None = None,
    ) -> None:
        super().__init__(names, labels, resolution, channels, str(container.path), num_classes)
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

    def subset(self, indices: np.ndarray) -> FileStore:
        return FileStore(self.container, *self._picked(indices), self.resolution, self.channels, self.num_classes)
