"""StyleGAN / StyleGAN2 networks as plain ``nn.Module``s (no Lightning needed)."""

from .discriminator import Discriminator
from .generator import Generator
from .mapping import MappingNetwork
from .style_blocks import NOISE_MODES, STYLE_BLOCKS
from .synthesis import ARCHITECTURES, SynthesisNetwork

__all__ = [
    "ARCHITECTURES",
    "NOISE_MODES",
    "STYLE_BLOCKS",
    "Discriminator",
    "Generator",
    "MappingNetwork",
    "SynthesisNetwork",
]
