"""Bad input, as real files, must stop setup with one clear line (or be skipped and listed)."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_factory import (
    image_folder,
    nvlabs_zip,
    pattern,
    png_bytes,
    save,
    truncate,
    write_labels,
    write_png16_rgb,
)
from stylegan.data import DatasetError, ImageDataModule


def _truncated_png(p: Path) -> Path:
    return truncate(save(p.with_suffix(".png"), pattern(8, seed=9)), 0.5)


def _truncated_jpeg(p: Path) -> Path:
    return truncate(save(p.with_suffix(".jpg"), pattern(8, seed=9)), 0.5)


def _corrupt(p: Path) -> Path:
    out = p.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return out


def _sixteen_bit_gray(p: Path) -> Path:
    return save(p.with_suffix(".png"), np.full((8, 8), 40000, dtype=np.uint16))


def _sixteen_bit_rgb(p: Path) -> Path:
    return write_png16_rgb(p.with_suffix(".png"), np.full((8, 8, 3), 50000, dtype=np.uint16))


def _cmyk(p: Path) -> Path:
    return save(p.with_suffix(".jpg"), pattern(8, seed=9), mode="CMYK")


def _palette(p: Path) -> Path:
    return save(p.with_suffix(".png"), pattern(8, seed=9), mode="P")


def _alpha(p: Path) -> Path:
    return save(p.with_suffix(".png"), pattern(8, channels=4, seed=9))


BAD_CASES: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    # name: (writer, words in the reason, words in the fix)
    "truncated_png": (_truncated_png, "truncated", "re-export"),
    "truncated_jpeg": (_truncated_jpeg, "truncated", "re-export"),
    "corrupt": (_corrupt, "cannot be decoded", "re-export"),
    "16bit_gray": (_sixteen_bit_gray, "16-bit", "stylegan-prepare"),
    "16bit_rgb": (_sixteen_bit_rgb, "16-bit", "stylegan-prepare"),
    "cmyk": (_cmyk, "CMYK", "stylegan-prepare"),
    "palette": (_palette, "palette", "stylegan-prepare"),
    "alpha": (_alpha, "alpha channel", "stylegan-prepare"),
    "non_square": (
        lambda p: save(p.with_suffix(".png"), pattern((8, 6))),
        "is 8x6, not square",
        "stylegan-prepare",
    ),
    "too_small": (lambda p: save(p.with_suffix(".png"), pattern(4)), "too small", "stylegan-prepare"),
    "mixed_size": (lambda p: save(p.with_suffix(".png"), pattern(16)), "mixed sizes", "stylegan-prepare"),
    "mixed_channels": (
        lambda p: save(p.with_suffix(".png"), pattern(8, 1)),
        "mixed channels",
        "stylegan-prepare",
    ),
}


def _folder_with_bad(tmp_path: Path, case: str) -> tuple[Path, Path]:
    root = tmp_path / "imgs"
    image_folder(root, n=3, size=8)
    bad = BAD_CASES[case][0](root / "sub" / "bad")
    return root, bad


def _setup(source: Path | str, **kw) -> ImageDataModule:
    kw.setdefault("resolution", 8)
    kw.setdefault("channels", 3)
    dm = ImageDataModule(str(source), **kw)
    dm.setup()
    return dm


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_image_error_names_file_reason_and_fix(tmp_path: Path, case: str) -> None:
    root, bad = _folder_with_bad(tmp_path, case)
    with pytest.raises(DatasetError) as info:
        _setup(root)
    msg = str(info.value)
    _, reason, fix = BAD_CASES[case]
    assert str(bad) in msg and reason in msg and fix in msg
    assert "data.on_bad_image=skip" in msg and "\n" not in msg


@pytest.mark.parametrize("case", ["truncated_png", "palette", "mixed_size"])
def test_bad_image_skip_lists_and_continues(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    root, bad = _folder_with_bad(tmp_path, case)
    with caplog.at_level(logging.WARNING):
        dm = _setup(root, on_bad_image="skip")
    assert dm.num_images == 3
    assert "Skipping 1 of 4 images" in caplog.text and str(bad) in caplog.text
    assert dm.real_images(10).shape == (3, 3, 8, 8)


def test_skip_with_nothing_left_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for i in range(3):
        truncate(save(root / f"t{i}.png", pattern(8, seed=i)))
    with pytest.raises(DatasetError, match="no usable images: all 3 were bad"):
        _setup(root, on_bad_image="skip")


def test_truncated_member_of_zip_is_named(tmp_path: Path) -> None:
    path = tmp_path / "ds.zip"
    names = nvlabs_zip(path, [pattern(8, seed=i) for i in range(3)], labels=None)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("00000/img00000099.png", png_bytes(pattern(8))[:60])
    with pytest.raises(DatasetError, match="truncated") as info:
        _setup(path)
    assert f"{path}:00000/img00000099.png" in str(info.value) and names[0] not in str(info.value)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(DatasetError, match="not a readable zip archive"):
        _setup(path)


@pytest.mark.parametrize("content", ["nothing", "text_only", "hidden_only"])
def test_empty_folder(tmp_path: Path, content: str) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    if content == "text_only":
        (root / "notes.txt").write_text("no images")
    if content == "hidden_only":
        save(root / ".hidden.png", pattern(8))
    with pytest.raises(DatasetError, match="no PNG/JPEG/WebP images found") as info:
        _setup(root)
    assert str(root) in str(info.value)


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        _setup(tmp_path / "nope")


@pytest.mark.parametrize("resolution", [48, 3, 100])
def test_resolution_must_be_power_of_two(resolution: int) -> None:
    with pytest.raises(DatasetError, match=r"data\.resolution=") as info:
        ImageDataModule("mnist", resolution=resolution).setup()
    assert "power of two" in str(info.value)


def test_whole_folder_at_other_resolution_names_the_config_key(tmp_path: Path) -> None:
    image_folder(tmp_path / "imgs", n=3, size=16)
    with pytest.raises(
        DatasetError, match=r"images are 16x16 but data\.resolution=8; set data\.resolution=16"
    ):
        _setup(tmp_path / "imgs", resolution=8)


def test_whole_folder_non_square(tmp_path: Path) -> None:
    for i in range(3):
        save(tmp_path / "imgs" / f"{i}.png", pattern((8, 4), seed=i))
    with pytest.raises(DatasetError, match=r"are 8x4, not square.*stylegan-prepare"):
        _setup(tmp_path / "imgs")


def test_channel_mismatch_names_the_config_key(tmp_path: Path) -> None:
    image_folder(tmp_path / "imgs", n=2, size=8, channels=3)
    with pytest.raises(
        DatasetError, match=r"3 channel\(s\) \(RGB\) but data\.channels=1; set data\.channels=3"
    ):
        _setup(tmp_path / "imgs", channels=1)


def test_labels_required_but_absent(tmp_path: Path) -> None:
    image_folder(tmp_path / "imgs", n=2)
    with pytest.raises(DatasetError, match=r"use_labels=true but .* has no class labels"):
        _setup(tmp_path / "imgs", use_labels=True)
    write_labels(tmp_path / "imgs", None)  # {"labels": null}
    with pytest.raises(DatasetError, match="has no class labels"):
        _setup(tmp_path / "imgs", use_labels=True)


def test_file_without_label(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "imgs"
    image_folder(root, n=3)
    write_labels(root, {"img0.png": 0, "img1.png": 1})
    with pytest.raises(DatasetError, match=r"img2\.png: has no label in dataset\.json"):
        _setup(root, use_labels=True)
    with caplog.at_level(logging.WARNING):
        dm = _setup(root, use_labels=True, on_bad_image="skip")
    assert dm.num_images == 2 and dm.c_dim == 2 and "img2.png" in caplog.text


def test_label_for_missing_file(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    image_folder(root, n=2)
    write_labels(root, {"img0.png": 0, "img1.png": 1, "ghost.png": 1})
    with pytest.raises(DatasetError, match=r"lists 'ghost\.png', which is not an image"):
        _setup(root, use_labels=True)
    assert _setup(root, use_labels=True, on_bad_image="skip").num_images == 2


@pytest.mark.parametrize(
    "text", ['{"labels": [["img0.png", "cat"]]}', '{"labels": [["img0.png", -1]]}', "{not json", '{"x": 1}']
)
def test_malformed_labels(tmp_path: Path, text: str) -> None:
    root = tmp_path / "imgs"
    image_folder(root, n=1)
    (root / "dataset.json").write_text(text)
    with pytest.raises(DatasetError) as info:
        _setup(root, use_labels=True)
    assert "dataset.json" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"channels": 2}, "data.channels"),
        ({"on_bad_image": "ignore"}, "data.on_bad_image"),
        ({"batch_size": 0}, "data.batch_size"),
        ({"max_images": 0}, "data.max_images"),
    ],
)
def test_bad_config_values(kwargs: dict, key: str) -> None:
    with pytest.raises(DatasetError, match=key.replace(".", r"\.")):
        ImageDataModule("mnist", **kwargs).setup()


def test_pillow_reads_our_16bit_rgb_png_as_8bit(tmp_path: Path) -> None:
    """Guards the 16-bit RGB case above: Pillow silently reduces it, so only the header reveals it."""
    path = write_png16_rgb(tmp_path / "x.png", np.full((2, 2, 3), 50000, dtype=np.uint16))
    with Image.open(path) as img:
        assert img.mode == "RGB"
