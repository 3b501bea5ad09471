"""The metric runner end to end: replayed reals give FD 0 and PR 1, the real-data cache, and 2 gloo processes
giving exactly (bitwise) the single-process features and values."""

from __future__ import annotations

import logging
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metrics_testing import PixelDistance, PixelFeatures
from stylegan.data import ImageDataModule
from stylegan.metrics import MetricRunner, Networks, frechet_distance
from stylegan.metrics.extractors import to_rgb_uint8
from stylegan.metrics.generate import LabelSampler, generated_batches, run_sharded
from stylegan.networks import Generator


def _data(n: int = 64, use_labels: bool = False) -> ImageDataModule:
    dm = ImageDataModule(source="mnist", resolution=32, channels=1, max_images=n, use_labels=use_labels)
    dm.setup()
    return dm


def _G(c_dim: int = 0) -> Generator:
    torch.manual_seed(0)
    return Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=32, img_channels=1, channel_base=64,
                     channel_max=8, mapping_kwargs={"num_layers": 2}).eval()


class ReplayG(torch.nn.Module):
    """A 'generator' that returns the dataset's images in order (one process, batches in order)."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images, self.z_dim, self.c_dim, self.pos = images, 4, 0, 0

    def forward(self, z, c, truncation_psi=1.0, noise_mode="random"):
        out = self.images[self.pos : self.pos + len(z)]
        self.pos += len(z)
        return out


def test_replayed_reals_give_zero_frechet_distance_and_full_precision_recall():
    dm = _data(64)
    runner = MetricRunner(["fid64_full", "pr0.064k3_full"], Networks(features=PixelFeatures(), pr=PixelFeatures()),
                          batch_size=10, progress=False)
    values = runner.run(ReplayG(dm.real_images(64)), dm, "cpu")
    assert set(values) == {"fd64_full@pixproj", "pr0.064k3_full_precision@pixproj", "pr0.064k3_full_recall@pixproj"}
    assert abs(values["fd64_full@pixproj"]) < 1e-9
    assert values["pr0.064k3_full_precision@pixproj"] == values["pr0.064k3_full_recall@pixproj"] == 1.0


def test_frechet_value_equals_a_direct_computation_on_the_same_images():
    """FD from the runner == frechet_distance of features of the images generated batch by batch and of the first
    40 of the 64 reals (the official choice for a metric with fewer reals than the data)."""
    dm, G, net = _data(64), _G(), PixelFeatures()
    got = MetricRunner(["fid40"], Networks(features=net), batch_size=16, progress=False).run(G, dm, "cpu")
    imgs = torch.cat(list(generated_batches(G, 40, 16, 0, LabelSampler(None, 0), torch.device("cpu"))))
    fake = net(to_rgb_uint8(imgs)).double()
    real = net(to_rgb_uint8(dm.real_images(64)[:40])).double()
    expected = frechet_distance(real.mean(0), real.T.cov(), fake.mean(0), fake.T.cov())
    assert got["fd40@pixproj"] == pytest.approx(expected, rel=1e-9)


def test_real_statistics_are_cached_on_disk_and_computed_once(tmp_path, caplog):
    dm = _data(64)
    G = _G()

    def run(metrics):
        net = PixelFeatures()
        runner = MetricRunner(metrics, Networks(features=net), cache_dir=str(tmp_path), batch_size=16,
                              progress=False)
        return runner.run(G, dm, "cpu"), runner.extraction_calls, net.calls

    first, extracted, calls = run(["fid32_full"])
    assert extracted == 1 and calls == 2 + 4  # 32 fakes in 2 batches, 64 reals in 4
    (cached,) = tmp_path.glob("real-pixproj-stats-64-*.pt")
    again, extracted, calls = run(["fid32_full"])
    assert again == first and extracted == 0 and calls == 2  # only the fakes
    other, extracted, _ = run(["fid32"])  # 32 reals: another key
    assert other["fd32@pixproj"] != first["fd32_full@pixproj"]
    assert extracted == 1 and len(list(tmp_path.glob("real-pixproj-stats-*.pt"))) == 2
    _, extracted, _ = run(["kid32_full"])  # features, not stats: another key
    assert extracted == 1 and len(list(tmp_path.glob("real-pixproj-features-64-*.pt"))) == 1
    both, extracted, _ = run(["fid32_full", "kid32_full"])  # FD's statistics from the cached features
    assert extracted == 0 and both["fd32_full@pixproj"] == pytest.approx(first["fd32_full@pixproj"], rel=1e-9)
    cached.write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING):
        recomputed, extracted, _ = run(["fid32_full"])
    assert extracted == 1 and recomputed == first and "unusable" in caplog.text and str(cached) in caplog.text
    assert torch.load(cached, weights_only=True)["meta"]["count"] == 64


def test_evaluating_leaves_the_global_rng_and_the_generator_untouched():
    """Training resumes exactly with metrics on: no draw from the global RNG, G_ema's buffers unchanged (PPL
    redraws the constant noise of a copy)."""
    dm, G = _data(64), _G()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    rng = torch.get_rng_state()
    MetricRunner(["fid20", "ppl2_wend_8"], Networks(features=PixelFeatures(), distance=PixelDistance()),
                 batch_size=8, progress=False).run(G, dm, "cpu")
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())


def test_conditional_generator_draws_labels_from_the_dataset():
    dm = _data(5000, use_labels=True)
    G = _G(c_dim=dm.c_dim)
    seen = []
    hook = G.mapping.register_forward_hook(lambda m, args, out: seen.append(args[1].clone()))
    MetricRunner(["fid200"], Networks(features=PixelFeatures()), batch_size=50, progress=False).run(G, dm, "cpu")
    hook.remove()
    c = torch.cat(seen)
    assert c.shape == (200, 10) and torch.equal(c.sum(1), torch.ones(200))
    assert set(c.argmax(1).tolist()) == set(range(10))  # every digit class of the data appears


METRICS = ["fid50_full", "kid50", "pr0.05k3_full", "ppl2_wend_20"]


def _evaluate(cache_dir: str) -> tuple[dict[str, float], torch.Tensor]:
    dm, G = _data(64), _G()
    runner = MetricRunner(METRICS, Networks(PixelFeatures(), PixelFeatures(), PixelDistance()), cache_dir,
                          batch_size=8, progress=False)
    values = runner.run(G, dm, "cpu")
    labels = LabelSampler(None, 0)
    feats = run_sharded(lambda r, w: generated_batches(G, 50, 8, 0, labels, torch.device("cpu"), r, w),
                        lambda x: PixelFeatures()(to_rgb_uint8(x)),
                        50, 8, 16, torch.device("cpu"))
    return values, feats


def _worker(rank: int, world: int, init: str, out: str, cache_dir: str) -> None:
    for k in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(k, None)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        values, feats = _evaluate(cache_dir)
        torch.save({"values": values, "features": feats}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_give_exactly_the_single_process_result(tmp_path):
    """50 images in batches of 8: 7 batches, 4 on rank 0 and 3 on rank 1, the last one short."""
    # forked: the processes start with this one's imports (spawned ones spent ~5 s each importing them again)
    mp.start_processes(_worker, args=(2, f"file://{tmp_path / 'pg'}", str(tmp_path / "out"), str(tmp_path / "cache2")),
                       nprocs=2, join=True, start_method="fork")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: PPL's 1e-4 differences magnify any change of summation order
    try:
        single_values, single_feats = _evaluate(str(tmp_path / "cache1"))
    finally:
        torch.set_num_threads(threads)
    assert all(math.isfinite(v) for v in single_values.values()) and single_values["fd50_full@pixproj"] > 0
    for rank in range(2):
        got = torch.load(tmp_path / f"out.{rank}", weights_only=True)
        assert torch.equal(got["features"], single_feats), "gathered features differ from one process's"
        assert got["values"] == single_values  # bitwise: same floats
    written = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache2").glob("*.pt"))  # by rank 0
    # FD takes its statistics from the features PR needs (same network and count): no separate stats file
    assert written == ["real-pixproj-features-50", "real-pixproj-features-64"]
