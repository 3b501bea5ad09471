"""Real DDP (2 gloo processes on CPU) against one process with the same global batch.

With ``model.draws=global`` every random draw of the loop is made for the global batch and sliced per rank, so a
2-process run and a 1-process run with twice the per-device batch see the same reals, latents, style-mixing
cutoffs and path-length directions. The networks are made batch-split invariant (no synthesis noise, no
minibatch-std layer) and run in float64. Then G, D, G_ema and pl_mean after steps that include both
regularization phases (R1 and path length, each with its double backward) must agree to float64 rounding:
this checks DDP's gradient averaging in all four phases and the all-reduced path-length mean.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sweeping import in_process, train_process

COMMON = ["experiment=smoke", "model.draws=global", "model.generator.use_noise=false",
          "model.discriminator.mbstd_num_channels=0", "trainer.precision=64-true", "loss.d_reg_interval=2",
          "loss.g_reg_interval=2", "total_kimg=0.048", "callbacks.samples.every_kimg=1000",
          "callbacks.checkpoint.every_kimg=1000", "logger=none"]


def _train(run_dir: Path, *overrides: str) -> dict:
    """DDP in real processes (Lightning starts rank 1 as a copy of rank 0's command); one process in this one."""
    args = [f"hydra.run.dir={run_dir}", *COMMON, *overrides]
    if "trainer=ddp_sim" in overrides:
        train_process(*args, timeout=600)
    else:
        in_process(*args)
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_two_process_ddp_equals_one_process_with_the_same_global_batch(tmp_path):
    one = _train(tmp_path / "one", "trainer=cpu", "data.batch_size=8")
    two = _train(tmp_path / "two", "trainer=ddp_sim", "data.batch_size=4")
    for ckpt in (one, two):  # 6 iterations of 8 images; R1 and path length at iterations 0, 2, 4
        assert ckpt["stylegan"]["cur_nimg"] == 48 and ckpt["stylegan"]["iteration"] == 6
    a, b = one["state_dict"], two["state_dict"]
    assert a.keys() == b.keys()
    compared = 0
    for k in a:
        if k.endswith("w_avg"):  # tracked from each rank's own batch, as in the official code (truncation only)
            continue
        assert a[k].dtype == torch.float64 or not a[k].is_floating_point(), k
        torch.testing.assert_close(b[k], a[k], rtol=1e-9, atol=1e-12, msg=lambda m, k=k: f"{k}: {m}")
        compared += a[k].numel()
    assert compared > 10_000 and float(a["pl_mean"]) > 0
