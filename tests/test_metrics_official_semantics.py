"""Which reals the metrics use, against the official definition (stylegan2-ada-pytorch ``training/dataset.py`` and
``metric_utils.compute_feature_stats_for_dataset``): a mirrored dataset of N images has 2N items (N..2N-1 the
mirror images of 0..N-1), ``*_full`` uses them all, a smaller count the first items in that order; the cache keeps
mirrored and plain statistics apart; ``best.ckpt`` follows each metric's direction.

The reference is computed here in float64 numpy from the pixels written into a real zip (dataset_tool layout), not
through the data module, with the injected extractor's own projection (an 8x8 image is its own 8x8 pooling).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg
import torch

from data_factory import nvlabs_zip, pattern
from metrics_testing import PixelFeatures
from stylegan.data import ImageDataModule
from stylegan.metrics import MetricRunner, MetricsCallback, Networks
from stylegan.metrics.names import higher_is_better
from stylegan.metrics.reals import real_batches, real_indices

N, RES = 6, 8


@pytest.fixture(scope="module")
def zip_data(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    root = tmp_path_factory.mktemp("mirror")
    arrays = [pattern(RES, 3, seed=100 + i) for i in range(N)]  # HWC uint8
    nvlabs_zip(root / "data.zip", arrays, None)
    return root / "data.zip", arrays


def _dm(path: Path, xflip: bool) -> ImageDataModule:
    dm = ImageDataModule(source=str(path), resolution=RES, channels=3, xflip=xflip)
    dm.setup()
    return dm


def _official_items(arrays: list[np.ndarray], xflip: bool) -> list[np.ndarray]:
    """The official dataset's items in order: the images, then (xflip) each mirrored left-right."""
    return list(arrays) + ([a[:, ::-1, :] for a in arrays] if xflip else [])


def _features(net: PixelFeatures, items: list[np.ndarray]) -> np.ndarray:
    """PixelFeatures in float64: tanh(CHW pixels in [-1, 1] @ proj)."""
    x = np.stack([a.transpose(2, 0, 1).reshape(-1) for a in items]).astype(np.float64) / 127.5 - 1
    return np.tanh(x @ net.proj.double().numpy())


def _fd(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance of two feature sets' Gaussian fits (scipy's sqrtm, as the official code)."""
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s = scipy.linalg.sqrtm(ca @ cb)
    return float(np.square(a.mean(0) - b.mean(0)).sum() + np.trace(ca + cb - 2 * np.real(s)))


class ReplayG(torch.nn.Module):
    """Returns fixed images in order (one process): a 'generator' whose features are known."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images, self.z_dim, self.c_dim, self.pos = images, 4, 0, 0
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z, c, truncation_psi=1.0, noise_mode="random"):
        out = self.images[self.pos : self.pos + len(z)]
        self.pos += len(z)
        return out


def _float(items: list[np.ndarray]) -> torch.Tensor:
    return torch.as_tensor(np.stack([a.transpose(2, 0, 1) for a in items])).float() / 127.5 - 1


def test_full_real_statistics_of_a_mirrored_dataset_count_the_flipped_copies(zip_data):
    path, arrays = zip_data
    net = PixelFeatures()
    runner = MetricRunner(["fid6_full"], Networks(features=net), batch_size=4, progress=False)
    want = _features(net, _official_items(arrays, True))  # 12 items: 6 images, then their mirror images
    plain = _features(net, arrays)
    assert _fd(want, plain) > 0.05  # the flips change the statistics: this dataset can tell
    mu, cov = (runner.real(_dm(path, True), net, None, "stats", torch.device("cpu"))[k] for k in ("mu", "cov"))
    np.testing.assert_allclose(mu.numpy(), want.mean(0), atol=1e-6)
    np.testing.assert_allclose(cov.numpy(), np.cov(want, rowvar=False), atol=1e-6)
    # end to end: 6 'generated' images (the originals) against all 12 reals
    value = runner.run(ReplayG(_float(arrays)), _dm(path, True), "cpu")["fd6_full@pixproj"]
    assert value == pytest.approx(_fd(plain, want), rel=1e-5, abs=1e-7) and value > 0.01
    unflipped = MetricRunner(["fid6_full"], Networks(features=net), batch_size=4, progress=False)
    assert abs(unflipped.run(ReplayG(_float(arrays)), _dm(path, False), "cpu")["fd6_full@pixproj"]) < 1e-6


@pytest.mark.parametrize(("xflip", "count", "subset"), [(True, 8, "first"), (True, 4, "first"),
                                                         (False, 4, "first"), (True, 8, "random")])
def test_a_partial_count_takes_the_first_items_in_dataset_order(zip_data, xflip, count, subset):
    """fid50k on mirrored FFHQ takes the first 50k of the 140k items; here 8 of 12 are the 6 images and the mirror
    images of the first two. 'random' (explicit) takes RandomState(0)'s subset of the items, in order."""
    path, arrays = zip_data
    net = PixelFeatures()
    runner = MetricRunner([f"kid{count}"], Networks(features=net), batch_size=3, progress=False, real_subset=subset)
    got = runner.real(_dm(path, xflip), net, count, "features", torch.device("cpu"))["features"].double().numpy()
    items = _official_items(arrays, xflip)
    if subset == "first":
        chosen = items[:count]
    else:
        chosen = [items[i] for i in sorted(np.random.RandomState(0).permutation(len(items))[:count])]
        assert not np.allclose(_features(net, chosen), _features(net, items[:count]))
    np.testing.assert_allclose(got, _features(net, chosen), atol=1e-6)


def test_real_batches_split_over_ranks_rejoin_to_the_single_process_order(zip_data):
    dm = _dm(zip_data[0], True)
    idx = real_indices(12, 11)
    one = torch.cat(list(real_batches(dm, idx, 3)))
    parts = [list(real_batches(dm, idx, 3, rank, 2)) for rank in range(2)]
    interleaved = [parts[b % 2][b // 2] for b in range(4)]  # batch b on rank b % 2
    assert torch.equal(torch.cat(interleaved), one) and len(one) == 11


def test_cached_real_statistics_are_kept_apart_by_the_flip_setting(zip_data, tmp_path):
    path, arrays = zip_data

    def run(xflip: bool):
        runner = MetricRunner(["fid6_full"], Networks(features=PixelFeatures()), cache_dir=str(tmp_path),
                              batch_size=4, progress=False)
        mu = runner.real(_dm(path, xflip), runner.networks.features, None, "stats", torch.device("cpu"))["mu"]
        return mu, runner.extraction_calls

    plain, calls_plain = run(False)
    mirrored, calls_mirrored = run(True)  # same files and fingerprint: only the flip setting differs
    again, calls_again = run(True)
    assert (calls_plain, calls_mirrored, calls_again) == (1, 1, 0)
    assert not torch.allclose(plain, mirrored) and torch.equal(again, mirrored)
    want = _features(PixelFeatures(), _official_items(arrays, True)).mean(0)
    np.testing.assert_allclose(mirrored.numpy(), want, atol=1e-6)
    metas = sorted((torch.load(p, weights_only=True)["meta"]["xflip"], torch.load(p, weights_only=True)["meta"]
                    ["count"]) for p in tmp_path.glob("real-*.pt"))
    assert metas == [(False, 6), (True, 12)]


class _Trainer:
    """What MetricsCallback.evaluate uses of a Lightning Trainer; records the best.ckpt writes."""

    def __init__(self, dm) -> None:
        self.datamodule, self.callback_metrics, self.is_global_zero, self.loggers = dm, {}, True, []
        self.global_step, self.saved = 0, []
        self.module = None

    def save_checkpoint(self, path, weights_only=False):
        self.saved.append((Path(path).name, self.module.cur_nimg))

    class strategy:  # noqa: N801 (Lightning's attribute name) one process: what save_on_every_rank asks of it
        @staticmethod
        def broadcast(obj, src=0):
            return obj


@pytest.mark.parametrize("best", ["pr0.006k1_full_precision@pixproj", "pr0.006k1_full_recall@pixproj",
                                  "fd6_full@pixproj"])
def test_best_checkpoint_follows_the_metric_direction(zip_data, tmp_path, best):
    """Three evaluations: dark low-contrast copies of the reals, the reals (precision and recall 1, FD ~0), other
    dark copies. Precision/recall are maximised and FD minimised: all pick the reals' evaluation, kimg 2 (a
    minimised precision or recall would keep the first)."""
    path, arrays = zip_data
    cb = MetricsCallback(["fid6_full", "pr0.006k1_full"], feature_extractor=PixelFeatures(),
                         pr_extractor=PixelFeatures(), batch_size=6, best_metric=best, dirpath=str(tmp_path),
                         progress=False)
    trainer = _Trainer(_dm(path, False))
    reals = _float(arrays)
    gens = [ReplayG(reals * 0.2 - 0.8), ReplayG(reals), ReplayG(reals.flip(0) * 0.25 - 0.75)]
    cb.setup(trainer, None, "fit")
    for i, G in enumerate(gens):
        trainer.module = SimpleNamespace(G_ema=G, cur_nimg=1000 * (i + 1), device=torch.device("cpu"))
        cb.evaluate(trainer, trainer.module)
    values = [h[best] for h in cb.history]
    want = max(values) if higher_is_better(best) else min(values)
    assert values.index(want) == 1 and len(set(values)) > 1
    assert cb.best == want and cb.best_kimg == 2.0 and trainer.saved == [("best.ckpt", 1000), ("best.ckpt", 2000)]


def test_direction_of_each_reported_name():
    higher = ["pr50k3_full_precision", "pr50k3_full_recall", "metrics/pr2k3_recall@vgg", "pr0.2k3_precision@pixproj"]
    lower = ["fid50k_full", "kid50k_full", "fd2k_full@pixproj", "kd64@x", "ppl2_wend", "metrics/ppl_zfull_2k"]
    assert all(higher_is_better(k) for k in higher) and not any(higher_is_better(k) for k in lower)
