"""Training: the StyleGAN2 LightningModule, its hyper-parameters and callbacks."""

from .callbacks import AtomicCheckpointIO, KimgCheckpoint, KimgProgressBar, SampleGrid
from .config import LossConfig, OptimConfig
from .module import StyleGAN2Module

__all__ = [
    "AtomicCheckpointIO",
    "KimgCheckpoint",
    "KimgProgressBar",
    "LossConfig",
    "OptimConfig",
    "SampleGrid",
    "StyleGAN2Module",
]
