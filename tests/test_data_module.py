"""ImageDataModule over real folders, zips and the built-in demos: values, shapes, labels, flips, helpers."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from data_factory import expected, image_folder, nvlabs_zip, pattern, save, write_labels
from stylegan.data import DatasetError, ImageDataModule
from stylegan.data.prepare import prepare_dataset


def _batches(dm: ImageDataModule, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(itertools.islice(iter(dm.train_dataloader()), n))


@pytest.mark.parametrize(("channels", "ext"), [(3, "png"), (1, "png"), (3, "webp")])
def test_folder_values_and_shapes(tmp_path: Path, channels: int, ext: str) -> None:
    root = tmp_path / "imgs"
    arrays = [pattern(8, channels, seed=i) for i in range(5)]
    arrays[0][:] = 0
    arrays[1][:] = 255
    for i, arr in enumerate(arrays):
        save(root / f"img{i}.{ext}", arr)
    dm = ImageDataModule(str(root), resolution=8, channels=channels, batch_size=3)
    dm.setup()
    assert (dm.num_images, dm.c_dim, dm.resolution, dm.channels) == (5, 0, 8, channels)
    real = dm.real_images(5)
    np.testing.assert_allclose(real.numpy(), np.stack([expected(a) for a in arrays]), atol=1e-6)
    assert real[0].eq(-1).all() and real[1].eq(1).all()
    for img, c in _batches(dm, 4):  # more batches than one pass over the data: the loader never ends
        assert img.dtype == torch.float32 and img.shape == (3, channels, 8, 8)
        assert img.min() >= -1 and img.max() <= 1
        assert c.dtype == torch.float32 and c.shape == (3, 0)


def test_jpeg_and_recursion(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    image_folder(root / "a" / "b", n=2, size=8)
    image_folder(root, n=1, size=8, ext="jpg")
    save(root / ".cache" / "x.png", pattern(8))  # hidden folders are ignored
    (root / "README.txt").write_text("not an image")
    dm = ImageDataModule(str(root), resolution=8, channels=3)
    dm.setup()
    assert dm.store.names == ["a/b/img0.png", "a/b/img1.png", "img0.jpg"]


def test_zip_labels_from_dataset_json(tmp_path: Path) -> None:
    labels = [3, 0, 2, 1, 3, 2]
    arrays = [np.full((8, 8, 3), 40 * lab, dtype=np.uint8) for lab in labels]  # pixel value encodes the label
    nvlabs_zip(tmp_path / "ds.zip", arrays, labels)
    dm = ImageDataModule(str(tmp_path / "ds.zip"), resolution=8, channels=3, batch_size=4, use_labels=True)
    dm.setup()
    assert dm.c_dim == 4 and dm.num_images == 6
    for img, c in _batches(dm, 3):
        assert c.shape == (4, 4) and torch.all(c.sum(1) == 1)
        value = torch.round((img[:, 0, 0, 0] + 1) * 127.5)
        assert torch.equal(c.argmax(1) * 40, value.long())
    unlabeled = ImageDataModule(str(tmp_path / "ds.zip"), resolution=8, channels=3, batch_size=4)
    unlabeled.setup()
    assert unlabeled.c_dim == 0 and _batches(unlabeled, 1)[0][1].shape == (4, 0)


def test_xflip_adds_mirrored_copies(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    (arr,) = image_folder(root, n=1, size=8)
    dm = ImageDataModule(str(root), resolution=8, channels=3, batch_size=2, xflip=True)
    dm.setup()
    assert dm.num_images == 1
    ((img, _),) = _batches(dm, 1)
    got = sorted(img.numpy().tolist())
    want = sorted([expected(arr).tolist(), expected(arr[:, ::-1]).tolist()])
    np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-6)
    np.testing.assert_allclose(dm.real_images(1)[0].numpy(), expected(arr), atol=1e-6)  # metrics see no flips


def test_mnist_demo() -> None:
    dm = ImageDataModule("mnist", use_labels=True, batch_size=16)
    dm.setup()
    assert (dm.num_images, dm.resolution, dm.channels, dm.c_dim) == (5000, 32, 1, 10)
    real = dm.real_images(5000)
    assert real.shape == (5000, 1, 32, 32) and real.min() == -1 and real.max() == 1
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert real[:, :, border].eq(-1).all()  # the 2-pixel pad is black
    assert real[:, :, 2:30, 2:30].gt(0).any(dim=(1, 2, 3)).all()  # every digit has ink
    assert np.bincount(dm.store.labels).tolist() == [500] * 10
    img, c = _batches(dm, 1)[0]
    assert img.shape == (16, 1, 32, 32) and c.shape == (16, 10)


def test_mnist_rgb_and_other_resolution() -> None:
    rgb = ImageDataModule("mnist", channels=3, max_images=10)
    rgb.setup()
    x = rgb.real_images(10)
    assert x.shape == (10, 3, 32, 32) and torch.equal(x[:, 0], x[:, 2])
    small = ImageDataModule("mnist", resolution=16, max_images=10)
    small.setup()
    assert small.real_images(3).shape == (3, 1, 16, 16) and small.num_images == 10


def test_lfw_needs_scikit_image_or_reads_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("skimage") is None:
        with pytest.raises(DatasetError, match="pip install scikit-image"):
            ImageDataModule("lfw").setup()
    # The loader reads skimage/data/lfw_subset.npy (float [200, 25, 25], faces first) from the install.
    pkg = tmp_path / "site" / "skimage"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    np.save(pkg / "data" / "lfw_subset.npy", np.random.default_rng(0).random((200, 25, 25)))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    dm = ImageDataModule("lfw", resolution=32, channels=1)
    dm.setup()
    x = dm.real_images(200)
    assert dm.num_images == 100 and x.shape == (100, 1, 32, 32) and x.min() >= -1 and x.max() <= 1


def test_prepared_config_mismatch_and_relative_home_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image_folder(tmp_path / "imgs", n=2, size=8)
    monkeypatch.chdir(tmp_path)
    assert ImageDataModule("imgs", resolution=8, channels=3).real_images(2).shape == (2, 3, 8, 8)
    monkeypatch.setenv("HOME", str(tmp_path))
    dm = ImageDataModule("~/imgs", resolution=8, channels=3)
    dm.setup()
    assert dm.num_images == 2


def test_setup_idempotent_and_fingerprint(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    image_folder(root, n=4, size=8)
    a = ImageDataModule(str(root), resolution=8, channels=3)
    a.setup("fit")
    store = a.store
    a.setup()
    assert a.store is store
    b = ImageDataModule(str(root), resolution=8, channels=3, batch_size=7, xflip=True)
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 16
    save(root / "img3.png", pattern(8, seed=99))  # same names, other pixels
    assert ImageDataModule(str(root), resolution=8, channels=3).fingerprint() != a.fingerprint()
    assert ImageDataModule(str(root), resolution=8, channels=3, max_images=3).fingerprint() != a.fingerprint()
    assert ImageDataModule("mnist").fingerprint() != ImageDataModule("mnist", channels=3).fingerprint()


def _official_subset(total: int, count: int, seed: int) -> list[int]:
    """stylegan2-ada-pytorch's Dataset(max_size, random_seed): shuffle all indices, keep the first, sort."""
    idx = np.arange(total)
    np.random.RandomState(seed).shuffle(idx)
    return sorted(idx[:count].tolist())


@pytest.mark.parametrize("seed", [0, 3])
def test_max_images_is_the_official_random_subset_and_real_images_cap(tmp_path: Path, seed: int) -> None:
    arrays = image_folder(tmp_path / "imgs", n=9, size=8)
    dm = ImageDataModule(str(tmp_path / "imgs"), resolution=8, channels=3, max_images=4, seed=seed)
    dm.setup()
    keep = _official_subset(9, 4, seed)
    assert keep != list(range(4))  # not the first images
    x = dm.real_images(100)
    assert dm.num_images == 4 and x.shape == (4, 3, 8, 8)
    np.testing.assert_allclose(x.numpy(), np.stack([expected(arrays[i]) for i in keep]), atol=1e-6)
    assert torch.equal(torch.cat(list(dm.iter_real_images(4, batch_size=2))), x)


def test_max_images_of_a_class_sorted_dataset_keeps_its_classes_and_label_dimension(tmp_path: Path) -> None:
    """MNIST-5k is sorted by digit: the first 64 are all zeros, the subset is not; c_dim stays the dataset's 10, also
    for a labelled folder whose subset misses the highest class, and for a prepared dataset."""
    full = ImageDataModule("mnist", use_labels=True)
    full.setup()
    dm = ImageDataModule("mnist", use_labels=True, max_images=64)
    dm.setup()
    keep = _official_subset(5000, 64, 0)
    assert set(full.store.labels[:64].tolist()) == {0} and dm.c_dim == 10
    assert dm.store.labels.tolist() == full.store.labels[keep].tolist() and len(set(dm.store.labels.tolist())) >= 8
    assert torch.equal(dm.real_images(64), torch.stack([full.dataset.batch([i], 10)[0][0] for i in keep]))
    labels = [7, 0, 1, 1, 2, 0]
    root = tmp_path / "imgs"
    image_folder(root, n=6, size=8)
    write_labels(root, {f"img{i}.png": label for i, label in enumerate(labels)})
    prepare_dataset(root, tmp_path / "prep", resolution=8, progress=False)
    keep = _official_subset(6, 3, 0)
    assert 0 not in keep  # the image labelled 7 is left out
    images = []
    for source in (root, tmp_path / "prep"):
        small = ImageDataModule(str(source), resolution=8, channels=3, use_labels=True, max_images=3)
        small.setup()
        assert small.c_dim == 8 and small.store.labels.tolist() == [labels[i] for i in keep], source
        images.append(small.real_images(3))
    assert torch.equal(images[0], images[1])  # the prepared memory map is indexed like the folder


def test_folder_labels(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    image_folder(root / "sub", n=3, size=8)
    write_labels(root, {"sub/img0.png": 4, "sub/img1.png": 0, "sub/img2.png": 1})
    dm = ImageDataModule(str(root), resolution=8, channels=3, use_labels=True)
    dm.setup()
    assert dm.c_dim == 5 and dm.store.labels.tolist() == [4, 0, 1]


def test_real_image_subset_spans_a_sorted_dataset() -> None:
    """MNIST-5k is sorted by label: a subset for grids and metric statistics must still hold every digit."""
    dm = ImageDataModule("mnist", use_labels=True)
    dm.setup()
    labels = np.asarray(dm.store.labels)
    order = np.sort(np.random.RandomState(0).permutation(dm.num_images)[:64])
    assert len(set(labels[order].tolist())) == 10
    x = dm.real_images(64)
    np.testing.assert_allclose(x.numpy(), torch.cat([dm.real_images(5000)[i : i + 1] for i in order]).numpy())
