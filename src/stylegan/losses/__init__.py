"""StyleGAN2 objectives as pure functions over network outputs (no module state)."""

from .logistic import discriminator_loss, generator_loss
from .path_length import path_length_noise, path_length_penalty, path_lengths, path_lengths_of
from .precision import at_least_float32
from .r1 import r1_loss, r1_penalty, r1_penalty_of
from .wgan import gradient_penalty, interpolates, wgan_discriminator_loss, wgan_generator_loss

__all__ = [
    "at_least_float32",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "interpolates",
    "path_length_noise",
    "path_length_penalty",
    "path_lengths",
    "path_lengths_of",
    "r1_loss",
    "r1_penalty",
    "r1_penalty_of",
    "wgan_discriminator_loss",
    "wgan_generator_loss",
]
