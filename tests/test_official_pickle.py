"""NVlabs network pickles (``network-snapshot-*.pkl``): read without running their code, G_ema / D bit-exact with
``load_official`` on the same weights, both official flavors, refusals by name, and the CLI."""

from __future__ import annotations

import collections
import copy
import pickle
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from references import OFFICIAL_FIXTURE
from stylegan.model_files import ModelFileError, load_generator
from stylegan.official import OfficialWeightsError, load_official, load_official_file
from stylegan.official_pickle import Module, network_blob, read_network_pickle
from stylegan.tools.__main__ import main

MARKER = "stylegan-official-pickle-test-ran-code"


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks (conftest)


def _never_called(meta):
    raise AssertionError("the official reconstruct function must never run")


class EasyDict(dict):
    """Pickled as dnnlib.util.EasyDict, like the official init_kwargs."""


@contextmanager
def official_modules():
    """Fake ``torch_utils.persistence`` / ``dnnlib.util`` modules so that ``pickle`` writes the official globals."""
    persistence, util = types.ModuleType("torch_utils.persistence"), types.ModuleType("dnnlib.util")
    _never_called.__module__, _never_called.__qualname__ = persistence.__name__, "_reconstruct_persistent_obj"
    EasyDict.__module__, EasyDict.__qualname__ = util.__name__, "EasyDict"
    persistence._reconstruct_persistent_obj, util.EasyDict = _never_called, EasyDict
    fakes = {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
             "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}
    saved = {k: sys.modules.get(k) for k in fakes}
    sys.modules.update(fakes)
    try:
        yield
    finally:
        for k, v in saved.items():
            sys.modules.pop(k) if v is None else sys.modules.__setitem__(k, v)


class Persistent:
    """Reduces to ``_reconstruct_persistent_obj(meta)`` exactly as torch_utils.persistence's decorator does."""

    def __init__(self, class_name: str, state: dict, module_src: str = f"import os; os.system('touch {MARKER}')"):
        self.meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)

    def __reduce__(self):
        return _never_called, (self.meta,)


def persistent(m: nn.Module, init_kwargs: dict | None = None, flavor: str = "stylegan3", **attrs) -> Persistent:
    """The official persistent object of ``m`` (a module with the official names): its ``__dict__`` as pickled."""
    name = type(m).__name__
    if name == "FullyConnectedLayer":
        attrs["weight_gain"] = np.float64(0.125)  # the official layers keep numpy scalars
    if name == "SynthesisBlock" and flavor == "stylegan3":
        attrs["fused_modconv_default"] = True  # stylegan3's networks_stylegan2 keeps it; stylegan2-ada has none
    state = {"training": False, "_parameters": collections.OrderedDict(m._parameters),
             "_buffers": collections.OrderedDict(m._buffers),
             "_non_persistent_buffers_set": set(m._non_persistent_buffers_set),
             "_modules": collections.OrderedDict((k, persistent(c, flavor=flavor)) for k, c in m._modules.items()),
             "_init_args": (), "_init_kwargs": EasyDict(init_kwargs or {}), **attrs}
    return Persistent(name, state)


def ada_kwargs(G_kwargs: dict) -> dict:
    """stylegan2-ada-pytorch's G init_kwargs: synthesis arguments nested, no fused_modconv_default."""
    kw = copy.deepcopy(G_kwargs)
    kw.pop("fused_modconv_default")
    synth = {k: kw.pop(k) for k in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture")}
    return {**kw, "mapping_kwargs": EasyDict(kw["mapping_kwargs"]), "synthesis_kwargs": EasyDict(synth)}


def write_pickle(path: Path, data, protocol: int = 4) -> Path:
    with official_modules():
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


def snapshot(ref, flavor: str = "stylegan3") -> dict:
    """The dict the official training loop pickles: G (here perturbed), D, G_ema (the fixture's G)."""
    G, D = (n.eval().requires_grad_(False) for n in load_official(ref))
    G_train = copy.deepcopy(G)
    with torch.no_grad():
        G_train.synthesis.b8.conv0.weight.add_(1.0)
    G_kwargs = ada_kwargs(ref["G_kwargs"]) if flavor == "ada" else ref["G_kwargs"]
    return {"training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "path": "x.zip"},
            "G": persistent(G_train, G_kwargs, flavor), "D": persistent(D, ref["D_kwargs"], flavor),
            "G_ema": persistent(G, G_kwargs, flavor), "augment_pipe": None}


@pytest.mark.parametrize("flavor,protocol", [("stylegan3", 4), ("ada", 4), ("ada", 3)])
def test_pickle_loads_g_ema_and_d_bit_exact(tmp_path, monkeypatch, ref, flavor, protocol):
    monkeypatch.chdir(tmp_path)  # module_src would create MARKER here if it ever ran
    path = write_pickle(tmp_path / "network-snapshot-000100.pkl", snapshot(ref, flavor), protocol)
    G, D = load_official_file(path)
    G_ref, D_ref = load_official(ref)
    assert G.init_kwargs["fused_modconv_default"] == ("inference_only" if flavor == "ada" else True)
    z, c, n = ref["inputs"]["z"], ref["inputs"]["c"], 2  # two samples keep it fast; the images are per sample
    with torch.no_grad():
        for psi in (1, 0.7):
            img = G.eval()(z[:n], c[:n], truncation_psi=psi, noise_mode="const")
            assert torch.equal(img, G_ref.eval()(z[:n], c[:n], truncation_psi=psi, noise_mode="const"))
            expected = ref["outputs"][f"img_const_psi{psi}"][:n]
            assert (img - expected).abs().max() <= 2e-5 * expected.abs().max()  # the official code's own images
            assert torch.equal(D.eval()(img, c[:n]), D_ref.eval()(img, c[:n]))
        G_train, _ = load_official_file(path, g_key="G")  # the training G is there too, but not the default
        assert not torch.equal(G_train.eval()(z[:1], c[:1], noise_mode="const"), img[:1])
    assert not (tmp_path / MARKER).exists()
    fc = read_network_pickle(path)["G_ema"].children["mapping"].children["fc0"]
    assert fc.class_name == "FullyConnectedLayer" and fc.attrs["weight_gain"] == 0.125  # numpy scalar, decoded


def test_pickle_is_told_apart_by_content(tmp_path, ref):
    blob = network_blob(read_network_pickle(write_pickle(tmp_path / "a.pkl", snapshot(ref))))
    no_suffix = write_pickle(tmp_path / "snapshot.bin", snapshot(ref))
    torch.save({k: blob[k] for k in ("G_ema", "G_kwargs")} | {"G": blob["G_ema"]}, tmp_path / "blob.pkl")  # a zip
    z = ref["inputs"]["z"][:1]
    with torch.no_grad():
        imgs = [load_official_file(p)[0].eval()(z, noise_mode="const") for p in (no_suffix, tmp_path / "blob.pkl")]
    assert torch.equal(*imgs)
    G, kimg = load_generator(no_suffix)
    assert kimg is None and not G.training
    named = write_pickle(tmp_path / "network-snapshot-000120.pkl", snapshot(ref))  # the official loop's names
    assert load_generator(named)[1] == 120.0 and load_generator(tmp_path / "a.pkl")[1] is None


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


def test_foreign_globals_are_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = {
        "os.system": b"cos\nsystem\n(S'touch " + MARKER.encode() + b"'\ntR.",  # protocol 0, as written by hand
        "builtins.eval": pickle.dumps({"G_ema": Evil(eval, f"open({MARKER!r}, 'w')")}),
    }
    for name, data in cases.items():
        (tmp_path / "x.pkl").write_bytes(data)
        with pytest.raises(OfficialWeightsError, match=rf"x\.pkl refers to {name}; refusing to unpickle it"):
            load_official_file(tmp_path / "x.pkl")
    # inside a tensor storage: torch's weights-only loader refuses it
    inner = pickle.dumps(Evil(eval, f"open({MARKER!r}, 'w')"), protocol=2)
    (tmp_path / "x.pkl").write_bytes(pickle.dumps({"G_ema": Evil(torch.storage._load_from_bytes, inner)}))
    with pytest.raises(OfficialWeightsError, match=r"x\.pkl is not a readable network pickle \(Weights only"):
        load_official_file(tmp_path / "x.pkl")
    assert not (tmp_path / MARKER).exists()


def test_stylegan3_generator_is_refused(tmp_path):
    def layer(name: str, **attrs) -> Persistent:
        state = {"_parameters": collections.OrderedDict(weight=nn.Parameter(torch.ones(2, 2))), "_buffers": {},
                 "_modules": collections.OrderedDict(), "_init_kwargs": EasyDict(), **attrs}
        return Persistent(name, state)

    size = np.broadcast_to(np.asarray(36), [2])  # numpy arrays, as the alias-free layers keep
    synthesis = Persistent("SynthesisNetwork", {"_modules": collections.OrderedDict(
        input=layer("SynthesisInput", size=size, sampling_rate=np.float64(16.0)),
        L0_36_512=layer("SynthesisLayer", in_size=size))})
    G = Persistent("Generator", {"_modules": collections.OrderedDict(synthesis=synthesis),
                                 "_init_kwargs": EasyDict(z_dim=8)})
    path = write_pickle(tmp_path / "sg3.pkl", {"G": G, "G_ema": G, "D": None})
    with pytest.raises(OfficialWeightsError, match=r"sg3\.pkl holds a StyleGAN3 \(alias-free\) generator, which this "
                                                   "project does not implement"):
        load_official_file(path)


def test_not_a_network_pickle(tmp_path, ref):
    (tmp_path / "text.pkl").write_text("hello")
    with pytest.raises(OfficialWeightsError, match=r"text\.pkl is not a readable network pickle"):
        load_official_file(tmp_path / "text.pkl")
    for name, data in [("list", [1, 2]), ("no_ema", {"G": 1, "D": 2})]:
        (tmp_path / f"{name}.pkl").write_bytes(pickle.dumps(data))
        with pytest.raises(OfficialWeightsError, match=rf"{name}\.pkl is not a StyleGAN2 network pickle \(no "
                                                       "'G_ema' entry\\)"):
            load_official_file(tmp_path / f"{name}.pkl")
    data = snapshot(ref)
    data["G_ema"] = data["D"]
    with pytest.raises(OfficialWeightsError, match=r"'G_ema' is a Discriminator, not a StyleGAN2 Generator"):
        load_official_file(write_pickle(tmp_path / "swapped.pkl", data))


def test_ada_defaults_are_kept_for_an_ada_generator_without_synthesis_kwargs():
    def G(**block_attrs) -> Module:
        b4 = Module("SynthesisBlock", (), {}, {}, {}, block_attrs)
        return Module("Generator", (), {"z_dim": 8}, {}, {"synthesis": Module("SynthesisNetwork", (), {}, {},
                                                                               {"b4": b4}, {})}, {})

    assert network_blob({"G_ema": G()})["G_kwargs"] == {"z_dim": 8, "synthesis_kwargs": {}}  # ada: conv_clamp None
    assert network_blob({"G_ema": G(fused_modconv_default=True)})["G_kwargs"] == {"z_dim": 8}


def test_cli_generate_from_a_pickle(tmp_path, ref, capsys):
    path = write_pickle(tmp_path / "ffhq.pkl", snapshot(ref, "ada"))
    for model, out in ((path, "pkl"), (OFFICIAL_FIXTURE, "pt")):
        assert main(["generate", "--model", str(model), "--seeds", "3", "--trunc", "0.7", "--outdir",
                     str(tmp_path / out), "--batch-size", "1", "--quiet"]) == 0
    assert (tmp_path / "pkl" / "seed0003.png").read_bytes() == (tmp_path / "pt" / "seed0003.png").read_bytes()
    (tmp_path / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    assert main(["generate", "--model", str(tmp_path / "evil.pkl"), "--seeds", "0", "--outdir",
                 str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"stylegan: error: --model {tmp_path / 'evil.pkl'} refers to os.system; refusing")
    assert len(err.splitlines()) == 1 and not (tmp_path / "e").exists()
    with pytest.raises(ModelFileError, match=r"^ckpt=.*evil\.pkl refers to os\.system"):
        load_generator(tmp_path / "evil.pkl")


def test_the_pickle_reader_does_not_import_the_weights_module():
    """official_pickle is the lower module (official imports it): no import circle between the two."""
    import subprocess
    import sys

    code = "import sys, stylegan.official_pickle; print('stylegan.official' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
