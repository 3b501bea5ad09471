"""StyleGAN1's synthesis network (style_block='stylegan1', StyleGAN2 Fig. 2a-b, networks/stylegan1.py) and the
revised block (style_block='revised', Fig. 2c): each layer in float64 against a hand-written reference of its
formula, num_ws and wiring, truncation / mixing, the Generator backward, a LightningModule run and a real Hydra run
of experiment=config_a."""

from __future__ import annotations

import math

import pytest
import torch

from naive_ops import DT, assert_rel_close, conv2d_ref, conv_up2_ref, fir_taps, lrelu, zero_pad
from stylegan.evaluate import load_generator
from stylegan.networks import Generator
from stylegan.networks.style_blocks import RevisedLayer
from stylegan.networks.stylegan1 import StyleGAN1Block, StyleGAN1Layer
from sweeping import in_process

I, O, W_DIM, N = 3, 4, 5, 2
TINY = dict(z_dim=8, w_dim=8, img_channels=1, channel_base=64, channel_max=8, mapping_kwargs={"num_layers": 2})


def _randomize(layer: torch.nn.Module, seed: int) -> None:
    """Non-trivial bias, noise strength and affine bias (a fresh layer has zeros / the identity style there)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in ("bias", "noise_strength", "affine.bias"):
            p = layer.get_parameter(name)
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT) * 0.7 + (1 if name == "affine.bias" else 0))


def _inputs(channels: int, size: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, channels, size, size, generator=g, dtype=DT) * 2 + 0.5
    return x, torch.randn(N, W_DIM, generator=g, dtype=DT)


def _affine_ref(layer: torch.nn.Module, w: torch.Tensor) -> torch.Tensor:
    """A = w @ (W / sqrt(w_dim))^T + b, per sample and output feature, by loops."""
    W, b = layer.affine.weight.detach(), layer.affine.bias.detach()
    out = torch.empty(w.shape[0], W.shape[0], dtype=DT)
    for n in range(w.shape[0]):
        for j in range(W.shape[0]):
            out[n, j] = sum(float(w[n, k]) * float(W[j, k]) for k in range(W.shape[1])) / math.sqrt(W_DIM) + b[j]
    return out


def _per_map(y: torch.Tensor, centre: bool, eps: float = 1e-8) -> torch.Tensor:
    """Each feature map divided by its std (centre=True: minus its mean first) or its RMS (centre=False)."""
    out = torch.empty_like(y)
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            v = y[n, c]
            mu = float(v.sum()) / v.numel() if centre else 0.0
            out[n, c] = (v - mu) / math.sqrt(float(((v - mu) ** 2).sum()) / v.numel() + eps)
    return out


def _nearest_up_ref(x: torch.Tensor) -> torch.Tensor:
    N_, C, H, W = x.shape
    out = torch.empty(N_, C, 2 * H, 2 * W, dtype=x.dtype)
    for i in range(2 * H):
        for j in range(2 * W):
            out[:, :, i, j] = x[:, :, i // 2, j // 2]
    return out


def _blur121_ref(x: torch.Tensor) -> torch.Tensor:
    """[1,2,1] x [1,2,1] / 16 with one zero pixel of padding (TF 'SAME')."""
    f = [1.0, 2.0, 1.0]
    k = torch.tensor([[a * b / 16 for b in f] for a in f], dtype=DT)
    C = x.shape[1]
    return conv2d_ref(zero_pad(x, (1, 1, 1, 1)), k[None, None].expand(C, 1, 3, 3), groups=C)


@torch.no_grad()
@pytest.mark.parametrize("kind", ["const", "conv", "up"])
def test_stylegan1_layer_is_noise_bias_lrelu_instance_norm_adain(kind):
    """Fig. 2b: [conv(w * sqrt(2)/sqrt(fan_in)) | nearest up, conv, blur] -> + B_c * noise -> + b -> lrelu ->
    (x - mean) / std per map -> (A scale) * x + (A bias); the constant's layer has no conv."""
    res = 8
    torch.manual_seed(0)
    in_ch = {"const": 0, "conv": I, "up": I}[kind]
    out_ch = I if kind == "const" else O
    layer = StyleGAN1Layer(in_ch, out_ch, W_DIM, res, up=2 if kind == "up" else 1).double()
    _randomize(layer, 5)
    x, w = _inputs(in_ch or out_ch, res // 2 if kind == "up" else res)
    y = x
    if kind != "const":
        weight = layer.weight.detach() * math.sqrt(2) / math.sqrt(I * 9)
        y = conv2d_ref(_nearest_up_ref(x) if kind == "up" else x, weight, padding=1)
        y = _blur121_ref(y) if kind == "up" else y
    noise = layer.noise_const.detach()
    y = y + noise[None, None] * layer.noise_strength.detach()[None, :, None, None]  # per-channel B
    y = _per_map(lrelu(y + layer.bias.detach()[None, :, None, None]), centre=True)
    style = _affine_ref(layer, w)
    ref = y * style[:, :out_ch, None, None] + style[:, out_ch:, None, None]
    assert_rel_close(layer(x, w, noise_mode="const"), ref, rtol=1e-12)
    # a fresh layer: style scale 1 and bias 0 at w = 0, zero noise strength per channel
    fresh = StyleGAN1Layer(in_ch, out_ch, W_DIM, res).double()
    assert fresh.noise_strength.shape == (out_ch,) and not fresh.noise_strength.any()
    assert torch.equal(fresh.affine.bias, torch.cat([torch.ones(out_ch), torch.zeros(out_ch)]).double())


@torch.no_grad()
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("fused", [True, False])
def test_revised_layer_is_mod_std_conv_norm_std_then_noise_bias(up, fused):
    """Fig. 2c: (x * s_in) -> conv -> / RMS per map (no mean removed) -> + B * noise -> + b -> lrelu * sqrt(2)."""
    res = 8
    torch.manual_seed(0)
    layer = RevisedLayer(I, O, W_DIM, resolution=res, up=up).double()
    _randomize(layer, 6)
    x, w = _inputs(I, res // up)
    s = _affine_ref(layer, w)
    xs = x * s[:, :, None, None]
    weight = layer.weight.detach()
    y = conv_up2_ref(xs, weight, fir_taps()) if up == 2 else conv2d_ref(xs, weight, padding=1)
    y = _per_map(y, centre=False)
    y = y + layer.noise_const.detach()[None, None] * float(layer.noise_strength)
    ref = lrelu(y + layer.bias.detach()[None, :, None, None]) * math.sqrt(2)
    out = layer(x, w, noise_mode="const", fused_modconv=fused)
    assert_rel_close(out, ref, rtol=1e-11)
    # the mean survives the normalization (only the std is normalized): not zero-mean before the bias
    pre = _per_map(conv2d_ref(xs, weight, padding=1), centre=False)
    assert float(pre.mean(dim=[2, 3]).abs().max()) > 1e-3


@pytest.mark.parametrize("style", ["stylegan1", "revised"])
@pytest.mark.parametrize("res", [8, 32])
def test_num_ws_and_w_wiring(style, res):
    """StyleGAN1: 2 ws per resolution (18 at 1024), ToRGB unstyled; revised: as StyleGAN2 (the ToRGB takes the
    next w). Every w index changes the image; nothing else is read."""
    torch.manual_seed(0)
    G = Generator(img_resolution=res, style_block=style, architecture="orig", **TINY).double().eval()
    log2 = int(math.log2(res))
    assert G.num_ws == 2 * log2 - 2 == G.mapping.num_ws
    if style == "stylegan1":
        assert all(isinstance(getattr(G.synthesis, f"b{r}"), StyleGAN1Block) for r in G.synthesis.block_resolutions)
        assert [b.num_conv for b in G.synthesis.children()] == [2] * (log2 - 1)
    ws = torch.randn(2, G.num_ws, 8, dtype=DT)
    with torch.no_grad():
        base = G.synthesis(ws, noise_mode="const")
        assert base.shape == (2, 1, res, res)
        for i in range(G.num_ws):
            moved = ws.clone()
            moved[:, i] += 1
            assert not torch.allclose(G.synthesis(moved, noise_mode="const"), base), f"w {i} is not used"
    with pytest.raises(ValueError, match=f"ws of shape \\[N, {G.num_ws}, 8\\]"):
        G.synthesis(ws[:, 1:])


def test_1024_has_18_ws_and_the_mixing_tool_sees_two_per_resolution():
    from stylegan.tools.mixing import parse_styles, w_resolutions

    G = Generator(img_resolution=1024, style_block="stylegan1", **{**TINY, "channel_base": 1024, "channel_max": 2})
    assert G.num_ws == 18
    assert w_resolutions(G) == [r for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024) for _ in range(2)]
    assert parse_styles("coarse", G) == [0, 1, 2, 3] and parse_styles("middle", G) == [4, 5, 6, 7]


@pytest.mark.parametrize("style", ["stylegan1", "revised"])
def test_truncation_and_mixing_shapes(style):
    torch.manual_seed(0)
    G = Generator(img_resolution=16, style_block=style, **TINY).eval()
    z = torch.randn(3, 8)
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(8))
        ws = G.mapping(z, None)
        cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=4)
        assert ws.shape == cut.shape == (3, G.num_ws, 8)
        assert torch.allclose(cut[:, :4], G.mapping.w_avg.lerp(ws[:, :4], 0.5)) and torch.equal(cut[:, 4:], ws[:, 4:])
        mixed = torch.cat([ws[:, :3], G.mapping(torch.randn(3, 8), None)[:, 3:]], dim=1)
        for noise_mode in ("random", "const", "none"):
            assert G.synthesis(mixed, noise_mode=noise_mode).shape == (3, 1, 16, 16)
        assert torch.equal(G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const"))


@pytest.mark.parametrize("style", ["stylegan1", "revised"])
@pytest.mark.parametrize("res,arch", [(8, "orig"), (16, "orig"), (16, "skip"), (16, "resnet")])
def test_generator_backward_reaches_every_parameter(style, res, arch):
    torch.manual_seed(0)
    G = Generator(img_resolution=res, style_block=style, architecture=arch, **TINY)
    img = G(torch.randn(4, 8), None)
    assert img.shape == (4, 1, res, res) and torch.isfinite(img).all()
    img.square().mean().backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_export_official_refuses_them_in_one_line():
    from stylegan.official import OfficialWeightsError, export_official

    for style in ("stylegan1", "revised"):
        G = Generator(img_resolution=8, style_block=style, **TINY)
        with pytest.raises(OfficialWeightsError, match=f"only style_block='demod'.*style_block='{style}'") as e:
            export_official(G)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("style", ["stylegan1", "revised"])
def test_lightning_module_trains_two_iterations(style):
    """All four phases (Gmain + path length + mixing, Dmain + R1) run; G, D and G_ema move and stay finite."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from stylegan.networks import Discriminator
    from stylegan.training import StyleGAN2Module

    torch.manual_seed(0)
    G = Generator(img_resolution=16, style_block=style, **TINY)
    D = Discriminator(img_resolution=16, img_channels=1, channel_base=64, channel_max=8, mbstd_group_size=2)
    g0 = {k: v.clone() for k, v in G.state_dict().items()}
    loss = {"r1_gamma": 1.0, "pl_weight": 2.0, "style_mixing_prob": 0.9, "lazy": True, "g_reg_interval": 2,
            "d_reg_interval": 2}
    module = StyleGAN2Module(G, D, loss=loss, optim={"g_lr": 0.002, "d_lr": 0.002, "betas": [0.0, 0.99]})
    data = TensorDataset(torch.rand([8, 1, 16, 16]) * 2 - 1, torch.zeros([8, 0]))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(data, batch_size=4))
    assert module.iteration == 2
    for net in (module.G, module.D, module.G_ema):
        assert all(torch.isfinite(t).all() for t in net.state_dict().values())
    assert not torch.equal(module.G.state_dict()["synthesis.b16.conv1.weight"], g0["synthesis.b16.conv1.weight"])


def test_hydra_config_a_scale_cpu_runs(tmp_path):
    """The real entry point: experiment=config_a scale=cpu builds StyleGAN1's G and trains it with the official
    minibatch at 8x8 (256: one iteration passes total_kimg=0.032); on MNIST's labels, conditioned as the TF code
    (LabelConcat in G's mapping, D's label switch)."""
    in_process("experiment=config_a", "scale=cpu", "metrics=none", "total_kimg=0.032", "data.use_labels=true",
               "model.generator.c_dim=10", f"hydra.run.dir={tmp_path}", "callbacks.progress.refresh_rate=0")
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (ckpt["stylegan"]["iteration"], ckpt["stylegan"]["cur_nimg"], ckpt["stylegan"]["lod"]) == (1, 256, 2.0)
    state = ckpt["state_dict"]
    assert state["G_ema.synthesis.b4.const_style.noise_strength"].shape == (64,)
    assert state["G.synthesis.b4.const"].shape == (64, 4, 4) and "G.synthesis.b32.torgb.weight" in state
    assert state["G.mapping.label_concat"].shape == (10, 32) and state["G.mapping.fc0.weight"].shape[1] == 64
    assert state["D.b4.out.weight"].shape == (10, 64) and not any(k.startswith("D.mapping.") for k in state)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    # one Adam step of the TF code's optimizer (beta1 0, beta2 0.99): m = g, v = 0.01 g^2, exactly for the
    # parameters that took part at lod 2 (G up to its 8x8 block and that block's ToRGB, D from its 8x8 FromRGB):
    # not the blocks above 8x8, nor the 4x4 ToRGB / FromRGB (used only while fading 4 -> 8)
    from stylegan.networks import Discriminator

    for opt, net in zip(ckpt["optimizer_states"], (Generator(**ckpt["stylegan"]["G_kwargs"]),
                                                   Discriminator(**ckpt["stylegan"]["D_kwargs"])), strict=True):
        assert opt["param_groups"][0]["betas"] == (0.0, 0.99) and opt["param_groups"][0]["lr"] == 0.001
        names = [n for n, t in net.named_parameters() if t.requires_grad]
        stepped = {names[i] for i in opt["state"]}
        unused = ("b16.", "b32.", "b4.torgb.", "b4.fromrgb.")
        assert stepped == {n for n in names if not any(u in n for u in unused)}, sorted(stepped)
        for st in opt["state"].values():
            assert int(st["step"]) == 1
            torch.testing.assert_close(st["exp_avg_sq"], 0.01 * st["exp_avg"].square(), rtol=1e-5, atol=0)
    # evaluate and the tools take G_ema at lod 2: the 8x8 image, nearest-upsampled to 32x32 (4x4 blocks)
    G, _ = load_generator(tmp_path / "checkpoints" / "last.ckpt")
    c = torch.nn.functional.one_hot(torch.arange(10), 10).float()
    with torch.no_grad():
        img = G(torch.randn(1, G.z_dim).repeat(10, 1), c, noise_mode="const")
    assert torch.equal(img, img[:, :, ::4, ::4].repeat_interleave(4, 2).repeat_interleave(4, 3))
    assert (img[:, :, ::4, ::4] - img[:, :, ::8, ::8].repeat_interleave(2, 2).repeat_interleave(2, 3)).abs().max() > 0
    assert (img[1:] - img[:1]).flatten(1).abs().amax(1).min() > 0  # every label changes the image of one z


@pytest.mark.parametrize("experiment,style", [("config_a", None), ("config_b", "revised"), ("tiny", "stylegan1")])
def test_style_configs_compose(experiment, style):
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    overrides = [f"experiment={experiment}", "scale=cpu"] + ([f"model/style={style}"] if style else [])
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    G = instantiate(cfg.model.generator)
    assert G.synthesis.style_block == (style or "stylegan1")
    layer = G.synthesis.b8.conv0
    assert isinstance(layer, RevisedLayer if style == "revised" else StyleGAN1Layer)
    assert G(torch.randn(2, G.z_dim), None).shape == (2, G.img_channels, G.img_resolution, G.img_resolution)


def _d_basic_down_ref(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """D_basic ``Conv1_down`` (fused form, ``conv2d_downscale2d``): blur2d with [1,2,1] (same size), then the 3x3
    kernel zero-padded to 5x5, the four 2x2 shifts summed and x0.25 (a 4x4 kernel), stride 2, padding 1; bias."""
    t = torch.tensor([1.0, 2.0, 1.0], dtype=DT)
    blur = torch.outer(t, t) / 16
    y = torch.zeros_like(x)
    xp = zero_pad(x, (1, 1, 1, 1))
    for a in range(3):
        for c in range(3):
            y += blur[a, c] * xp[:, :, a : a + x.shape[2], c : c + x.shape[3]]
    wp = torch.nn.functional.pad(w, (1, 1, 1, 1))
    w4 = (wp[:, :, 1:, 1:] + wp[:, :, :-1, 1:] + wp[:, :, 1:, :-1] + wp[:, :, :-1, :-1]) * 0.25
    return conv2d_ref(y, w4, stride=2, padding=1) + b[None, :, None, None]


def test_stylegan1_discriminator_down_conv_is_d_basic():
    """downsampling=blur_pool: each block's conv1 = lrelu(D_basic's fused blur + downscale conv + bias) * sqrt 2."""
    from stylegan.networks import Discriminator

    torch.manual_seed(0)
    D = Discriminator(img_resolution=16, img_channels=1, channel_base=64, channel_max=8, architecture="orig",
                      conv_clamp=None, downsampling="blur_pool").double()
    layer = D.b16.conv1
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(N, layer.in_channels, 16, 16, dtype=DT)
    w = layer.weight / math.sqrt(layer.in_channels * 9)
    expected = lrelu(_d_basic_down_ref(x, w, layer.bias)) * math.sqrt(2)
    assert_rel_close(layer(x), expected)
    assert D.init_kwargs["downsampling"] == "blur_pool" and Discriminator(**D.init_kwargs).b8.conv1.blur_pool
    D(torch.randn(4, 1, 16, 16, dtype=DT)).sum().backward()
    with pytest.raises(ValueError, match=r"downsampling='blur_pool' \(StyleGAN1's D\) needs the 'orig'"):
        Discriminator(img_resolution=16, img_channels=1, architecture="resnet", downsampling="blur_pool")
    from stylegan.official import OfficialWeightsError, export_official

    with pytest.raises(OfficialWeightsError, match="downsampling='blur_pool'"):
        export_official(D=D)


def test_label_switch_discriminator_is_the_tf_codes():
    """label_conditioning='switch' (TF D_basic / D_stylegan2 'LabelSwitch', Mescheder et al. 2018): the output
    layer has one logit per class, D(x, c) = sum_k out_k(x) c_k, no label mapping and no 1/sqrt scaling."""
    from stylegan.networks import Discriminator

    torch.manual_seed(0)
    D = Discriminator(c_dim=3, img_resolution=16, img_channels=1, channel_base=64, channel_max=8,
                      architecture="orig", label_conditioning="switch").double()
    assert not hasattr(D, "mapping") and D.b4.out.weight.shape == (3, 8)
    with torch.no_grad():
        D.b4.out.bias.normal_()
    seen = []
    D.b4.fc.register_forward_hook(lambda mod, inp, out: seen.append(out))
    img, c = torch.randn(4, 1, 16, 16, dtype=DT), torch.rand(4, 3, dtype=DT)
    out = D(img, c)
    W, b = D.b4.out.weight, D.b4.out.bias
    logits = seen[0] @ (W / math.sqrt(W.shape[1])).T + b
    assert out.shape == (4, 1)
    assert_rel_close(out, (logits * c).sum(dim=1, keepdim=True))
    classes = [2, 0, 1, 2]  # a one-hot label keeps its class's logit
    assert_rel_close(D(img, torch.eye(3, dtype=DT)[classes])[:, 0], logits[range(4), classes])
    assert Discriminator(**D.init_kwargs).label_conditioning == "switch"
    with pytest.raises(ValueError, match="labels c of shape"):
        D(img, torch.zeros(4, 2, dtype=DT))
    with pytest.raises(ValueError, match="'projection' or 'switch'"):
        Discriminator(c_dim=3, img_resolution=16, label_conditioning="concat")
    from stylegan.official import OfficialWeightsError, export_official

    with pytest.raises(OfficialWeightsError, match="label_conditioning='switch'"):
        export_official(D=D)
