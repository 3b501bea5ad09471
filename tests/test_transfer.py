"""Transfer learning (``model.init_from``, Freeze-D ``model.freeze_d``, ``model.freeze_g_mapping``,
``experiment=finetune``): the copy by name and shape from official weights and from our checkpoint (also at another
resolution), frozen blocks bit-identical after real training steps, resume over init, and one-line refusals. The
entry point runs in this process (``main()`` with ``sys.argv``) to keep the file fast."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from references import OFFICIAL_FIXTURE, single_thread
from stylegan.losses import r1_penalty
from stylegan.networks import Discriminator, Generator
from stylegan.train import main
from stylegan.training import transfer
from sweeping import QUICK, refusal

CONF = str(Path(__file__).resolve().parents[1] / "conf")
# this run's networks sized as the official fixture's (G skip, D resnet, 3x32x32, z/w 64, 16-32 channels)
AS_FIXTURE = ["data.channels=3", "model.generator.z_dim=64", "model.generator.w_dim=64",
              "model.generator.channel_base=512", "model.generator.channel_max=32",
              "model.generator.mapping_kwargs.num_layers=2"]
FROZEN_D = ("b32.", "b16.")  # freeze_d=2 at 32x32 (the smoke preset's D: b32, b16, b8, b4)
NETS = ("G", "D", "G_ema")


def _model(*overrides: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return instantiate(compose(config_name="train", overrides=list(overrides)).model)


def _argv(run_dir: Path, *overrides: str) -> list[str]:
    return ["stylegan-train", *QUICK, "logger=none", f"hydra.run.dir={run_dir}", *overrides]


def _train(run_dir: Path, *overrides: str) -> dict:
    argv, sys.argv = sys.argv, _argv(run_dir, *overrides)
    try:
        main()
    finally:
        sys.argv = argv
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _net(state: dict, name: str) -> dict[str, torch.Tensor]:
    return {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}


def _transfer_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == transfer.__name__]


@pytest.fixture(scope="module", autouse=True)
def one_thread_here():
    """conftest's single_thread for the whole module, the module-scoped runs below included."""
    with single_thread():
        yield


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """One of our checkpoints, from a tiny real run (2 iterations of the smoke preset)."""
    run = tmp_path_factory.mktemp("source")
    _train(run)
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, source) -> Path:
    """4 real iterations from ``source`` with Freeze-D on D's 2 highest-resolution blocks and G's mapping frozen."""
    run = tmp_path_factory.mktemp("finetuned")
    _train(run, f"model.init_from={source}", "model.freeze_d=2", "model.freeze_g_mapping=true", "total_kimg=0.032")
    return run


@pytest.mark.parametrize("resolution", [32, 64])
def test_init_from_official_weights(ref, caplog, resolution):
    """Every tensor with the fixture's name and shape is copied bit-exactly (G_ema from its G); at 64x64 the new
    b64 blocks keep their fresh init and the one log line names them."""
    caplog.set_level(logging.INFO, logger=transfer.__name__)
    model = _model(*AS_FIXTURE, f"data.resolution={resolution}", f"model.init_from={OFFICIAL_FIXTURE}")
    fresh = {n: {k: v.clone() for k, v in getattr(model, n).state_dict().items()} for n in NETS}
    transfer.initialize(model, resumed=False)
    for name, src in (("G", ref["G"]), ("D", ref["D"]), ("G_ema", ref["G"])):
        for k, v in getattr(model, name).state_dict().items():
            new = k.startswith(("synthesis.b64.", "b64."))  # only at 64x64
            assert torch.equal(v, fresh[name][k] if new else src[k]), f"{name}.{k}"
    (line,) = _transfer_lines(caplog)
    if resolution == 32:
        assert line.endswith("copied G 75/75, D 37/37, G_ema 75/75 tensors (same name and shape); nothing left out")
    else:
        assert line.endswith("fresh initialization kept for G synthesis.b64; D b64; G_ema as G")


def test_init_from_our_checkpoint(source, caplog):
    """G, D and G_ema each from their own entry of the checkpoint (G_ema differs from G there), bit-exactly."""
    caplog.set_level(logging.INFO, logger=transfer.__name__)
    state = torch.load(source, map_location="cpu", weights_only=True)["state_dict"]
    assert not all(torch.equal(v, _net(state, "G_ema")[k]) for k, v in _net(state, "G").items())
    model = _model("experiment=smoke", f"model.init_from={source}")
    transfer.initialize(model, resumed=False)
    for name in NETS:
        assert list(getattr(model, name).state_dict()) == list(_net(state, name))
        for k, v in getattr(model, name).state_dict().items():
            assert torch.equal(v, _net(state, name)[k]), f"{name}.{k}"
    assert _transfer_lines(caplog)[-1].endswith("nothing left out")


def test_freeze_d_keeps_the_highest_resolution_blocks(source, finetuned):
    """After real steps (R1 and path length included): D's b32 and b16 and G's mapping (and G_ema's) are the source's
    bit for bit, and are not in the optimizers; the other D blocks and G's synthesis trained."""
    src = torch.load(source, map_location="cpu", weights_only=True)["state_dict"]
    ckpt = torch.load(finetuned / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    out = ckpt["state_dict"]
    assert ckpt["stylegan"]["iteration"] == 4 and not ckpt["stylegan"]["nan_skips"]
    D0, D1 = _net(src, "D"), _net(out, "D")
    for block in ("b32", "b16", "b8", "b4"):
        same = [torch.equal(D0[k], D1[k]) for k in D1 if k.startswith(block + ".") and "resample_filter" not in k]
        assert all(same) if block + "." in FROZEN_D else not any(same), block
    for name in ("G", "G_ema"):
        mapping = {k: v for k, v in _net(out, name).items() if k.startswith("mapping.fc")}
        assert mapping and all(torch.equal(v, _net(src, "G_ema")[k]) for k, v in mapping.items()), name
    G0, G1 = _net(src, "G"), _net(out, "G")
    assert not torch.equal(G0["synthesis.b32.conv1.weight"], G1["synthesis.b32.conv1.weight"])
    d_params = [k for k in D1 if not k.endswith(("resample_filter",))]
    g_params = [k for k in G1 if not k.endswith(("resample_filter", "noise_const", "w_avg"))]
    opt_g, opt_d = ckpt["optimizer_states"]
    assert len(opt_d["param_groups"][0]["params"]) == len([k for k in d_params if not k.startswith(FROZEN_D)])
    assert len(opt_g["param_groups"][0]["params"]) == len([k for k in g_params if not k.startswith("mapping.")])


def test_resume_wins_over_init_from(source, finetuned, tmp_path):
    """Resuming with init_from set to other weights: the run continues from its checkpoint (the frozen blocks are
    still the first source's), and says init_from was not used."""
    other = torch.load(source, map_location="cpu", weights_only=True)
    other["state_dict"] = {k: v + 1 if v.is_floating_point() else v for k, v in other["state_dict"].items()}
    torch.save(other, tmp_path / "other.ckpt")
    ckpt = _train(tmp_path / "run", f"model.init_from={tmp_path / 'other.ckpt'}", "model.freeze_d=2",
                  "model.freeze_g_mapping=true", "total_kimg=0.040", f"ckpt_path={finetuned}/checkpoints/last.ckpt")
    assert ckpt["stylegan"]["cur_nimg"] == 40
    src = _net(torch.load(source, map_location="cpu", weights_only=True)["state_dict"], "D")
    frozen = {k: v for k, v in _net(ckpt["state_dict"], "D").items() if k.startswith(FROZEN_D)}
    assert frozen and all(torch.equal(v, src[k]) for k, v in frozen.items())
    log = "".join(p.read_text() for p in (tmp_path / "run").glob("*.log"))
    assert "not used: the run resumes from ckpt_path" in log


def test_r1_flows_through_frozen_blocks():
    """Freezing changes no R1 value and no gradient of D's trainable parameters; frozen ones get none."""
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=1, channel_base=64, channel_max=8,
                  mapping_kwargs={"num_layers": 1})
    D = Discriminator(img_resolution=16, img_channels=1, channel_base=64, channel_max=8)
    real = torch.randn(4, 1, 16, 16)

    def r1_and_grads():
        x = real.clone().requires_grad_(True)
        penalty = r1_penalty(x, D(x)).sum()
        penalty.backward()
        grads = {k: None if p.grad is None else p.grad.clone() for k, p in D.named_parameters()}
        D.zero_grad(set_to_none=True)
        return penalty.detach(), grads

    before, all_grads = r1_and_grads()
    frozen = transfer.frozen_parameters(G, D, 1, freeze_g_mapping=True)
    after, grads = r1_and_grads()
    assert torch.equal(before, after) and frozen and all(not p.requires_grad for p in G.mapping.parameters())
    for k, g in grads.items():  # (biases that do not reach d D(x) / d x get no R1 gradient either way)
        if k.startswith("b16."):
            assert g is None and all_grads[k] is not None, k
        else:
            assert (g is None and all_grads[k] is None) or torch.equal(g, all_grads[k]), k
    assert grads["b8.conv0.weight"].abs().sum() > 0
    assert len(transfer.trainable(D, frozen)) == len(list(D.parameters())) - len(list(D.b16.parameters()))


@pytest.mark.parametrize("kind", ["missing", "text", "tensor", "nothing fits", "freeze_d too large"])
def test_bad_transfer_input_is_one_line(tmp_path, capsys, kind):
    path = tmp_path / "weights.pt"
    if kind == "text":
        path.write_text("not a model\n")
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    overrides, expected = {
        "missing": ([f"model.init_from={path}"], f"model.init_from={path} does not exist"),
        "text": ([f"model.init_from={path}"], f"model.init_from={path} is not a model"),
        "tensor": ([f"model.init_from={path}"], f"model.init_from={path} is not a model"),
        "nothing fits": ([f"model.init_from={OFFICIAL_FIXTURE}"], "none of its weights fits these networks (no "
                         "weight tensor has the same name and shape): model.generator.channel_base=512 in the file, "
                         "128 here"),
        "freeze_d too large": (["model.freeze_d=4"], "model.freeze_d=4 must be an integer in [0, 3]"),
    }[kind]
    assert expected in refusal(capsys, _argv(tmp_path / "run", *overrides))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_finetune_preset(tmp_path, capsys):
    """experiment=finetune: ADA's transfer settings (Freeze-D, no EMA ramp-up, 1000 kimg, augmentation); without
    model.init_from it stops with one line before building anything."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=finetune", "model.init_from=x.ckpt"])
    m = cfg.model
    assert (m.init_from, m.freeze_d, m.ema_rampup, cfg.total_kimg) == ("x.ckpt", 2, None, 1000)
    assert m.augment._target_.endswith("DiffAugment") and cfg.callbacks.checkpoint.keep_snapshots
    line = refusal(capsys, ["stylegan-train", "experiment=finetune", "logger=none",
                             f"hydra.run.dir={tmp_path / 'run'}"])
    assert line == ("stylegan-train: error: experiment=finetune needs model.init_from=PATH: a stylegan-train "
                    "checkpoint (outputs/<run>/checkpoints/last.ckpt) or official-format weights to start from")


def test_resume_with_other_frozen_layers_is_one_line(finetuned, tmp_path, capsys):
    """The checkpoint's optimizers hold only the trainable tensors: resuming with another freeze_d is refused."""
    line = refusal(capsys, _argv(tmp_path / "run", "model.freeze_d=0", "model.freeze_g_mapping=true",
                                  f"ckpt_path={finetuned}/checkpoints/last.ckpt"))
    assert "model.freeze_d / model.freeze_g_mapping differ from the run's" in line
    assert not (tmp_path / "run" / "checkpoints").exists()
