"""DiffAugment: each output is an integer translation (edge-replicated) of its input with one cutout square;
gradients (also R1's double backward) flow through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylegan.losses import r1_penalty
from stylegan.networks import Discriminator
from stylegan.training.augment import DiffAugment


def _shifted(img: np.ndarray, dy: int, dx: int, p: int) -> np.ndarray:
    padded = np.pad(img, [(0, 0), (p, p), (p, p)], mode="edge")
    H, W = img.shape[1:]
    return padded[:, p + dy : p + dy + H, p + dx : p + dx + W]


def test_translation_is_an_edge_padded_integer_shift():
    torch.manual_seed(0)
    x = torch.randn(16, 3, 16, 16, dtype=torch.float64)
    out = DiffAugment(translation=0.125, cutout=0)(x).numpy()
    p = 2
    shifts = []
    for n in range(16):
        hits = [(dy, dx) for dy in range(-p, p + 1) for dx in range(-p, p + 1)
                if np.array_equal(out[n], _shifted(x[n].numpy(), dy, dx, p))]
        assert len(hits) == 1, f"sample {n} is not a single shift of its input"
        shifts.append(hits[0])
    assert len(set(shifts)) > 5  # drawn independently per sample


def test_cutout_blanks_one_square_per_sample():
    torch.manual_seed(1)
    x = torch.rand(32, 2, 16, 16) + 1  # no pixel equals the fill value
    out = DiffAugment(translation=0, cutout=0.5, fill=-1.0)(x)
    hole = out == -1
    assert torch.equal(out[~hole], x[~hole])
    for n in range(32):
        ys, xs = torch.nonzero(hole[n, 0], as_tuple=True)
        assert len(ys) == 64 and ys.max() - ys.min() == 7 and xs.max() - xs.min() == 7  # one 8x8 square
        assert torch.equal(hole[n, 0], hole[n, 1])  # the same square in every channel


def test_identity_when_disabled_and_bad_values():
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(DiffAugment(translation=0, cutout=0)(x), x)
    with pytest.raises(ValueError, match=r"augment\.translation"):
        DiffAugment(translation=1.5)


def test_r1_double_backward_through_augmentation():
    torch.manual_seed(2)
    D = Discriminator(img_resolution=16, img_channels=1, channel_base=64, channel_max=8, mbstd_group_size=2)
    real = torch.randn(4, 1, 16, 16).requires_grad_(True)
    penalty = r1_penalty(real, D(DiffAugment()(real)))
    penalty.mean().backward()
    grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert penalty.gt(0).all() and grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
