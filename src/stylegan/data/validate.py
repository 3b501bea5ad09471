"""Checks that turn bad input into one clear :class:`DatasetError` (or a skip list) before training starts.

Raw folders and zips are read as they are, so every file must already be an 8-bit grayscale (L) or RGB
PNG/JPEG/WebP, square, at the configured resolution. 16-bit, CMYK, palette and alpha images are *bad* here
(the fix is ``stylegan-prepare``, which converts them); so are unreadable or truncated files, non-square,
too-small or odd-sized images, images of the minority channel count, and (with labels) files missing from
``dataset.json``. Policy ``error`` raises on the first one; ``skip`` leaves them out with a warning.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..utils.checks import check_resolution as shared_check_resolution
from .errors import DatasetError
from .sources import Container, FileStore, decode_image, read_label_map, subset_indices

log = logging.getLogger(__name__)

POLICIES = ("error", "skip")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
ALPHA_MODES = ("RGBA", "LA", "La", "RGBa", "PA")
MAX_LISTED = 5


@dataclass(frozen=True)
class BadImage:
    """A file that cannot be used: its name, why, and what fixes it."""

    name: str
    reason: str
    fix: str


@dataclass(frozen=True)
class ImageInfo:
    """What decoding one file revealed: ``error`` is set when it could not be decoded."""

    mode: str = ""
    size: tuple[int, int] = (0, 0)
    sixteen_bit: bool = False
    error: str | None = None


def check_policy(policy: str, key: str = "data.on_bad_image") -> None:
    """Reject an unknown bad-image policy."""
    if policy not in POLICIES:
        raise DatasetError(f"{key}={policy!r} is not a policy; use one of {', '.join(POLICIES)}")


def refuse_stale_labels(container: Container, stale: Sequence[str], in_what: str, fix: str) -> None:
    """dataset.json entries naming files the source lacks, refused under the error policy."""
    if stale:
        raise DatasetError(f"{container.where('dataset.json')} lists {stale[0]!r}, which is not an image in "
                           f"{in_what} ({len(stale)} such entries); {fix}")


def check_resolution(resolution: int, key: str = "data.resolution") -> None:
    """Resolutions must be powers of two, at least 4 (the networks' own check, as a DatasetError)."""
    shared_check_resolution(resolution, key, DatasetError, hint=" (stylegan-prepare resizes images to it)")


def _png_bit_depth(data: bytes) -> int:
    return data[24] if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24 else 8


def inspect_bytes(data: bytes) -> ImageInfo:
    """Fully decode one file's bytes and record mode, size and bit depth, or why it failed."""
    try:
        img = decode_image(data)
    except UnidentifiedImageError:
        return ImageInfo(error="cannot be decoded (corrupt, or not a PNG/JPEG/WebP image)")
    except Image.DecompressionBombError:
        return ImageInfo(error="is too large to decode safely (decompression bomb check)")
    except Exception as e:  # Pillow raises many types for damaged files; all mean "unusable"
        if "truncat" in str(e).lower() or isinstance(e, EOFError):
            return ImageInfo(error="is truncated (the file is incomplete)")
        return ImageInfo(error=f"cannot be decoded ({type(e).__name__}: {e})")
    return ImageInfo(mode=img.mode, size=img.size, sixteen_bit=_png_bit_depth(data) == 16)


def inspect_files(container: Container, names: Sequence[str], progress: bool = False) -> list[ImageInfo]:
    """Decode every file (threads, since Pillow releases the GIL while decoding)."""

    def one(name: str) -> ImageInfo:
        try:
            data = container.read(name)
        except OSError as e:
            return ImageInfo(error=f"cannot be read ({e.strerror or e})")
        return inspect_bytes(data)

    workers = min(8, (os.cpu_count() or 1) + 2)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(one, names)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(names), desc="Checking images", unit="img", leave=False)
        return list(results)


def mode_problem(info: ImageInfo) -> str | None:
    """Why a decoded image cannot be read raw, or None for 8-bit L/RGB."""
    if info.mode in SIXTEEN_BIT_MODES:
        return f"is a 16-bit image (mode {info.mode})"
    if info.sixteen_bit:
        return f"is a 16-bit image ({info.mode}, 16 bits per channel)"
    if info.mode == "CMYK":
        return "is a CMYK image"
    if info.mode in ("P", "PA"):
        return "is a palette (indexed-color) image"
    if info.mode in ALPHA_MODES:
        return f"has an alpha channel (mode {info.mode})"
    if info.mode not in ("L", "RGB"):
        return f"has unsupported mode {info.mode}"
    return None


def _size_problem(size: tuple[int, int], expected: int) -> str | None:
    w, h = size
    if (w, h) == (expected, expected):
        return None
    if w != h:
        return f"is {w}x{h}, not square"
    if w < expected:
        return f"is {w}x{h}, too small for {expected}x{expected}"
    return f"is {w}x{h} but the dataset is {expected}x{expected} (mixed sizes)"


def find_bad_raw(
    names: Sequence[str], infos: Sequence[ImageInfo], resolution: int, channels: int, convert_hint: str
) -> tuple[list[BadImage], int]:
    """Per-file problems of raw images, plus the data's channel count.

    Raises when the readable images as a whole disagree with the configuration (another resolution or
    channel count, or not square), since that is a config choice rather than a few bad files.
    """
    drop = "or delete the file"
    bad: list[BadImage] = []
    usable: dict[str, ImageInfo] = {}
    for name, info in zip(names, infos, strict=True):
        if info.error is not None:
            bad.append(BadImage(name, info.error, f"re-export {drop}"))
        elif (reason := mode_problem(info)) is not None:
            bad.append(BadImage(name, reason, f"convert the dataset with `{convert_hint}`"))
        else:
            usable[name] = info
    if not usable:
        return bad, channels
    (w, h), _ = Counter(i.size for i in usable.values()).most_common(1)[0]
    if w != h:
        raise DatasetError(
            f"the images are {w}x{h}, not square; square them with `{convert_hint}` (or add --transform pad)"
        )
    if w != resolution:
        raise DatasetError(
            f"the images are {w}x{w} but data.resolution={resolution}; set data.resolution={w} if it is a "
            f"power of two, or resize them with `{convert_hint}`"
        )
    data_mode, _ = Counter(i.mode for i in usable.values()).most_common(1)[0]
    data_channels = 3 if data_mode == "RGB" else 1
    if data_channels != channels:
        raise DatasetError(
            f"the images have {data_channels} channel(s) ({data_mode}) but data.channels={channels}; set "
            f"data.channels={data_channels}, or convert them with `{convert_hint}`"
        )
    for name, info in usable.items():
        if (reason := _size_problem(info.size, resolution)) is not None:
            upscale = " --allow-upscale" if "too small" in reason else ""
            bad.append(BadImage(name, reason, f"convert the dataset with `{convert_hint}{upscale}`"))
        elif info.mode != data_mode:
            kind = "grayscale" if info.mode == "L" else "RGB"
            bad.append(
                BadImage(
                    name,
                    f"is {kind} while the rest are {data_mode} (mixed channels)",
                    f"use `{convert_hint}`",
                )
            )
    order = {n: i for i, n in enumerate(names)}
    bad.sort(key=lambda b: order[b.name])
    return bad, data_channels


def find_bad_labels(
    label_map: dict[str, int], names: Sequence[str], all_names: Sequence[str], where: str
) -> tuple[list[BadImage], list[str]]:
    """Files without a label, and ``dataset.json`` entries naming files that do not exist."""
    fix = f"add it to {where} {{'labels': [[file, class], ...]}}"
    missing = [BadImage(n, "has no label in dataset.json", fix) for n in names if n not in label_map]
    present = set(all_names)
    stale = [n for n in label_map if n not in present]
    return missing, stale


def apply_policy(
    bad: Sequence[BadImage],
    policy: str,
    where: Callable[[str], str],
    total: int,
    skip_hint: str = "set data.on_bad_image=skip",
) -> set[str]:
    """Raise on the first bad file (policy ``error``) or warn and return the names to leave out (``skip``)."""
    if not bad:
        return set()
    if policy == "error":
        first = bad[0]
        more = f" ({len(bad) - 1} more bad file(s))" if len(bad) > 1 else ""
        raise DatasetError(
            f"bad image {where(first.name)}: {first.reason}; {first.fix}, or {skip_hint} to leave bad "
            f"files out{more}"
        )
    if len(bad) >= total:
        first = bad[0]
        raise DatasetError(
            f"no usable images: all {total} were bad, e.g. {where(first.name)} {first.reason}; {first.fix}"
        )
    listed = "; ".join(f"{where(b.name)} ({b.reason})" for b in bad[:MAX_LISTED])
    more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    log.warning("Skipping %d of %d images: %s%s", len(bad), total, listed, more)
    return {b.name for b in bad}


def build_raw_store(
    container: Container,
    resolution: int,
    channels: int,
    use_labels: bool,
    policy: str,
    max_images: int | None = None,
    seed: int = 0,
) -> FileStore:
    """List, decode and check a folder or zip; returns the usable images (see the module docstring). With
    ``max_images``, only the random subset it keeps (``subset_indices``) is decoded."""
    all_names = container.list_images()
    if not all_names:
        raise DatasetError(
            f"no PNG/JPEG/WebP images found in {container.path}; check data.source (files are searched "
            "recursively, hidden files are ignored)"
        )
    names = all_names
    if max_images is not None and len(all_names) > max_images:
        names = [all_names[i] for i in subset_indices(len(all_names), max_images, seed)]
    hint = f"stylegan-prepare {container.path} DEST --resolution {resolution} --channels {channels}"
    infos = inspect_files(container, names, progress=len(names) > 2000)
    bad, data_channels = find_bad_raw(names, infos, resolution, channels, hint)
    label_map = read_label_map(container) if use_labels else None
    if use_labels and label_map is None:
        raise DatasetError(
            f"data.use_labels=true but {container.path} has no class labels (dataset.json missing or "
            '{"labels": null}); set data.use_labels=false or add labels'
        )
    if label_map is not None:
        missing, stale = find_bad_labels(label_map, names, all_names, container.where("dataset.json"))
        if policy == "error":
            refuse_stale_labels(container, stale, "the dataset",
                                "fix the labels, or set data.on_bad_image=skip to ignore them")
        if stale:
            log.warning("Ignoring %d dataset.json entries without an image, e.g. %s", len(stale), stale[0])
        known = {b.name for b in bad}
        bad += [b for b in missing if b.name not in known]
        order = {n: i for i, n in enumerate(names)}
        bad.sort(key=lambda b: order[b.name])
    skipped = apply_policy(bad, policy, container.where, len(names))
    kept = [n for n in names if n not in skipped]
    labels = None if label_map is None else np.array([label_map[n] for n in kept], dtype=np.int64)
    # the label dimension counts the whole dataset's classes, also under max_images (as the official dataset)
    num_classes = None
    if label_map is not None:
        num_classes = max((label_map[n] for n in all_names if n in label_map), default=-1) + 1
    return FileStore(container, kept, labels, resolution, data_channels, num_classes)
