"""The non-finite guard (training/guard.py): the flag, the device-side skip of fused Adam, and a real Lightning run in
which one G step gets a NaN gradient: skipped without touching G or its Adam state (``skip``), or stopped (``stop``)."""

from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from stylegan.networks import Discriminator, Generator
from stylegan.training import StyleGAN2Module
from stylegan.training.guard import guarded_step, nonfinite_flag, supports_found_inf
from stylegan.training.lazy import lazy_adam

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks (conftest)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_flag_finds_nan_and_inf_and_changes_nothing(dtype):
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, 3, generator=g, dtype=dtype), torch.randn(7, generator=g, dtype=dtype)]
    losses = [torch.tensor(0.5, dtype=dtype), torch.tensor(-2.0, dtype=dtype)]
    before = [t.clone() for t in grads + losses]
    assert nonfinite_flag(losses, grads).item() == 0
    assert all(torch.equal(a, b) for a, b in zip(before, grads + losses, strict=True))
    for where, value in [("grad", math.nan), ("grad", -math.inf), ("loss", math.inf), ("loss", math.nan)]:
        gs, ls = [t.clone() for t in grads], [t.clone() for t in losses]
        (gs[1] if where == "grad" else ls[0]).view(-1)[0] = value
        assert nonfinite_flag(ls, gs).item() == 1, (where, value)


def _adam_and_params():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64)), torch.nn.Parameter(torch.randn(3))]
    return params, lazy_adam(params, lr=0.01, betas=(0.0, 0.99), eps=1e-8, interval=4)


def test_device_side_skip_leaves_weights_and_adam_state_untouched():
    params, opt = _adam_and_params()
    assert supports_found_inf(opt)  # lazy_adam is fused on CPU
    for p in params:
        p.grad = torch.ones_like(p)
    assert guarded_step(opt, torch.zeros([])) is None  # a real step, nothing read on the host
    weights = [p.detach().clone() for p in params]
    state = copy.deepcopy(opt.state_dict()["state"])
    for p in params:
        p.grad = torch.full_like(p, math.nan)
    assert guarded_step(opt, nonfinite_flag([], [p.grad for p in params])) is None
    assert all(torch.equal(w, p.detach()) for w, p in zip(weights, params, strict=True))
    after = opt.state_dict()["state"]
    for i in state:
        for k in state[i]:
            assert torch.equal(state[i][k], after[i][k]), (i, k)
    assert after[0]["step"].item() == 1


def test_fused_step_equals_adam_formula_in_float64():
    """One Adam step with the lazy correction c = 4/5: lr*c, beta2**c; m = g (beta1 0), v = (1 - b2) g^2."""
    params, opt = _adam_and_params()
    p = params[0]
    p0, grad = p.detach().clone(), torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
    p.grad = grad.clone()
    params[1].grad = torch.zeros_like(params[1])
    guarded_step(opt, torch.zeros([]))
    c = 4 / 5
    b2 = 0.99**c
    v_hat = (1 - b2) * grad.square() / (1 - b2)
    expected = p0 - 0.01 * c * grad / (v_hat.sqrt() + 1e-8)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-14)


def test_host_fallback_for_an_unfused_optimizer():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.5)
    p.grad = torch.ones(3)
    assert guarded_step(opt, torch.ones([])) is False and torch.equal(p.detach(), torch.ones(3))
    assert guarded_step(opt, torch.zeros([])) is True and torch.equal(p.detach(), torch.full([3], 0.5))


class _Snapshots(L.Callback):
    """G's weights and G's Adam step count after every iteration; a NaN in one G weight's gradient at ``bad_iter``."""

    def __init__(self, bad_iter: int) -> None:
        self.bad_iter, self.weights, self.steps = bad_iter, [], []

    def on_train_start(self, trainer, module) -> None:
        w = module.G.synthesis.b4.conv1.weight
        w.register_hook(lambda g: g * math.nan if module.iteration == self.bad_iter else g)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.weights.append({k: v.detach().clone() for k, v in module.G.named_parameters()})
        opt_g = trainer.optimizers[0]
        self.steps.append(max(int(s["step"]) for s in opt_g.state.values()))


def _fit(policy: str, bad_iter: int, tmp_path, iterations: int = 3):
    torch.manual_seed(3)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=1, channel_base=64, channel_max=16,
                  use_noise=False, mapping_kwargs={"num_layers": 2})
    D = Discriminator(img_resolution=16, img_channels=1, channel_base=64, channel_max=16, mbstd_group_size=4)
    module = StyleGAN2Module(G, D, loss={"r1_gamma": 1.0, "pl_weight": 0.0, "style_mixing_prob": 0.0},
                             nan_policy=policy)
    data = TensorDataset(torch.rand([4 * iterations, 1, 16, 16]) * 2 - 1, torch.zeros([4 * iterations, 0]))
    snaps = _Snapshots(bad_iter)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[snaps],
                        default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(data, batch_size=4))
    return module, snaps, trainer


def test_a_nan_gradient_step_is_skipped_on_the_device(tmp_path):
    module, snaps, trainer = _fit("skip", bad_iter=1, tmp_path=tmp_path)
    w0, w1, w2 = snaps.weights
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # iteration 1's G step was dropped
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)  # and training went on
    assert all(torch.isfinite(v).all() for v in w2.values())
    assert snaps.steps == [1, 1, 2]  # Adam's step count was not advanced by the skipped step
    assert dict(module.skip_counts()) == {"Gmain": 1} and not module.nan_skips  # counted on the device
    ckpt = tmp_path / "x.ckpt"
    trainer.save_checkpoint(ckpt)
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["stylegan"]["nan_skips"] == {"Gmain": 1}


def test_stop_policy_raises_with_the_phase(tmp_path):
    with pytest.raises(FloatingPointError, match="non-finite loss or gradient in phase Gmain at iteration 1"):
        _fit("stop", bad_iter=1, tmp_path=tmp_path)
