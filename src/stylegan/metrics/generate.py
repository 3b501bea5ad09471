"""In-memory generation in batches, sharded over ranks, with results identical to a single process.

Batch ``b`` (images ``[b * batch_size, (b + 1) * batch_size)``) is drawn from its own seed
``batch_seed(seed, b)`` (latents, labels and the synthesis noise), so it does not matter which process computes
it: rank ``r`` of ``W`` computes batches ``r, r + W, ...``, and :func:`gather_batches` all-gathers them and puts
them back in global order. Labels are drawn uniformly from the dataset's labels, as the official metrics do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist

from ..utils.dist import rank_world


def batch_seed(seed: int, index: int) -> int:
    """A seed per (run seed, global batch index)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def batches_of_rank(num: int, batch_size: int, rank: int, world: int) -> list[tuple[int, int]]:
    """(global batch index, size) of the batches this rank computes."""
    count = math.ceil(num / batch_size)
    return [(b, min(batch_size, num - b * batch_size)) for b in range(rank, count, world)]


class LabelSampler:
    """One-hot labels drawn uniformly from the dataset's labels (``[n, 0]`` when unconditional)."""

    def __init__(self, labels: np.ndarray | None, c_dim: int) -> None:
        if c_dim and (labels is None or len(labels) == 0):
            raise ValueError(f"a generator with c_dim={c_dim} needs dataset labels (data.use_labels=true)")
        self.labels = None if not c_dim else torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.c_dim = c_dim

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        c = torch.zeros(n, self.c_dim)
        if self.c_dim:
            picks = self.labels[torch.randint(len(self.labels), (n,), generator=generator)]
            c[torch.arange(n), picks] = 1
        return c


def _forked_rng(device: torch.device):
    """Restore the global RNG (CPU and ``device``) afterwards: evaluating must not change training's stream."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device], device_type=device.type)


@torch.no_grad()
def generated_batches(G: torch.nn.Module, num: int, batch_size: int, seed: int, labels: LabelSampler,
                      device: torch.device, rank: int = 0, world: int = 1,
                      truncation_psi: float = 1.0) -> Iterator[torch.Tensor]:
    """This rank's batches of generated images (float, nominally [-1, 1]); noise_mode 'random'."""
    for b, n in batches_of_rank(num, batch_size, rank, world):
        s = batch_seed(seed, b)
        g = torch.Generator().manual_seed(s)
        z = torch.randn([n, G.z_dim], generator=g).to(device)
        c = labels.sample(n, g).to(device)
        with _forked_rng(device):
            torch.manual_seed(s)  # the synthesis noise
            img = G(z, c, truncation_psi=truncation_psi, noise_mode="random")
        yield img


def gather_batches(local: list[torch.Tensor], num: int, batch_size: int, dim: int, device: torch.device,
                   rank: int = 0, world: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """All ranks' per-batch rows ``[size, dim]`` (from :func:`batches_of_rank`) in global order, on every rank,
    on the CPU. Single process: a concatenation."""
    mine = batches_of_rank(num, batch_size, rank, world)
    if len(local) != len(mine):
        raise ValueError(f"rank {rank} has {len(local)} batches, expected {len(mine)}")
    if world == 1:
        return torch.cat(local).to("cpu", dtype) if local else torch.empty(0, dim, dtype=dtype)
    rounds = math.ceil(math.ceil(num / batch_size) / world)
    padded = torch.zeros(rounds * batch_size, dim, dtype=dtype, device=device)
    for i, x in enumerate(local):
        padded[i * batch_size : i * batch_size + len(x)] = x.to(device)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    out = []
    for b, n in batches_of_rank(num, batch_size, 0, 1):
        i = b // world
        out.append(parts[b % world][i * batch_size : i * batch_size + n])
    return torch.cat(out).cpu()


def run_sharded(produce: Callable[[int, int], Iterator[torch.Tensor]], compute: Callable[[torch.Tensor], torch.Tensor],
                num: int, batch_size: int, dim: int, device: torch.device,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``compute`` over the batches ``produce(rank, world)`` yields on this rank, gathered in global order."""
    rank, world = rank_world()
    local = [compute(x).reshape(len(x), dim).to(dtype) for x in produce(rank, world)]
    return gather_batches(local, num, batch_size, dim, device, rank, world, dtype)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is True on some rank."""
    _, world = rank_world()
    if world == 1:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
