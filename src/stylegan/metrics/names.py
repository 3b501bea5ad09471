"""Metric names, as in the official code (stylegan2-ada-pytorch ``metrics/metric_main.py``), with the counts free.

* ``fid{N}[_full]``: FID of N generated images against N reals, or ``_full`` all reals (``fid50k_full``).
* ``kid{N}[_full]``: KID, same counts (``kid50k_full``; the official ``_full`` caps the reals at 1M); 100 subsets
  of at most 1000 features.
* ``pr{N}{k}[_full]``: precision and recall with k-NN manifolds (``pr50k3_full``: 50k fakes, all reals, k=3;
  the official ``_full`` caps the reals at 200k).
* ``ppl[2]_{w|z}{end|full}[_{N}]``: perceptual path length of N pairs (default 50k) in W or Z, at path ends
  or along the whole path; ``ppl2_wend`` is the paper's (no crop), ``ppl_*`` are StyleGAN1's (central crop).
* ``class_acc{N}``: not official; for a conditional G, the fraction of N samples (classes in turn) that the feature
  network's classifier (a module with ``classify``, e.g. ``mnist_lenet``) assigns to the requested class. Always
  reported with ``@<network>``; higher is better.

``N`` is a count with an optional ``k`` (x1000): ``50k``, ``2k``, ``0.2k``, ``500``; for ``pr`` the ``k`` is
required (``pr0.2k3``), since the neighbourhood size follows it.

A value is reported under the official name only when the standard network produced it; otherwise 'fid'/'kid'
become 'fd'/'kd' and ``@<extractor name>`` is appended (``fd2k_full@digitnet``), so that a number from another
network is never called FID. :func:`higher_is_better` tells which way each value improves (``best.ckpt``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..utils.direction import higher_is_better
from .extractors import MetricSetupError

_COUNT = r"(\d+(?:\.\d+)?k|\d+)"
_PATTERNS = {
    "fid": re.compile(rf"^fid{_COUNT}(_full)?$"),
    "kid": re.compile(rf"^kid{_COUNT}(_full)?$"),
    "pr": re.compile(r"^pr(\d+(?:\.\d+)?k)(\d+)(_full)?$"),
    "ppl": re.compile(r"^ppl(2?)_([wz])(end|full)(?:_(\d+(?:\.\d+)?k|\d+))?$"),
    "class_acc": re.compile(rf"^class_acc{_COUNT}$"),
}
FORMS = ("fid{N}[_full], kid{N}[_full], pr{N}k{K}[_full], ppl[2]_{w|z}{end|full}[_{N}], class_acc{N} "
         "(N like 50k, 2k, 500)")
PR_FULL_MAX_REAL = 200_000  # official pr50k3_full
KID_FULL_MAX_REAL = 1_000_000  # official kid50k_full


@dataclass(frozen=True)
class MetricSpec:
    """One parsed metric. ``num_real`` None: every real image. PPL: ``num_gen`` pairs."""

    name: str
    kind: str
    num_gen: int
    num_real: int | None = None
    k: int = 3
    space: str = "w"
    sampling: str = "end"
    crop: bool = False
    epsilon: float = 1e-4

    def keys(self, network: str, is_standard: bool) -> list[str]:
        """The names the values are reported under (two for precision/recall)."""
        base = self.name
        if self.kind == "class_acc":
            return [f"{base}@{network}"]
        if not is_standard:
            base = {"fid": "fd", "kid": "kd"}.get(self.kind, self.kind) + base[len(self.kind):] + f"@{network}"
        if self.kind != "pr":
            return [base]
        if is_standard:
            return [f"{base}_precision", f"{base}_recall"]
        stem, at = base.split("@", 1)
        return [f"{stem}_precision@{at}", f"{stem}_recall@{at}"]


def is_better(value: float, best: float | None, key: str, min_delta: float = 0.0, higher: bool | None = None) -> bool:
    """Whether ``value`` improves on ``best`` (None: nothing yet) by more than ``min_delta`` for ``key``'s direction
    (``higher``: a direction set otherwise, e.g. early stopping's mode); ties do not (Lightning's EarlyStopping)."""
    if best is None:
        return True
    higher = higher_is_better(key) if higher is None else higher
    return value - min_delta > best if higher else value + min_delta < best


def _count(text: str, name: str) -> int:
    value = float(text[:-1]) * 1000 if text.endswith("k") else float(text)
    if value < 2 or value != int(value):
        raise MetricSetupError(f"metric {name!r}: the count {text!r} must be a whole number >= 2")
    return int(value)


def parse_metric(name: str) -> MetricSpec:
    """A :class:`MetricSpec` from a name; unknown names raise :class:`MetricSetupError` listing the forms."""
    name = str(name).strip()
    for kind, pattern in _PATTERNS.items():
        m = pattern.match(name)
        if not m:
            continue
        if kind == "class_acc":
            return MetricSpec(name, kind, num_gen=_count(m.group(1), name), num_real=0)
        if kind in ("fid", "kid"):
            n = _count(m.group(1), name)
            full = None if kind == "fid" else KID_FULL_MAX_REAL  # official fid50k_full: every real item
            return MetricSpec(name, kind, num_gen=n, num_real=full if m.group(2) else n)
        if kind == "pr":
            n, k = _count(m.group(1), name), int(m.group(2))
            if k < 1:
                raise MetricSetupError(f"metric {name!r}: the neighbourhood size must be >= 1")
            return MetricSpec(name, kind, num_gen=n, num_real=PR_FULL_MAX_REAL if m.group(3) else n, k=k)
        v2, space, sampling, count = m.groups()
        n = _count(count, name) if count else 50_000
        return MetricSpec(name, kind, num_gen=n, space=space, sampling=sampling, crop=not v2)
    raise MetricSetupError(f"unknown metric {name!r}; valid forms: {FORMS}")


def parse_metrics(names) -> list[MetricSpec]:
    if isinstance(names, str):
        names = [names]
    specs = [parse_metric(n) for n in names]
    dupes = sorted({s.name for s in specs if [t.name for t in specs].count(s.name) > 1})
    if dupes:
        raise MetricSetupError(f"metric(s) listed twice: {dupes}")
    return specs
