"""The StyleGAN2 paper's TensorFlow network pickles: read without running their code, converted as the official
stylegan2-ada-pytorch ``legacy.py`` converts them (its outputs on the same pickles are in the fixture, written by
tests/fixtures/make_official_tf.py), refusals in one line naming what is not supported, and the CLI."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.make_official_tf import CASES, MARKER, PAYLOAD, Network, dumps, tf_pickle
from stylegan.evaluate import load_generator
from stylegan.official import OfficialWeightsError, export_official, load_official_file
from stylegan.official_pickle import TFNetwork, read_network_pickle
from stylegan.tools.__main__ import main

FIXTURE = Path(__file__).parent / "fixtures" / "official_tf.pt"
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks (conftest)


@pytest.fixture(scope="module")
def cases() -> dict:
    return torch.load(FIXTURE, map_location="cpu", weights_only=True)


def write(path: Path, case: dict) -> Path:
    path.write_bytes(case["pickle"].numpy().tobytes())
    return path


def close(out: torch.Tensor, expected: torch.Tensor) -> bool:
    """Our float32 ops against the official code's: <= 2e-5 of the largest value (OFFICIAL_LAYOUT.md tolerances)."""
    return out.shape == expected.shape and bool((out - expected).abs().max() <= 2e-5 * expected.abs().max())


@pytest.mark.parametrize("name", ["stylegan2_skip_resnet", "ada_resnet_skip_cond", "ada_orig_orig",
                                  "stylegan2_revised"])
def test_tf_pickle_equals_the_official_conversion(tmp_path, monkeypatch, cases, name):
    monkeypatch.chdir(tmp_path)  # build_module_src would create MARKER here if it ever ran
    case, path = cases[name], write(tmp_path / f"{name}.pkl", cases[name])
    G, D = load_official_file(path)  # G_ema: the pickle's Gs
    G.eval(), D.eval()
    z, c = case["z"], case["c"]
    with torch.no_grad():
        for psi in (1, 0.7):
            assert close(G(z, c, truncation_psi=psi, noise_mode="const"), case[f"G_ema_psi{psi}"])
        G_train, _ = load_official_file(path, g_key="G")
        img = G_train.eval()(z, c, noise_mode="const")
        assert close(img, case["G"]) and not close(img, case["G_ema_psi1"])
        assert close(D(case["D_img"], case["D_c"]), case["D"])
    assert not (tmp_path / MARKER).exists()
    _, _, G_kw, D_kw = CASES[name]
    assert G.img_resolution == G_kw["resolution"] and G.c_dim == G_kw.get("label_size", 0)
    if "mbstd_group_size" not in D_kw:  # D_stylegan2's default group is 4 (TF), not the batch (legacy.py)
        assert D.init_kwargs["mbstd_group_size"] == 4
        x = torch.cat([case["reals"], case["reals"].flip(-1)])  # 8 images: strided groups {0, 2, 4, 6}, {1, 3, 5, 7}
        with torch.no_grad():
            assert close(D(x)[0::2], D(x[0::2])) and not close(D(x)[0::2], D(x[:4]))


def test_configs_b_to_d_at_lower_levels_of_detail(tmp_path, cases):
    """Configs B-D (G_synthesis_stylegan_revised, D_stylegan) load as progressive 'orig' networks; their lower
    resolutions' ToRGB_lod1 / FromRGB_lod1 are where lod 1 reads them: the project's G at lod 1 (nearest-upsampled)
    and D at lod 1 (box-downsampled input) against the official conversion of the config E-F networks at R / 2."""
    case = cases["stylegan2_revised"]
    G, D = load_official_file(write(tmp_path / "config-d.pkl", case))
    assert G.init_kwargs["progressive"] and D.init_kwargs["progressive"] and G.synthesis.lod == D.lod == 0
    G.synthesis.lod = D.lod = 1.0
    with torch.no_grad():
        img = G.eval()(case["z"], case["c"], noise_mode="const")
        assert img.shape[-1] == 16 and close(img[..., ::2, ::2], case["G_ema_lod1"])
        assert close(D.eval()(case["reals"]), case["D_lod1"])


def test_tf_pickle_with_label_concat_and_switch(tmp_path, monkeypatch, cases):
    """stylegan2's conditional G (z concatenated with c @ E, normalized together) and label-switch D, which legacy.py
    cannot convert: referenced through the official conversion of equivalent unconditional networks."""
    monkeypatch.chdir(tmp_path)
    case = cases["stylegan2_cond"]
    G, D = load_official_file(write(tmp_path / "cond.pkl", case))
    assert G.init_kwargs["mapping_kwargs"]["label_embedding"] == "concat"
    assert D.init_kwargs["label_conditioning"] == "switch"
    n, c_dim = case["reals"].shape[0], case["c"].shape[1]
    with torch.no_grad():
        assert close(G.eval()(case["z"], case["c"], noise_mode="const"), case["G_ema_psi1"])
        logits = [D.eval()(case["reals"], torch.eye(c_dim)[[j] * n]) for j in range(c_dim)]
    assert close(torch.cat(logits, dim=1), case["D_per_class"])
    assert not (tmp_path / MARKER).exists()


def test_build_module_src_is_never_run(tmp_path, monkeypatch, cases):
    live = tmp_path / "live"
    live.mkdir()
    monkeypatch.chdir(live)
    exec(compile(PAYLOAD, "payload", "exec"), {})  # the payload works: run by hand, it writes the marker
    assert (live / MARKER).exists()
    (tmp_path / "load").mkdir()
    monkeypatch.chdir(tmp_path / "load")
    nets = read_network_pickle(write(tmp_path / "a.pkl", cases["ada_orig_orig"]))
    assert all(isinstance(n, TFNetwork) for n in nets)
    assert not any(hasattr(n, "build_module_src") for n in (*nets, *nets[0].components.values()))
    load_official_file(tmp_path / "a.pkl")
    assert main(["generate", "--model", str(tmp_path / "a.pkl"), "--seeds", "1", "--outdir", str(tmp_path / "g"),
                 "--quiet"]) == 0
    assert not (tmp_path / "load" / MARKER).exists()


def test_protocols_and_numpy_scalars(tmp_path, cases):
    """The fixture's protocol 3 pickle, rebuilt with the same seed as protocol 4 and 5 (numpy's _frombuffer): equal."""
    seed, flavor, G_kw, D_kw = CASES["ada_orig_orig"]
    G_ref, D_ref = load_official_file(write(tmp_path / "p3.pkl", cases["ada_orig_orig"]))
    for protocol in (4, 5):
        (tmp_path / f"p{protocol}.pkl").write_bytes(dumps(tf_pickle(seed, G_kw, D_kw, flavor), protocol))
        G, D = load_official_file(tmp_path / f"p{protocol}.pkl")
        for a, b in ((G, G_ref), (D, D_ref)):
            assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def _nets(flavor: str = "stylegan2", seed: int = 0) -> list[Network]:
    _, _, G_kw, D_kw = CASES["stylegan2_skip_resnet" if flavor == "stylegan2" else "ada_orig_orig"]
    return list(tf_pickle(seed, G_kw, D_kw, flavor))


def _refused(tmp_path: Path, nets, match: str, name: str = "x.pkl") -> None:
    (tmp_path / name).write_bytes(dumps(tuple(nets) if isinstance(nets, list) else nets))
    with pytest.raises(OfficialWeightsError, match=match) as e:
        load_official_file(tmp_path / name)
    assert "\n" not in str(e.value)


def test_unsupported_networks_are_refused_by_name(tmp_path):
    nets = _nets()
    nets[2].state.update(build_func_name="G_style", version=3)  # config A / StyleGAN1-era: named, not the version
    _refused(tmp_path, nets, r"x\.pkl: Gs \(Gs\) was built by G_style \(the original StyleGAN generator, StyleGAN2 "
                             r"config A\); only G_main with G_mapping and G_synthesis_stylegan2 .* load")
    nets = _nets()
    nets[1].state["build_func_name"] = "D_basic"
    _refused(tmp_path, nets, r"D \(D\) was built by D_basic \(the original StyleGAN discriminator, StyleGAN2 config A")
    nets = _nets()
    nets[2].state["components"]["synthesis"].state["build_func_name"] = "G_synthesis_new"
    _refused(tmp_path, nets, r"Gs \(Gs\) synthesis was built by G_synthesis_new \(a network this project does not")
    _, _, G_kw, D_kw = CASES["stylegan2_revised"]
    nets = list(tf_pickle(0, G_kw, D_kw, "revised"))
    nets[1].state["variables"][0] = ("lod", np.float32(1.5))  # a config B-D snapshot taken while growing
    _refused(tmp_path, nets, r"D \(D\) was saved during progressive growing \(lod=1\.5\); only networks at lod 0")
    nets = _nets()
    nets[1].state["version"] = 3
    _refused(tmp_path, nets, r"D \(D\) has TF network pickle version 3, older than StyleGAN2's")
    _refused(tmp_path, tuple(_nets()[:2]), r"holds TensorFlow networks but not the \(G, D, Gs\) tuple")


def test_unknown_variables_and_arguments_are_refused(tmp_path):
    nets = _nets("ada")
    nets[2].state["components"]["synthesis"].state["variables"].append(("8x8/Conv1/extra", np.zeros(3, np.float32)))
    _refused(tmp_path, nets, r"Gs \(Gs\): unknown TensorFlow variable 'synthesis/8x8/Conv1/extra'")
    nets = _nets("ada")
    nets[1].state["variables"].append(("4x4/Dense1/weight", np.zeros([4, 1], np.float32)))  # StyleGAN1's D head
    _refused(tmp_path, nets, r"D \(D\): unknown TensorFlow variable '4x4/Dense1/weight'")
    nets = _nets("ada")
    nets[2].state["static_kwargs"]["fmap_min"] = 64
    _refused(tmp_path, nets, r"fmap_min=64 clips the channel counts")
    nets = _nets("ada")
    nets[1].state["static_kwargs"].update(resample_kernel=[1, 2, 1])
    _refused(tmp_path, nets, r"D \(D\): resample_kernel=\[1, 2, 1\] is not supported \(only \[1, 3, 3, 1\]\)")
    nets = _nets("ada")
    nets[1].state["static_kwargs"].update(use_spectral_norm=True, pagan=1)
    _refused(tmp_path, nets, r"D \(D\): use_spectral_norm=True is not supported")
    nets = _nets("ada")
    nets[2].state["static_kwargs"]["new_option"] = 1
    _refused(tmp_path, nets, r"Gs \(Gs\): unknown TensorFlow arguments \['new_option'\]")
    nets = _nets("ada")
    variables = nets[2].state["components"]["synthesis"].state["variables"]
    variables[:] = [(n, a[..., :1] if n == "8x8/Conv1/weight" else a) for n, a in variables]
    _refused(tmp_path, nets, r"x\.pkl: Gs state_dict does not match its kwargs: mis-shaped keys "
                             r"\['synthesis\.b8\.conv1\.weight: \(1, 2, 3, 3\)")


def test_cli_generate_and_evaluate_loader(tmp_path, cases, capsys):
    """``stylegan generate`` from a TF pickle gives the images of its Gs exported to the official blob format."""
    path = write(tmp_path / "stylegan2-tiny-config-f.pkl", cases["ada_orig_orig"])
    G, kimg = load_generator(path)
    assert kimg is None and not G.training
    torch.save(export_official(copy.deepcopy(G)), tmp_path / "blob.pt")
    for model, out in ((path, "pkl"), (tmp_path / "blob.pt", "pt")):
        assert main(["generate", "--model", str(model), "--seeds", "3", "--trunc", "0.7", "--outdir",
                     str(tmp_path / out), "--batch-size", "1", "--quiet"]) == 0
    assert (tmp_path / "pkl" / "seed0003.png").read_bytes() == (tmp_path / "pt" / "seed0003.png").read_bytes()
    nets = _nets()
    nets[2].state["build_func_name"] = "G_style"
    (tmp_path / "a.pkl").write_bytes(dumps(tuple(nets)))
    assert main(["generate", "--model", str(tmp_path / "a.pkl"), "--seeds", "0", "--outdir", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"stylegan: error: --model {tmp_path / 'a.pkl'}: Gs (Gs) was built by G_style")
    assert len(err.splitlines()) == 1 and not (tmp_path / "e").exists()
    assert os.listdir(tmp_path / "pkl") == ["seed0003.png"]
