"""StyleGAN2 lab: the StyleGAN2 paper as a PyTorch Lightning + Hydra research framework."""

__version__ = "0.1.0"
