"""Which way a reported metric improves: one rule for best.ckpt, early stopping and the sweep report. No torch: the
report reads it without loading the metrics."""

from __future__ import annotations


def higher_is_better(key: str) -> bool:
    """Direction of a reported value (``metrics/`` prefix and ``@network`` suffix allowed): precision and recall
    (Kynkaanniemi et al. 2019) and class accuracy are better when higher; FID, KID and PPL are distances, better
    when lower."""
    stem = str(key).rsplit("/", 1)[-1].split("@", 1)[0]
    return stem.startswith("class_acc") or (stem.startswith("pr") and stem.endswith(("_precision", "_recall")))
