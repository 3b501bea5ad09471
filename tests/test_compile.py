"""``model.compile``: the main phases run torch.compile'd G synthesis and D, the regularizers stay eager, and the
run trains the same weights as an eager run. Real ``stylegan-train`` runs (in this process) through dynamo and
AOTAutograd with a counting backend over ``aot_eager`` (eager kernels: no C++ build, so the runs stay short; the
inductor backend is measured in benchmarks/train_throughput.py). AOTAutograd refuses a double backward through a
compiled graph, so a regularizer that ran compiled would fail the run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
import torch._dynamo
from torch._dynamo.backends.debugging import aot_eager
from torch._dynamo.backends.registry import register_backend

from sweeping import QUICK, in_process

RUNS: Counter[str] = Counter()


@register_backend(name="stylegan_test_counting")
def _counting(gm, example_inputs):
    compiled = aot_eager(gm, example_inputs)

    def run(*args):
        RUNS["graph calls"] += 1
        return compiled(*args)

    return run


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_compiled_main_phases_train_the_eager_weights(tmp_path):
    """4 iterations of batch 8 in two settings, each against an eager run. (1, 2): path length in G's main step
    ("Gboth"), R1 in its own D step every 2nd iteration; (2, 1): the reverse ("Dboth": R1 on the main real pass,
    which then runs eagerly). The second setting reuses the first one's compiled graphs (same shapes)."""
    torch._dynamo.reset()
    try:
        for g_reg, d_reg in [(1, 2), (2, 1)]:
            run = tmp_path / f"g{g_reg}d{d_reg}"
            common = [*QUICK, "total_kimg=0.032", "logger=csv", f"loss.g_reg_interval={g_reg}",
                      f"loss.d_reg_interval={d_reg}"]
            in_process(*common, f"hydra.run.dir={run / 'eager'}")
            RUNS.clear()
            in_process(*common, f"hydra.run.dir={run / 'compiled'}", "model.compile={backend:stylegan_test_counting}")
            # per iteration: G main (synthesis, D), D main (synthesis without grad, D on fakes) and D on the reals
            # unless R1 shares that pass (d_reg 1); never the path-length or R1 passes
            assert RUNS["graph calls"] == 4 * 4 + (0 if d_reg == 1 else 4), (g_reg, d_reg)
            eager, compiled = _weights(run / "eager"), _weights(run / "compiled")
            assert sorted(eager) == sorted(compiled)  # the compiled wrappers are not submodules
            for key, value in eager.items():
                torch.testing.assert_close(compiled[key], value, rtol=1e-5, atol=1e-6, msg=f"{key} {(g_reg, d_reg)}")
    finally:
        torch._dynamo.reset()


def test_progressive_growing_is_not_compiled():
    from stylegan.networks import Discriminator, Generator
    from stylegan.training import StyleGAN2Module
    from stylegan.training.config import ConfigError

    net = dict(img_resolution=16, img_channels=1, channel_base=64, channel_max=8, architecture="orig", progressive=True)
    G, D = Generator(z_dim=8, w_dim=8, mapping_kwargs={"num_layers": 1}, **net), Discriminator(**net)
    with pytest.raises(ConfigError, match=r"model\.compile with model\.progressive"):
        StyleGAN2Module(G, D, progressive={"start_resolution": 8}, compile=True)
    assert StyleGAN2Module(G, D, progressive={"start_resolution": 8}, compile=None).compiler.options is None
