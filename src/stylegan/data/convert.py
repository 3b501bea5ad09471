"""Pixel conversions used by ``stylegan-prepare``: any PNG/JPEG/WebP mode to 8-bit L/RGB, square, resized.

Conversion rules: 16-bit gray is scaled to 8 bits (``round(v / 257)``; Pillow's own conversion would clip);
16-bit RGB PNGs are reduced to 8 bits by Pillow on decode; palette images are expanded; CMYK becomes RGB;
alpha is composited onto black; ``channels=1`` uses Pillow's ITU-R 601-2 luma, ``channels=3`` replicates
gray. Then the image is center-cropped or black-padded to a square and resized with the named filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from .sources import decode_image
from .validate import ALPHA_MODES, SIXTEEN_BIT_MODES, inspect_bytes

FILTERS = {
    "box": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
    "bilinear": Image.Resampling.BILINEAR,
}
TRANSFORMS = ("center-crop", "pad")


@dataclass(frozen=True)
class ConvertOptions:
    """Target format of ``stylegan-prepare``."""

    resolution: int
    channels: int = 3
    transform: str = "center-crop"
    filter: str = "box"
    allow_upscale: bool = False


@dataclass
class Converted:
    """One file's outcome: ``pixels`` uint8 ``[C, R, R]``, or ``reason``/``fix`` when it is unusable."""

    pixels: np.ndarray | None = None
    reason: str | None = None
    fix: str = ""
    notes: list[str] = field(default_factory=list)


def to_8bit_mode(img: Image.Image, channels: int, sixteen_bit: bool = False) -> tuple[Image.Image, list[str]]:
    """Convert any decoded mode to 8-bit ``L`` (channels=1) or ``RGB`` (channels=3), noting what changed."""
    notes: list[str] = []
    if img.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(img).astype(np.float64)
        img = Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), mode="L")
        notes.append("16-bit to 8-bit")
    elif sixteen_bit:
        notes.append("16-bit to 8-bit")
    if img.mode == "P":
        has_alpha = "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        notes.append("palette expanded")
    if img.mode == "CMYK":
        img = img.convert("RGB")
        notes.append("CMYK to RGB")
    if img.mode in ALPHA_MODES:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba).convert("RGB")
        notes.append("alpha composited on black")
    was = img.mode
    if channels == 1 and was != "L":
        img = img.convert("L")
        notes.append("1-bit to grayscale" if was == "1" else "color to grayscale")
    elif channels == 3 and was != "RGB":
        img = img.convert("RGB")
        notes.append("grayscale to RGB" if was in ("L", "1") else f"{was} to RGB")
    return img, notes


def to_square(img: Image.Image, options: ConvertOptions) -> tuple[Image.Image | None, list[str], str | None]:
    """Crop or pad to a square and resize to the target; returns (image, notes, reason-if-too-small)."""
    w, h = img.size
    notes: list[str] = []
    if w != h:
        if options.transform == "center-crop":
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            img = img.crop((left, top, left + s, top + s))
            notes.append("center-cropped")
        else:
            s = max(w, h)
            canvas = Image.new(img.mode, (s, s), 0)
            canvas.paste(img, ((s - w) // 2, (s - h) // 2))
            img = canvas
            notes.append("padded")
    size, r = img.size[0], options.resolution
    if size < r and not options.allow_upscale:
        return None, notes, f"is {w}x{h}, too small for {r}x{r}"
    if size != r:
        img = img.resize((r, r), FILTERS[options.filter])
        notes.append("resized" if size > r else "upscaled")
    return img, notes, None


def convert_bytes(data: bytes, options: ConvertOptions) -> Converted:
    """Decode one file and convert it to the target format (never raises for bad files)."""
    try:
        img = decode_image(data)
    except UnidentifiedImageError:
        return Converted(reason=inspect_bytes(data).error, fix="re-export or delete the file")
    except Exception:  # damaged file: let the validator word the reason
        return Converted(
            reason=inspect_bytes(data).error or "cannot be decoded", fix="re-export or delete the file"
        )
    sixteen = data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24 and data[24] == 16
    img, notes = to_8bit_mode(img, options.channels, sixteen)
    square, more, reason = to_square(img, options)
    if square is None:
        return Converted(
            reason=reason, fix="choose a lower --resolution, or pass --allow-upscale", notes=notes
        )
    arr = np.asarray(square, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return Converted(pixels=np.ascontiguousarray(arr), notes=notes + more)
