"""Evaluation metrics: FID, KID, precision/recall, PPL of G_ema (official definitions, pluggable networks)."""

from .callback import MetricsCallback
from .extractors import FeatureExtractor, MetricSetupError, PerceptualDistance, build_extractor, build_lpips
from .frechet import FeatureStats, frechet_distance
from .kid import kernel_inception_distance
from .names import MetricSpec, parse_metric, parse_metrics
from .precision_recall import precision_recall
from .runner import MetricRunner, Networks, build_networks

__all__ = [
    "FeatureExtractor",
    "FeatureStats",
    "MetricRunner",
    "MetricSetupError",
    "MetricSpec",
    "MetricsCallback",
    "Networks",
    "PerceptualDistance",
    "build_extractor",
    "build_lpips",
    "build_networks",
    "frechet_distance",
    "kernel_inception_distance",
    "parse_metric",
    "parse_metrics",
    "precision_recall",
]
