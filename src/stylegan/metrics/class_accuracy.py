"""``class_acc{N}``: how often a conditional G_ema draws the class it was asked for, judged by a classifier.

Not an official StyleGAN2 metric (the paper's class-conditional results use FID); a cheap check of the labels'
effect on CPU. Sample ``i`` asks for class ``i mod c_dim`` (classes in turn, so every class has N / c_dim samples),
drawn by :func:`stylegan.metrics.generate.generated_batches` (its batch seeds' latents and synthesis noise); the
classifier's arg-max is compared with the request. The value is the mean over classes of the per-class fraction
(equal to the overall fraction when ``c_dim`` divides N). Sharded over ranks like the other metrics.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .extractors import MetricSetupError, to_rgb_uint8
from .generate import batches_of_rank, generated_batches, run_sharded


def check_classifier(G: nn.Module, net: nn.Module, metric: str) -> None:
    """``metric`` needs a conditional G whose labels are the classifier's classes; one line otherwise."""
    c_dim = int(getattr(G, "c_dim", 0))
    if not callable(getattr(net, "classify", None)):
        raise MetricSetupError(f"metric {metric!r} needs a feature network with a classifier (classify(), e.g. "
                               f"stylegan.metrics.judges.MnistLeNet); {getattr(net, 'name', net)!r} has none")
    if c_dim == 0:
        raise MetricSetupError(f"metric {metric!r} needs a conditional generator (data.use_labels=true); this one "
                               "has c_dim=0: drop the metric or train with labels")
    classes = int(getattr(net, "num_classes", 0))
    if classes != c_dim:
        raise MetricSetupError(f"metric {metric!r}: the generator has c_dim={c_dim} but {net.name} knows {classes} "
                               "classes; use a classifier for this data or drop the metric (metrics=cpu: "
                               "callbacks.metrics.conditional_metrics=[])")


def requested(start: int, n: int, c_dim: int) -> torch.Tensor:
    """The classes asked for by samples ``start .. start + n - 1``."""
    return torch.arange(start, start + n) % c_dim


class _InTurn:
    """The labels :func:`generated_batches` gives this rank's batches (in their order): sample ``i`` asks for class
    ``i mod c_dim``. Not random: the batch's generator is not drawn from."""

    def __init__(self, batches: list[tuple[int, int]], batch_size: int, c_dim: int) -> None:
        self.starts, self.c_dim = iter([b * batch_size for b, _ in batches]), c_dim

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.nn.functional.one_hot(requested(next(self.starts), n, self.c_dim), self.c_dim).to(torch.float32)


@torch.no_grad()
def _hits(G: nn.Module, net: nn.Module, num: int, batch_size: int, seed: int, device: torch.device, rank: int,
          world: int) -> Iterator[torch.Tensor]:
    batches = batches_of_rank(num, batch_size, rank, world)
    images = generated_batches(G, num, batch_size, seed, _InTurn(batches, batch_size, G.c_dim), device, rank, world)
    for (b, n), img in zip(batches, images, strict=True):
        want = requested(b * batch_size, n, G.c_dim).to(device)
        yield (net.classify(to_rgb_uint8(img)).argmax(1) == want).to(torch.float64).unsqueeze(1)


def class_accuracy(G: nn.Module, net: nn.Module, num: int, batch_size: int, seed: int,
                   device: torch.device) -> float:
    """Mean over classes of the fraction of ``num`` samples classified as the requested class."""
    hits = run_sharded(lambda r, w: _hits(G, net, num, batch_size, seed, device, r, w), lambda x: x, num,
                       batch_size, 1, device, torch.float64)[:, 0]
    want = requested(0, num, G.c_dim)
    per_class = [hits[want == k].mean() for k in range(G.c_dim) if (want == k).any()]
    return float(torch.stack(per_class).mean())
