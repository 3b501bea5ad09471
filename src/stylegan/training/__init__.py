"""Training: the StyleGAN2 LightningModule, its hyper-parameters and callbacks."""

from .callbacks import AtomicCheckpointIO, KimgCheckpoint, SampleGrid
from .config import LossConfig, OptimConfig
from .module import StyleGAN2Module

__all__ = ["AtomicCheckpointIO", "KimgCheckpoint", "LossConfig", "OptimConfig", "SampleGrid", "StyleGAN2Module"]
