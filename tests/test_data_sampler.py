"""InfiniteSampler determinism, DDP shards and resume; exact DataModule resume, also through Lightning."""

from __future__ import annotations

import itertools
from pathlib import Path

import lightning as L
import pytest
import torch

from data_factory import image_folder
from stylegan.data import DatasetError, ImageDataModule, InfiniteSampler


def take(sampler: InfiniteSampler, n: int) -> list[int]:
    return list(itertools.islice(iter(sampler), n))


def test_deterministic_given_seed_and_each_epoch_is_a_permutation() -> None:
    a, b, c = InfiniteSampler(10, seed=1), InfiniteSampler(10, seed=1), InfiniteSampler(10, seed=2)
    first = take(a, 30)
    assert first == take(b, 30) and first != take(c, 30)
    for e in range(3):
        assert sorted(first[10 * e : 10 * e + 10]) == list(range(10))
    assert first[:10] != first[10:20]  # a new order each epoch
    assert take(InfiniteSampler(5, shuffle=False), 7) == [0, 1, 2, 3, 4, 0, 1]


def test_resume_from_state_dict_continues_the_same_indices() -> None:
    a = InfiniteSampler(7, seed=3)
    take(a, 11)  # into the second epoch
    state = a.state_dict()
    assert state == {"seed": 3, "epoch": 1, "position": 4, "num_samples": 7, "shuffle": True}
    b = InfiniteSampler(7, seed=0)
    b.load_state_dict(state)
    assert take(b, 20) == take(a, 20)


@pytest.mark.parametrize("n", [10, 11])
def test_ddp_shards_are_disjoint_and_cover_the_dataset(n: int) -> None:
    r0, r1 = (
        InfiniteSampler(n, rank=0, world_size=2, seed=5),
        InfiniteSampler(n, rank=1, world_size=2, seed=5),
    )
    s0, s1 = take(r0, (n + 1) // 2), take(r1, n // 2)
    assert not set(s0) & set(s1)
    assert sorted(s0 + s1) == list(range(n))
    # The shards interleave the single-process order of the same seed.
    single = take(InfiniteSampler(n, seed=5), n)
    assert s0 == single[0::2] and s1 == single[1::2]


def test_resume_with_another_world_size() -> None:
    one = InfiniteSampler(12, seed=4)
    take(one, 6)
    ranks = [InfiniteSampler(12, rank=r, world_size=3) for r in range(3)]
    for r in ranks:
        r.load_state_dict(one.state_dict())
    got = [take(r, 2) for r in ranks]
    nxt = take(one, 6)
    assert [g[0] for g in got] + [g[1] for g in got] == nxt[:3] + nxt[3:]


def test_state_for_another_dataset_size_is_refused() -> None:
    with pytest.raises(DatasetError, match="covered 10 samples but the dataset now has 12"):
        InfiniteSampler(12).load_state_dict(InfiniteSampler(10).state_dict())


def _module(root: Path, **kw) -> ImageDataModule:
    return ImageDataModule(str(root), resolution=8, channels=3, batch_size=3, seed=7, **kw)


def _first(dm: ImageDataModule, n: int) -> list[torch.Tensor]:
    return [img for img, _ in itertools.islice(iter(dm.train_dataloader()), n)]


def test_batch_order_does_not_depend_on_num_workers(tmp_path: Path) -> None:
    image_folder(tmp_path / "imgs", n=7, size=8)
    plain = _first(_module(tmp_path / "imgs"), 6)
    workers = _first(_module(tmp_path / "imgs", num_workers=2), 6)
    assert all(torch.equal(a, b) for a, b in zip(plain, workers, strict=True))


def test_datamodule_resume_after_consumed_batches(tmp_path: Path) -> None:
    image_folder(tmp_path / "imgs", n=7, size=8)
    a = _module(tmp_path / "imgs", xflip=True)
    reference = _first(a, 8)
    a.mark_consumed(5)  # training used 5 batches (the loader may have prefetched more)
    state = a.state_dict()
    assert state["sampler"]["epoch"] * 14 + state["sampler"]["position"] == 15
    b = _module(tmp_path / "imgs", xflip=True)
    b.load_state_dict(state)  # before setup: applied when setup runs
    resumed = _first(b, 3)
    assert all(torch.equal(x, y) for x, y in zip(resumed, reference[5:], strict=True))


class _Recorder(L.LightningModule):
    """Records every training batch; one dummy parameter so the optimizer has something to step."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.seen.append(batch[0].clone())
        return self.w * batch[0].mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(
    dm: ImageDataModule, steps: int, ckpt: Path | None = None, save: Path | None = None
) -> list[torch.Tensor]:
    model = _Recorder()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm, ckpt_path=None if ckpt is None else str(ckpt))
    if save is not None:
        trainer.save_checkpoint(save)
    return model.seen


@pytest.mark.filterwarnings("ignore")
def test_lightning_checkpoint_resume_is_exact_with_workers(tmp_path: Path) -> None:
    image_folder(tmp_path / "imgs", n=5, size=8)
    straight = _fit(_module(tmp_path / "imgs", num_workers=2), 6)
    first = _fit(_module(tmp_path / "imgs", num_workers=2), 3, save=tmp_path / "half.ckpt")
    ckpt = torch.load(tmp_path / "half.ckpt", weights_only=False)
    saved = ckpt["ImageDataModule"]["sampler"]
    assert saved["epoch"] * 5 + saved["position"] == 9  # 3 batches of 3 consumed, not the prefetched ones
    second = _fit(_module(tmp_path / "imgs", num_workers=2), 6, ckpt=tmp_path / "half.ckpt")
    assert len(straight) == 6 and len(first) == 3 and len(second) == 3
    assert all(torch.equal(a, b) for a, b in zip(first + second, straight, strict=True))


def _schedule(g: int) -> int | None:
    """A global minibatch that changes along the stream (module level: picklable for the loader's workers)."""
    return 4 if g < 10 else 2 if g < 20 else None


def _positions(sizes: list[int]) -> list[int]:
    return [sum(sizes[:k]) for k in range(len(sizes))]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_scheduled_batches_follow_the_stream_and_resume(tmp_path: Path, num_workers: int) -> None:
    """``batch_schedule`` (progressive growing's per-resolution minibatch) sizes each batch from the images before
    it: together the batches are the sampler's order with no image skipped or repeated, for any ``num_workers``,
    and a resume after consumed batches of different sizes continues them exactly."""
    image_folder(tmp_path / "imgs", n=7, size=8)
    dm = _module(tmp_path / "imgs", xflip=True, num_workers=num_workers)
    dm.batch_schedule = _schedule
    batches = _first(dm, 10)
    sizes = [len(b) for b in batches]
    assert all(n == (_schedule(g) or 3) for n, g in zip(sizes, _positions(sizes), strict=True))
    assert {4, 2, 3} <= set(sizes)  # all three regimes reached: 4 below 10 images, 2 below 20, then batch_size 3
    one_by_one = _first(ImageDataModule(str(tmp_path / "imgs"), 8, 3, batch_size=1, seed=7, xflip=True), sum(sizes))
    assert torch.equal(torch.cat(batches), torch.cat(one_by_one))
    assert dm.batch_sizes().batches(0, 23) == sum(1 for g in _positions(sizes) if g < 23)
    for n in sizes[:5]:
        dm.mark_consumed(1, n)
    resumed = _module(tmp_path / "imgs", xflip=True, num_workers=num_workers)
    resumed.batch_schedule = _schedule
    resumed.load_state_dict(dm.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(_first(resumed, 5), batches[5:], strict=True))


def test_scheduled_batches_split_over_ranks(tmp_path: Path) -> None:
    """Under DDP the schedule's global minibatch is split: rank r of 2 takes every second image of the
    single-process batch, from the same position."""
    from stylegan.data.stream import BatchSizes, BatchStream

    image_folder(tmp_path / "imgs", n=9, size=8)
    dm = _module(tmp_path / "imgs")
    dm.setup()
    state = dm.sampler.state_dict()

    def stream(rank: int, world: int) -> list[torch.Tensor]:
        s = BatchStream(dm.dataset, state, rank, world, BatchSizes(6 // world, world, _schedule), 0)
        return [img for img, _ in itertools.islice(iter(s), 8)]

    single, r0, r1 = stream(0, 1), stream(0, 2), stream(1, 2)
    assert [len(b) for b in single] == [2 * len(b) for b in r0] == [2 * len(b) for b in r1]
    assert all(torch.equal(s[0::2], a) and torch.equal(s[1::2], b) for s, a, b in zip(single, r0, r1, strict=True))
