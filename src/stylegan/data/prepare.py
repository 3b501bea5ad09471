"""``stylegan-prepare SRC DEST``: convert a folder or zip of images into the fast prepared format.

DEST becomes a directory with ``images.npy`` (uint8 ``[N, C, R, R]``) and ``meta.json``. Everything is
written into a hidden temporary directory next to DEST and moved into place with one ``os.replace`` at the
end, so an interrupted or failed run never leaves anything under DEST. See ``convert.py`` for the pixel rules.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stylegan import __version__

from .convert import FILTERS, TRANSFORMS, Converted, ConvertOptions, convert_bytes
from .errors import DatasetError
from .sources import (
    PREPARED_FORMAT,
    PREPARED_IMAGES,
    PREPARED_META,
    PREPARED_VERSION,
    Container,
    FolderContainer,
    ZipContainer,
    container_from_spec,
    is_prepared,
    read_label_map,
)
from .validate import (
    BadImage,
    apply_policy,
    check_policy,
    check_resolution,
    find_bad_labels,
    refuse_stale_labels,
)

SKIP_HINT = "pass --on-bad-image skip"


@dataclass
class PrepareSummary:
    """What a prepare run produced, converted and skipped."""

    dest: Path
    num_images: int
    resolution: int
    channels: int
    c_dim: int
    conversions: Counter = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def text(self) -> str:
        """Human-readable multi-line summary."""
        labels = f"{self.c_dim} classes" if self.c_dim else "no labels"
        lines = [
            f"Prepared {self.num_images} images ({self.resolution}x{self.resolution}, {self.channels} "
            f"channel(s), {labels}) into {self.dest}"
        ]
        if self.conversions:
            lines.append(
                "Converted: " + ", ".join(f"{n} {what}" for what, n in sorted(self.conversions.items()))
            )
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} bad image(s):")
            lines += [f"  {where}: {reason}" for where, reason in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"  ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


class _NpyWriter:
    """Appends ``[C, R, R]`` uint8 items to an ``.npy`` file whose length is fixed up on close."""

    def __init__(self, path: Path, capacity: int, item_shape: tuple[int, ...]) -> None:
        self.path, self.item_shape, self.count = path, item_shape, 0
        self.file = open(path, "wb")  # noqa: SIM115 - closed in finish()/abort()
        self.header_len = self._write_header(self.file, capacity)

    def _write_header(self, f: io.IOBase, n: int) -> int:
        d = {"descr": "|u1", "fortran_order": False, "shape": (n, *self.item_shape)}
        start = f.tell()
        np.lib.format.write_array_header_1_0(f, d)
        return f.tell() - start

    def append(self, pixels: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
        self.count += 1

    def finish(self) -> None:
        buf = io.BytesIO()
        if self._write_header(buf, self.count) == self.header_len:
            self.file.seek(0)
            self.file.write(buf.getvalue())
            self.file.truncate(self.header_len + self.count * int(np.prod(self.item_shape)))
            self.file.close()
            return
        self.file.close()  # header length changed: rewrite through a copy
        old = np.load(self.path, mmap_mode="r")[: self.count]
        tmp = self.path.with_suffix(".rewrite.npy")
        np.save(tmp, np.asarray(old))
        del old
        os.replace(tmp, self.path)

    def abort(self) -> None:
        self.file.close()


_WORKER_CONTAINERS: dict[tuple[str, str], Container] = {}


def _convert_member(spec: tuple[str, str], options: ConvertOptions, name: str) -> Converted:
    container = _WORKER_CONTAINERS.get(spec)
    if container is None:
        container = _WORKER_CONTAINERS[spec] = container_from_spec(spec)
    try:
        data = container.read(name)
    except (OSError, KeyError) as e:
        return Converted(reason=f"cannot be read ({e})", fix="check the file's permissions")
    return convert_bytes(data, options)


def _open_source(src: Path) -> Container:
    if not src.exists():
        raise DatasetError(f"SRC {src} does not exist")
    if is_prepared(src):
        raise DatasetError(f"SRC {src} is already a prepared dataset; use it as data.source directly")
    if src.is_dir():
        return FolderContainer(src)
    if src.suffix.lower() == ".zip":
        return ZipContainer(src)
    raise DatasetError(f"SRC {src} must be a folder of images or a .zip archive")


def _check_options(options: ConvertOptions, policy: str) -> None:
    check_resolution(options.resolution, key="--resolution")
    check_policy(policy, key="--on-bad-image")
    if options.channels not in (1, 3):
        raise DatasetError(f"--channels {options.channels} must be 1 or 3")
    if options.transform not in TRANSFORMS:
        raise DatasetError(f"--transform {options.transform} must be one of {', '.join(TRANSFORMS)}")
    if options.filter not in FILTERS:
        raise DatasetError(f"--filter {options.filter} must be one of {', '.join(FILTERS)}")


def _results(
    container: Container,
    names: Sequence[str],
    options: ConvertOptions,
    workers: int,
    pool: ProcessPoolExecutor | None,
) -> Iterable[Converted]:
    task = functools.partial(_convert_member, container.spec(), options)
    if pool is None:
        return map(task, names)
    return pool.map(task, names, chunksize=max(1, min(64, len(names) // (4 * workers))))


def _select(container, src: Path, max_images: int | None, on_bad_image: str):
    """(names considered, label map, names without a label, names to convert); label problems per the policy."""
    all_names = container.list_images()
    if not all_names:
        raise DatasetError(f"no PNG/JPEG/WebP images found in {src} (searched recursively)")
    names = all_names[:max_images] if max_images else all_names
    label_map = read_label_map(container)
    unlabeled: set[str] = set()
    if label_map is not None:
        missing, stale = find_bad_labels(label_map, names, all_names, container.where("dataset.json"))
        if on_bad_image == "error":
            refuse_stale_labels(container, stale, "SRC", f"fix the labels or {SKIP_HINT}")
            apply_policy(missing, "error", container.where, len(names), SKIP_HINT)
        unlabeled = {b.name for b in missing}
    return names, label_map, unlabeled, [n for n in names if n not in unlabeled]


def _convert_all(container, todo: list[str], options: ConvertOptions, writer: _NpyWriter, workers: int,
                 on_bad_image: str, num_names: int, progress: bool) -> tuple[list[str], list[BadImage], Counter]:
    """Convert ``todo`` into ``writer`` (in order, ``workers`` processes): (kept names, bad images, notes)."""
    kept: list[str] = []
    bad: list[BadImage] = []
    notes: Counter = Counter()
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(todo) > 1 else None
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="Preparing", unit="img", file=sys.stderr, disable=not progress)
    try:
        for name, res in zip(todo, _results(container, todo, options, workers, pool), strict=True):
            bar.update(1)
            if res.pixels is None:
                item = BadImage(name, res.reason or "cannot be converted", res.fix)
                if on_bad_image == "error":
                    apply_policy([item], "error", container.where, num_names, SKIP_HINT)
                bad.append(item)
                continue
            writer.append(res.pixels)
            kept.append(name)
            notes.update(res.notes)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return kept, bad, notes


def _replace_dir(tmp: Path, dest: Path) -> None:
    """Move the finished ``tmp`` folder to ``dest``; an existing ``dest`` is removed only once the new one is in."""
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old / "previous")
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


def prepare_dataset(
    src: str | Path,
    dest: str | Path,
    resolution: int,
    channels: int = 3,
    transform: str = "center-crop",
    filter: str = "box",
    workers: int = 1,
    on_bad_image: str = "error",
    overwrite: bool = False,
    allow_upscale: bool = False,
    max_images: int | None = None,
    progress: bool = True,
) -> PrepareSummary:
    """Convert ``src`` (folder or zip, optional dataset.json labels) into a prepared dataset at ``dest``; written to
    a temporary folder first, so ``dest`` is whole or untouched."""
    options = ConvertOptions(resolution, channels, transform, filter, allow_upscale)
    _check_options(options, on_bad_image)
    src, dest = Path(src).expanduser(), Path(dest).expanduser()
    container = _open_source(src)
    if dest.exists() and not overwrite:
        raise DatasetError(f"DEST {dest} already exists; choose another path or pass --overwrite")
    names, label_map, unlabeled, todo = _select(container, src, max_images, on_bad_image)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    writer = None
    try:
        writer = _NpyWriter(tmp / PREPARED_IMAGES, len(todo), (channels, resolution, resolution))
        kept, bad, notes = _convert_all(container, todo, options, writer, workers, on_bad_image, len(names), progress)
        bad = [BadImage(n, "has no label in dataset.json", "") for n in unlabeled] + bad
        if not kept:
            apply_policy(bad, on_bad_image, container.where, len(bad), SKIP_HINT)  # raises: nothing usable
        writer.finish()
        labels = None if label_map is None else [label_map[n] for n in kept]
        c_dim = 0 if not labels else max(labels) + 1
        meta = {
            "format": PREPARED_FORMAT,
            "version": PREPARED_VERSION,
            "num_images": len(kept),
            "resolution": resolution,
            "channels": channels,
            "c_dim": c_dim,
            "labels": labels,
            "names": kept,
            "source": str(src.resolve()),
            "transform": transform,
            "filter": filter,
            "skipped": [[b.name, b.reason] for b in bad],
            "created_by": f"stylegan-prepare {__version__}",
        }
        (tmp / PREPARED_META).write_text(json.dumps(meta), encoding="utf-8")
        _replace_dir(tmp, dest)
    except BaseException:
        if writer is not None:
            writer.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    order = {n: i for i, n in enumerate(names)}
    bad.sort(key=lambda b: order[b.name])
    skipped = [(container.where(b.name), b.reason) for b in bad]
    return PrepareSummary(dest, len(kept), resolution, channels, c_dim, notes, skipped)


def build_parser() -> argparse.ArgumentParser:
    """The ``stylegan-prepare`` argument parser."""
    p = argparse.ArgumentParser(
        prog="stylegan-prepare",
        description="Convert a folder or zip of PNG/JPEG/WebP images into a prepared StyleGAN dataset "
        "(DEST/images.npy + DEST/meta.json). Labels come from SRC/dataset.json if present.",
    )
    p.add_argument("src", metavar="SRC", help="folder (searched recursively) or .zip of images")
    p.add_argument("dest", metavar="DEST", help="output directory (must not exist unless --overwrite)")
    p.add_argument("--resolution", type=int, required=True, help="output size, a power of two (e.g. 256)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=3, help="1 = grayscale, 3 = RGB (default)")
    p.add_argument(
        "--transform",
        choices=TRANSFORMS,
        default="center-crop",
        help="how non-square images become square (default center-crop)",
    )
    p.add_argument(
        "--filter",
        choices=tuple(FILTERS),
        default="box",
        help="resampling filter (default box, as used for the paper's FFHQ-256)",
    )
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="decoding processes")
    p.add_argument(
        "--on-bad-image",
        choices=("error", "skip"),
        default="error",
        help="stop at the first unusable file (default) or skip and list them",
    )
    p.add_argument("--max-images", type=int, default=None, help="convert only the first N images")
    p.add_argument("--allow-upscale", action="store_true", help="upscale images smaller than --resolution")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DEST (atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status (errors are one line, never a traceback)."""
    args = build_parser().parse_args(argv)
    try:
        summary = prepare_dataset(
            args.src,
            args.dest,
            args.resolution,
            args.channels,
            args.transform,
            args.filter,
            workers=max(1, args.workers),
            on_bad_image=args.on_bad_image,
            overwrite=args.overwrite,
            allow_upscale=args.allow_upscale,
            max_images=args.max_images,
            progress=not args.quiet,
        )
    except DatasetError as e:
        print(f"stylegan-prepare: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stylegan-prepare: interrupted; nothing was written to DEST", file=sys.stderr)
        return 130
    print(summary.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
