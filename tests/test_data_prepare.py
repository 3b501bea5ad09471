"""stylegan-prepare: round trip, conversions, geometry, atomic output, parallel decoding and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import stylegan
from data_factory import (
    expected,
    image_folder,
    nvlabs_zip,
    pattern,
    save,
    truncate,
    write_labels,
    write_png16_rgb,
)
from stylegan.data import DatasetError, ImageDataModule
from stylegan.data.prepare import prepare_dataset


def _load(path: Path, **kw) -> ImageDataModule:
    kw.setdefault("resolution", 8)
    kw.setdefault("channels", 3)
    dm = ImageDataModule(str(path), **kw)
    dm.setup()
    return dm


def _pixels(dest: Path) -> np.ndarray:
    return np.load(dest / "images.npy")


def test_round_trip_matches_the_raw_folder(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    image_folder(root / "x", n=5, size=8)
    write_labels(root, {f"x/img{i}.png": i % 3 for i in range(5)})
    summary = prepare_dataset(root, tmp_path / "prep", resolution=8, progress=False)
    assert summary.num_images == 5 and summary.c_dim == 3 and not summary.skipped
    meta = json.loads((tmp_path / "prep" / "meta.json").read_text())
    assert meta["names"] == [f"x/img{i}.png" for i in range(5)] and meta["labels"] == [0, 1, 2, 0, 1]
    assert sorted(p.name for p in (tmp_path / "prep").iterdir()) == ["images.npy", "meta.json"]
    assert isinstance(np.load(tmp_path / "prep" / "images.npy", mmap_mode="r"), np.memmap)
    raw, prepared = _load(root, use_labels=True), _load(tmp_path / "prep", use_labels=True)
    assert prepared.real_images(5).equal(raw.real_images(5))
    assert prepared.store.labels.tolist() == raw.store.labels.tolist() and prepared.c_dim == 3
    assert _load(tmp_path / "prep" / "images.npy").num_images == 5  # the array file itself also works


def test_prepared_from_nvlabs_zip_with_workers(tmp_path: Path) -> None:
    arrays = [pattern(16, seed=i) for i in range(9)]
    nvlabs_zip(tmp_path / "ds.zip", arrays, labels=[i % 2 for i in range(9)])
    one = prepare_dataset(tmp_path / "ds.zip", tmp_path / "p1", resolution=8, workers=1, progress=False)
    two = prepare_dataset(tmp_path / "ds.zip", tmp_path / "p2", resolution=8, workers=2, progress=False)
    assert one.num_images == two.num_images == 9 and one.conversions["resized"] == 9
    np.testing.assert_array_equal(_pixels(tmp_path / "p1"), _pixels(tmp_path / "p2"))
    # box filter at exactly half size = mean of each 2x2 block
    block_mean = arrays[0].astype(float).reshape(8, 2, 8, 2, 3).mean(axis=(1, 3)).transpose(2, 0, 1)
    assert np.abs(_pixels(tmp_path / "p1")[0] - block_mean).max() <= 1


def test_center_crop_and_pad(tmp_path: Path) -> None:
    wide = np.zeros((8, 16, 3), dtype=np.uint8)
    wide[:, :4], wide[:, 4:12], wide[:, 12:] = 50, 150, 250
    save(tmp_path / "src" / "wide.png", wide)
    prepare_dataset(tmp_path / "src", tmp_path / "crop", resolution=8, progress=False)
    assert np.all(_pixels(tmp_path / "crop")[0] == 150)  # only the middle 8 columns remain
    prepare_dataset(tmp_path / "src", tmp_path / "pad", resolution=16, transform="pad", progress=False)
    padded = _pixels(tmp_path / "pad")[0]
    assert np.all(padded[:, :4] == 0) and np.all(padded[:, 12:] == 0)  # black bars above and below
    np.testing.assert_array_equal(padded[:, 4:12], wide.transpose(2, 0, 1))


def test_converts_palette_alpha_cmyk_and_16bit(tmp_path: Path) -> None:
    src = tmp_path / "src"
    rgb = pattern(8, seed=1)
    save(src / "palette.png", rgb, mode="P")
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[:4, :, 3] = 255  # opaque top half, transparent bottom half
    save(src / "alpha.png", rgba)
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(src / "cmyk.jpg", quality=100)  # no ink = white
    gray16 = np.zeros((8, 8), dtype=np.uint16)
    gray16[:, 2:4], gray16[:, 4:6], gray16[:, 6:] = 257 * 128, 65535, 1000
    save(src / "gray16.png", gray16)
    write_png16_rgb(src / "rgb16.png", np.full((8, 8, 3), 0x8000 + 0x00FF, dtype=np.uint16))
    summary = prepare_dataset(src, tmp_path / "out", resolution=8, progress=False)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    px = dict(zip(meta["names"], _pixels(tmp_path / "out"), strict=True))
    palette_back = np.asarray(Image.fromarray(rgb).convert("P").convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(px["palette.png"], palette_back)
    assert np.all(px["alpha.png"][:, :4] == 200) and np.all(px["alpha.png"][:, 4:] == 0)  # on black
    assert np.all(px["cmyk.jpg"] >= 250)
    assert px["gray16.png"][0, 0].tolist() == [0, 0, 128, 128, 255, 255, 4, 4]  # round(v / 257), no clipping
    assert np.all(px["gray16.png"][0] == px["gray16.png"][2])  # grayscale replicated into RGB
    assert np.all(px["rgb16.png"] == 0x80)
    for note in (
        "palette expanded",
        "alpha composited on black",
        "CMYK to RGB",
        "16-bit to 8-bit",
        "grayscale to RGB",
    ):
        assert summary.conversions[note] >= 1, note
    assert "Converted:" in summary.text()
    # The result loads with the raw-folder checks' strictness gone: everything is 8-bit RGB now.
    assert _load(tmp_path / "out").num_images == 5


def test_grayscale_output(tmp_path: Path) -> None:
    image_folder(tmp_path / "src", n=2, size=8)
    prepare_dataset(tmp_path / "src", tmp_path / "out", resolution=8, channels=1, progress=False)
    dm = _load(tmp_path / "out", channels=1)
    want = np.asarray(Image.open(tmp_path / "src" / "img0.png").convert("L"))
    np.testing.assert_allclose(dm.real_images(2)[0].numpy(), expected(want), atol=1e-6)  # all 2: dataset order
    with pytest.raises(DatasetError, match=r"has 1 channel\(s\) but data\.channels=3; set data\.channels=1"):
        _load(tmp_path / "out", channels=3)
    with pytest.raises(DatasetError, match=r"is 8x8 but data\.resolution=16; set data\.resolution=8"):
        _load(tmp_path / "out", channels=1, resolution=16)
    with pytest.raises(DatasetError, match=r"data\.use_labels=true but .* has no class labels"):
        _load(tmp_path / "out", channels=1, use_labels=True)


def test_damaged_prepared_dataset(tmp_path: Path) -> None:
    image_folder(tmp_path / "src", n=4, size=8)
    prepare_dataset(tmp_path / "src", tmp_path / "out", resolution=8, progress=False)
    truncate(tmp_path / "out" / "images.npy", 0.6)
    with pytest.raises(DatasetError, match=r"images\.npy is damaged or incomplete.*re-run stylegan-prepare"):
        _load(tmp_path / "out")


def _no_leftovers(parent: Path, keep: set[str]) -> bool:
    return {p.name for p in parent.iterdir()} == keep


def test_failure_midway_leaves_no_output(tmp_path: Path) -> None:
    src = tmp_path / "src"
    image_folder(src, n=6, size=8)
    truncate(src / "img3.png")
    with pytest.raises(DatasetError, match=r"img3\.png: is truncated") as info:
        prepare_dataset(src, tmp_path / "out" / "ds", resolution=8, progress=False)
    assert "pass --on-bad-image skip" in str(info.value)
    assert not (tmp_path / "out" / "ds").exists() and _no_leftovers(tmp_path / "out", set())
    summary = prepare_dataset(src, tmp_path / "out" / "ds", resolution=8, on_bad_image="skip", progress=False)
    assert summary.num_images == 5 and summary.skipped == [
        (str(src / "img3.png"), "is truncated (the file is incomplete)")
    ]
    assert _pixels(tmp_path / "out" / "ds").shape == (5, 3, 8, 8)  # the .npy header was fixed up for 5
    assert _no_leftovers(tmp_path / "out", {"ds"})


def test_existing_dest_and_overwrite(tmp_path: Path) -> None:
    image_folder(tmp_path / "src", n=2, size=8)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(DatasetError, match=r"already exists.*--overwrite"):
        prepare_dataset(tmp_path / "src", dest, resolution=8, progress=False)
    assert (dest / "mine.txt").read_text() == "keep me"
    prepare_dataset(tmp_path / "src", dest, resolution=8, overwrite=True, progress=False)
    assert sorted(p.name for p in dest.iterdir()) == ["images.npy", "meta.json"]
    assert _no_leftovers(tmp_path, {"src", "out"})


def test_too_small_needs_allow_upscale(tmp_path: Path) -> None:
    image_folder(tmp_path / "src", n=1, size=4)
    with pytest.raises(DatasetError, match=r"is 4x4, too small for 8x8.*--allow-upscale"):
        prepare_dataset(tmp_path / "src", tmp_path / "out", resolution=8, progress=False)
    summary = prepare_dataset(
        tmp_path / "src", tmp_path / "out", resolution=8, allow_upscale=True, progress=False
    )
    assert summary.conversions["upscaled"] == 1


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(stylegan.__file__).parents[1])}
    cmd = [sys.executable, "-m", "stylegan.data.prepare", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_cli_on_a_real_folder(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    for i in range(4):
        save(src / f"p{i}.jpg", pattern((24, 16), seed=i))
    save(src / "broken.png", pattern(8))
    truncate(src / "broken.png")
    out = _cli(
        str(src),
        str(tmp_path / "ds"),
        "--resolution",
        "8",
        "--channels",
        "3",
        "--transform",
        "pad",
        "--filter",
        "lanczos",
        "--workers",
        "2",
        "--on-bad-image",
        "skip",
    )
    assert out.returncode == 0, out.stderr
    assert "Prepared 4 images (8x8, 3 channel(s), no labels)" in out.stdout
    assert "Skipped 1 bad image(s)" in out.stdout and "broken.png: is truncated" in out.stdout
    assert "4 padded" in out.stdout and "4 resized" in out.stdout
    assert _load(tmp_path / "ds").num_images == 4
    fail = _cli(str(src), str(tmp_path / "ds2"), "--resolution", "8")
    assert fail.returncode == 1 and "Traceback" not in fail.stderr
    last = fail.stderr.strip().splitlines()[-1]  # the lines before it are the progress bar
    assert last.startswith("stylegan-prepare: error: bad image") and "broken.png: is truncated" in last
    assert not (tmp_path / "ds2").exists()
    bad_res = _cli(str(src), str(tmp_path / "ds3"), "--resolution", "24")
    assert bad_res.returncode == 1 and "--resolution=24 is not a power of two" in bad_res.stderr
