"""Compute a list of metrics for a generator against a dataset: shared by the training callback and evaluate.

Generated features are computed once per (network, count) and shared by the metrics that need them (e.g.
``fid50k_full`` and ``kid50k_full``); real features/statistics come from the on-disk cache or are computed once
(all ranks extract a share, rank 0 writes the file). Every rank ends with the same numbers. Which reals: the
official choice (see :mod:`stylegan.metrics.reals`): flips counted with ``data.xflip``, the first ``max_real`` items.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .cache import cache_path, load_cached, save_cached
from .class_accuracy import check_classifier, class_accuracy
from .extractors import MetricSetupError, extract_features, resolve_distance, resolve_extractor, standard, to_rgb_uint8
from .frechet import FeatureStats, frechet_distance
from .generate import LabelSampler, any_rank, generated_batches, rank_world, run_sharded
from .kid import kernel_inception_distance
from .names import MetricSpec, parse_metrics
from .ppl import path_distances, trimmed_mean
from .precision_recall import precision_recall
from .reals import check_subset, num_real_items, real_batches, real_indices, subset_label

log = logging.getLogger(__name__)


# metric kind -> the Networks field it runs on (the one table)
FIELD_OF_KIND = {"fid": "features", "kid": "features", "pr": "pr", "ppl": "distance", "class_acc": "features"}


@dataclass
class Networks:
    """The networks the metrics use: ``features`` (FID, KID), ``pr`` (precision/recall), ``distance`` (PPL)."""

    features: nn.Module | None = None
    pr: nn.Module | None = None
    distance: nn.Module | None = None

    def for_kind(self, kind: str) -> nn.Module | None:
        return getattr(self, FIELD_OF_KIND[kind])


def build_networks(specs: list[MetricSpec], feature_extractor: Any = "inception",
                   feature_extractor_weights_path: str | None = None, pr_extractor: Any = "vgg16",
                   pr_extractor_weights_path: str | None = None, ppl_distance: Any = "lpips") -> Networks:
    """Build only what ``specs`` need; raises :class:`MetricSetupError` (one line) when something is missing."""
    fields = {FIELD_OF_KIND[s.kind] for s in specs}
    nets = Networks()
    if "features" in fields:
        nets.features = resolve_extractor(feature_extractor, feature_extractor_weights_path,
                                          "metrics.feature_extractor_weights_path")
    if "pr" in fields:
        nets.pr = resolve_extractor(pr_extractor, pr_extractor_weights_path, "metrics.pr_extractor_weights_path")
    if "distance" in fields:
        nets.distance = resolve_distance(ppl_distance)
    return nets


def _stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = FeatureStats(features.shape[1])
    s.update(features)
    return s.mean_cov()


class MetricRunner:
    """Runs ``metrics`` (names, see :mod:`stylegan.metrics.names`) with ``networks``; ``cache_dir`` None
    disables the disk cache. ``batch_size`` images per generator/extractor call (per rank). ``real_subset``: the
    reals of a metric that uses fewer than all, 'first' (official) or 'random' (see :mod:`stylegan.metrics.reals`)."""

    def __init__(self, metrics: list[str], networks: Networks, cache_dir: str | None = None, batch_size: int = 64,
                 seed: int = 0, progress: bool = True, real_subset: str = "first") -> None:
        self.specs = parse_metrics(metrics)
        self.real_subset = check_subset(real_subset)
        self.networks, self.batch_size, self.seed, self.progress = networks, int(batch_size), int(seed), progress
        self.cache_dir = None if cache_dir in (None, "") else Path(cache_dir)
        self._real: dict[tuple, dict[str, torch.Tensor]] = {}
        self.extraction_calls = 0  # real-image extractions actually run (the cache test counts them)
        for s in self.specs:
            if networks.for_kind(s.kind) is None:
                raise MetricSetupError(f"metric {s.name!r} needs a network that was not built")

    # ------------------------------------------------------------------ names
    def keys(self) -> list[str]:
        out = []
        for s in self.specs:
            net = self._net(s)
            out += s.keys(net.name, standard(net))
        return out

    def _net(self, spec: MetricSpec) -> nn.Module:
        return self.networks.for_kind(spec.kind)

    # ------------------------------------------------------------------ real data
    @staticmethod
    def _count(dm, num: int | None) -> int:
        total = num_real_items(dm)
        return total if num is None else min(int(num), total)

    def real(self, dm, net: nn.Module, num: int | None, kind: str, device: torch.device) -> dict[str, torch.Tensor]:
        """Real features (``kind='features'``) or statistics (``'stats'``) of ``min(num, all)`` items (with
        ``data.xflip`` the mirrored copies are items too)."""
        count, total = self._count(dm, num), num_real_items(dm)
        xflip = bool(getattr(dm, "xflip", False))
        meta = {"fingerprint": dm.fingerprint(), "resolution": int(dm.resolution), "extractor": net.name,
                "count": int(count), "kind": kind, "xflip": xflip, "subset": subset_label(total, count,
                                                                                       self.real_subset)}
        if getattr(net, "version", None) is not None:  # e.g. a hash of the weights (stylegan.metrics.judges)
            meta["extractor_version"] = str(net.version)
        memo = tuple(sorted(meta.items()))
        if memo in self._real:
            return self._real[memo]
        keys = ("features",) if kind == "features" else ("mu", "cov")
        path = cache_path(self.cache_dir, meta) if self.cache_dir is not None else None
        found = load_cached(path, meta, keys) if path is not None else None
        if any_rank(found is None, device):
            indices = real_indices(total, count, self.real_subset)

            def produce(rank: int, world: int):
                return real_batches(dm, indices, self.batch_size, rank, world)

            self.extraction_calls += 1
            rank, _ = rank_world()
            feats = self._extract(net, produce, count, device, f"real features ({net.name})")
            found = {"features": feats} if kind == "features" else dict(zip(("mu", "cov"), _stats(feats),
                                                                            strict=True))
            if path is not None and rank == 0:
                save_cached(path, meta, found)
        self._real[memo] = found
        return found

    def _extract(self, net: nn.Module, produce, num: int, device: torch.device, desc: str) -> torch.Tensor:
        rank, _ = rank_world()
        dim = int(net.feature_dim)
        start, n = time.perf_counter(), [0]

        def compute(batch: torch.Tensor) -> torch.Tensor:
            n[0] += len(batch)
            return extract_features(net, [batch], desc=desc, progress=False, device=device)

        with tqdm(total=num, desc=desc, unit="img", disable=not self.progress or rank != 0, leave=False) as bar:
            def counted(r: int, w: int):
                for x in produce(r, w):
                    yield x
                    bar.update(len(x) * w)

            out = run_sharded(counted, compute, num, self.batch_size, dim, device)
        if self.progress and rank == 0:
            log.info("%s: %d images in %.1fs (%.1f img/s on this rank)", desc, num, time.perf_counter() - start,
                     n[0] / max(time.perf_counter() - start, 1e-9))
        return out

    # ------------------------------------------------------------------ generated data
    def _generated(self, G: nn.Module, dm, net: nn.Module, num: int, device: torch.device) -> torch.Tensor:
        labels = LabelSampler(getattr(dm.store, "labels", None), G.c_dim)

        def produce(rank: int, world: int):
            return generated_batches(G, num, self.batch_size, self.seed, labels, device, rank, world)

        return self._extract(net, produce, num, device, f"generated features ({net.name})")

    @torch.no_grad()
    def run(self, G: nn.Module, dm, device: torch.device | str | None = None) -> dict[str, float]:
        """All metric values, keyed by :meth:`keys` names. ``dm``: a set-up ImageDataModule (or alike)."""
        device = torch.device(device) if device is not None else next(G.parameters()).device
        for net in (self.networks.features, self.networks.pr, self.networks.distance):
            if net is not None:
                net.to(device)
        dm.setup()
        was_training = G.training
        G.eval()
        gen: dict[tuple, torch.Tensor] = {}
        results: dict[str, float] = {}
        # FID takes its real statistics from the real features when KID/PR need those anyway (one extraction)
        need_features = {(self._net(s).name, self._count(dm, s.num_real))
                         for s in self.specs if s.kind in ("kid", "pr")}
        try:
            for s in self.specs:
                net = self._net(s)
                keys = s.keys(net.name, standard(net))
                if s.kind == "ppl":
                    results[keys[0]] = self._ppl(G, dm, s, device)
                    continue
                if s.kind == "class_acc":
                    check_classifier(G, net, s.name)
                    results[keys[0]] = class_accuracy(G, net, s.num_gen, self.batch_size, self.seed, device)
                    continue
                if (net.name, s.num_gen) not in gen:
                    gen[(net.name, s.num_gen)] = self._generated(G, dm, net, s.num_gen, device)
                fake = gen[(net.name, s.num_gen)]
                if s.kind == "fid":
                    if (net.name, self._count(dm, s.num_real)) in need_features:
                        mu, cov = _stats(self.real(dm, net, s.num_real, "features", device)["features"])
                    else:
                        real = self.real(dm, net, s.num_real, "stats", device)
                        mu, cov = real["mu"], real["cov"]
                    results[keys[0]] = frechet_distance(mu, cov, *_stats(fake))
                elif s.kind == "kid":
                    real = self.real(dm, net, s.num_real, "features", device)["features"]
                    results[keys[0]] = kernel_inception_distance(real, fake, seed=self.seed)
                else:
                    real = self.real(dm, net, s.num_real, "features", device)["features"]
                    precision, recall = precision_recall(real.to(device), fake.to(device), k=s.k)
                    results[keys[0]], results[keys[1]] = precision, recall
        finally:
            G.train(was_training)
        return results

    def _ppl(self, G: nn.Module, dm, spec: MetricSpec, device: torch.device) -> float:
        labels = LabelSampler(getattr(dm.store, "labels", None), G.c_dim)
        distance = self.networks.distance

        def produce(rank: int, world: int):
            return path_distances(G, distance, spec.num_gen, self.batch_size, self.seed, labels, device,
                                  spec.space, spec.sampling, spec.epsilon, spec.crop, rank, world)

        d = run_sharded(produce, lambda x: x, spec.num_gen, self.batch_size, 1, device, torch.float64)
        return trimmed_mean(d)


__all__ = ["MetricRunner", "Networks", "build_networks", "to_rgb_uint8"]
