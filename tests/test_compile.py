"""``model.compile``: the main phases run torch.compile'd G synthesis and D, the regularizers run as compiled
functions (their inner gradient by torch.func.vjp), and the run trains the same weights as an eager run. Real
``stylegan-train`` runs (in this process) through dynamo and AOTAutograd with a counting backend over ``aot_eager``
(eager kernels: no C++ build, so the runs stay short; the inductor backend is measured in
benchmarks/train_throughput.py). AOTAutograd refuses a double backward through a compiled graph, so a regularizer
compiled the autograd.grad way would fail the run."""

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


def _graph_calls(g_reg: int, d_reg: int, phases: tuple[str, ...], iterations: int = 4) -> int:
    """Compiled graphs run in ``iterations`` steps. main, per iteration: G main (synthesis, D), D main (synthesis
    without grad, D on fakes) and D on the reals unless R1 shares that pass (d_reg 1). reg: each path-length pass
    and each R1 pass (one function each)."""
    main = iterations * (4 + (d_reg != 1))
    reg = sum(i % g_reg == 0 for i in range(iterations)) + sum(i % d_reg == 0 for i in range(iterations))
    return main * ("main" in phases) + reg * ("reg" in phases)


def test_compiled_phases_train_the_eager_weights(tmp_path):
    """4 iterations of batch 8 in two settings, each against an eager run. (1, 2), both phases compiled: path
    length in G's main step ("Gboth"), R1 in its own D step every 2nd iteration; (2, 1), only the regularizers: the
    reverse ("Dboth": R1 on the main real pass). The second setting reuses the first one's graphs (same shapes).
    ``model.draws=global``: the path-length directions come from their own generator, so drawing them before the
    synthesis noise (as the compiled pass does) leaves both streams as in the eager run."""
    torch._dynamo.reset()
    try:
        for g_reg, d_reg, phases in [(1, 2, ("main", "reg")), (2, 1, ("reg",))]:
            run = tmp_path / f"g{g_reg}d{d_reg}"
            common = [*QUICK, "total_kimg=0.032", "logger=csv", "model.draws=global", f"loss.g_reg_interval={g_reg}",
                      f"loss.d_reg_interval={d_reg}"]
            in_process(*common, f"hydra.run.dir={run / 'eager'}")
            RUNS.clear()
            in_process(*common, f"hydra.run.dir={run / 'compiled'}",
                       f"model.compile={{backend:stylegan_test_counting,phases:[{','.join(phases)}]}}")
            assert RUNS["graph calls"] == _graph_calls(g_reg, d_reg, phases), (g_reg, d_reg, phases)
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
