"""Evaluation metrics (FID and friends). Issue 5 is in progress: only the Frechet distance core is here yet."""

from .frechet import FeatureStats, frechet_distance

__all__ = ["FeatureStats", "frechet_distance"]
