"""The training sample grid: fixed z, G_ema, and one column per class for a conditional generator."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from stylegan.networks import Generator
from stylegan.training.callbacks import SampleGrid
from stylegan.utils.images import to_uint8


def _tiles(grid: np.ndarray, size: int) -> dict[tuple[int, int], np.ndarray]:
    rows, cols = grid.shape[0] // size, grid.shape[1] // size
    return {(r, c): grid[r * size:(r + 1) * size, c * size:(c + 1) * size] for r in range(rows) for c in range(cols)}


def test_conditional_grid_has_one_column_per_class():
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=10, w_dim=8, img_resolution=8, img_channels=1, channel_base=32, channel_max=8,
                  mapping_kwargs={"num_layers": 1}).eval()
    grid = SampleGrid(dirpath=".", num_samples=23, seed=3).grid(SimpleNamespace(G_ema=G, device=torch.device("cpu")))
    assert grid.shape == (3 * 8, 10 * 8, 1)
    z = torch.randn([23, 8], generator=torch.Generator().manual_seed(3))
    tiles = _tiles(grid, 8)
    for i in range(23):
        c = torch.nn.functional.one_hot(torch.tensor([i % 10]), 10).float()
        with torch.no_grad():
            expected = to_uint8(G(z[i:i + 1], c, noise_mode="const"))[0]
        assert np.abs(tiles[divmod(i, 10)].astype(int) - expected.astype(int)).max() <= 1, f"sample {i}"
    assert not tiles[(2, 3)].any(), "cells past the last sample stay black"


def test_unconditional_grid_is_square_in_sample_order():
    """16 samples: a 4 x 4 grid whose tile (r, c) is G_ema's image of sample 4 r + c (z from seed 0, const
    noise, truncation 0.7), quantized as saved images."""
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=1, channel_base=32, channel_max=8,
                  mapping_kwargs={"num_layers": 1}).eval()
    G.mapping.w_avg.normal_()  # truncation towards a w_avg that is not zero
    callback = SampleGrid(dirpath=".", num_samples=16, truncation_psi=0.7)
    grid = callback.grid(SimpleNamespace(G_ema=G, device=torch.device("cpu")))
    assert grid.shape == (4 * 8, 4 * 8, 1)
    z = torch.randn([16, 8], generator=torch.Generator().manual_seed(0))
    tiles = _tiles(grid, 8)
    with torch.no_grad():
        expected = to_uint8(G(z, None, truncation_psi=0.7, noise_mode="const"))
    for i in range(16):
        assert np.abs(tiles[divmod(i, 4)].astype(int) - expected[i].astype(int)).max() <= 1, f"sample {i}"
    assert len({tiles[divmod(i, 4)].tobytes() for i in range(16)}) == 16  # 16 different images


def test_one_quantization_for_grids_and_metrics_the_official_one():
    """Sample grids / saved images and metric features quantize alike, as the official code: floor(x * 127.5 + 128)
    clipped, i.e. half-way values round up (torch.round would round them to even)."""
    from stylegan.metrics.extractors import to_rgb_uint8 as metric_uint8

    k = torch.arange(0, 255, dtype=torch.float64)
    half_way = ((k + 0.5) / 127.5 - 1).reshape(1, 1, 15, 17)  # between two levels (up to float64 rounding)
    x = torch.cat([half_way, torch.rand(1, 1, 15, 17, dtype=torch.float64) * 2.2 - 1.1])
    official = np.clip(np.floor(x.numpy() * 127.5 + 128), 0, 255).astype(np.uint8)
    assert np.array_equal(to_uint8(x)[..., 0], official[:, 0])
    assert np.array_equal(metric_uint8(x).numpy(), np.repeat(official, 3, axis=1))
    rounded = np.clip(np.round(x.numpy() * 127.5 + 127.5), 0, 255).astype(np.uint8)  # round half to even
    assert (rounded != official).sum() > 50  # the half-way values do tell the two conventions apart
