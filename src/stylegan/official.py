"""Import and export of official StyleGAN2 weights (NVlabs stylegan2-ada-pytorch / stylegan3 naming).

A *blob* is a dict with the official state_dicts ``G`` and ``D`` and their constructor arguments ``G_kwargs`` and
``D_kwargs`` (flat as in stylegan3, or with ada's nested ``synthesis_kwargs``). Our modules have the official
parameter and buffer names, in the official order, so import is a checked ``load_state_dict`` and export is
``state_dict()``. The per-layer ``resample_filter`` buffers must hold the [1,3,3,1] filter; absent ones are
filled in (converters that drop them load too). NVlabs network pickles (``*.pkl``) are read into a blob, without
running their code, by :mod:`stylegan.official_pickle`, the StyleGAN2 paper's TensorFlow pickles by
:mod:`stylegan.official_tf`; :func:`load_official_file` takes all these kinds of file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .networks import Discriminator, Generator
from .official_pickle import OfficialWeightsError, is_network_pickle, network_blob, read_network_pickle
from .official_tf import is_tf_pickle, tf_networks

# Official arguments that only select fp16 / memory layout / training-time freezing: accepted and ignored.
IGNORED_KWARGS = {"class_name", "num_fp16_res", "use_fp16", "fp16_channels_last", "channels_last", "freeze_layers"}
_G_KEYS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "channel_base", "channel_max",
           "architecture", "use_noise", "fused_modconv_default")
_D_KEYS = ("c_dim", "img_resolution", "img_channels", "channel_base", "channel_max", "architecture", "cmap_dim")
_MAPPING_KEYS = ("num_layers", "embed_features", "layer_features", "lr_multiplier", "w_avg_beta")


def _take(src: dict, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: src.pop(k) for k in keys if k in src}


def _check_defaults(src: dict, where: str) -> None:
    f = src.pop("resample_filter", None)
    if f is not None and list(f) != [1, 3, 3, 1]:
        raise OfficialWeightsError(f"{where}.resample_filter={list(f)} is not supported (only [1, 3, 3, 1])")
    act = src.pop("activation", "lrelu")
    if act != "lrelu":
        raise OfficialWeightsError(f"{where}.activation={act!r} is not supported (only 'lrelu')")
    for key in IGNORED_KWARGS & set(src):
        src.pop(key)
    if src:
        raise OfficialWeightsError(f"{where}: unknown official arguments {sorted(src)}")


def _mapping_kwargs(official: Mapping | None, where: str) -> dict[str, Any]:
    src = dict(official or {})
    out = _take(src, _MAPPING_KEYS)
    _check_defaults(src, where)
    return out


def flavor(G_kwargs: Mapping | None) -> str:
    """'ada' (stylegan2-ada-pytorch: nested ``synthesis_kwargs``) or 'stylegan3' (its networks_stylegan2.py: flat).
    Their constructors' defaults differ: conv_clamp None vs 256 (G and D), fused_modconv_default (stylegan3: True;
    ada has no such argument and fuses only in inference, our 'inference_only')."""
    return "ada" if G_kwargs is not None and "synthesis_kwargs" in G_kwargs else "stylegan3"


def generator_kwargs(official: Mapping) -> dict[str, Any]:
    """Translate official ``G_kwargs`` into ``stylegan.networks.Generator`` arguments; an argument the blob leaves
    out takes the default of the official constructor it was written for (see :func:`flavor`)."""
    src = dict(official)
    ada = flavor(src) == "ada"
    src.update(dict(src.pop("synthesis_kwargs", None) or {}))  # ada nests the synthesis arguments
    out = _take(src, _G_KEYS)
    out["conv_clamp"] = src.pop("conv_clamp", None if ada else 256)
    out.setdefault("fused_modconv_default", "inference_only" if ada else True)
    out["mapping_kwargs"] = _mapping_kwargs(src.pop("mapping_kwargs", None), "G_kwargs.mapping_kwargs")
    _check_defaults(src, "G_kwargs")
    return out


def discriminator_kwargs(official: Mapping, flavor: str = "stylegan3") -> dict[str, Any]:
    """Translate official ``D_kwargs`` into ``stylegan.networks.Discriminator`` arguments. Both codebases nest D's
    arguments alike, so ``flavor`` (from the blob's G_kwargs) picks the constructor defaults."""
    src = dict(official)
    out = _take(src, _D_KEYS)
    out["conv_clamp"] = src.pop("conv_clamp", None if flavor == "ada" else 256)
    epilogue = dict(src.pop("epilogue_kwargs", None) or {})
    out.update({k: epilogue.pop(k) for k in ("mbstd_group_size", "mbstd_num_channels") if k in epilogue})
    _check_defaults(epilogue, "D_kwargs.epilogue_kwargs")
    _check_defaults(dict(src.pop("block_kwargs", None) or {}), "D_kwargs.block_kwargs")
    out["mapping_kwargs"] = _mapping_kwargs(src.pop("mapping_kwargs", None), "D_kwargs.mapping_kwargs")
    _check_defaults(src, "D_kwargs")
    return out


def load_checked(module: nn.Module, state_dict: Mapping[str, torch.Tensor], name: str) -> None:
    """``load_state_dict`` that reports every missing, unexpected and mis-shaped key in one error."""
    own = module.state_dict()
    state = dict(state_dict)
    for k, v in own.items():
        if k.endswith("resample_filter"):
            if k in state and not torch.allclose(state[k].float(), v):
                raise OfficialWeightsError(f"{name}: {k} is not the [1,3,3,1] filter; no other is supported")
            state[k] = v
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: {tuple(state[k].shape)} vs ours {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{label} {items}" for label, items in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", shapes)) if items]
        raise OfficialWeightsError(f"{name} state_dict does not match its kwargs: " + "; ".join(parts))
    module.load_state_dict(state)


def load_official(blob: Mapping[str, Any], g_key: str = "G") -> tuple[Generator | None, Discriminator | None]:
    """Build (G, D) from an official-format blob; a network whose state_dict is absent is returned as None. A blob
    with D alone takes stylegan3's defaults (conv_clamp 256) for what its D_kwargs leave out."""
    G = D = None
    if blob.get(g_key) is not None:
        if blob.get("G_kwargs") is None:
            raise OfficialWeightsError(f"blob has '{g_key}' but no 'G_kwargs' to build it from")
        G = Generator(**generator_kwargs(blob["G_kwargs"]))
        load_checked(G, blob[g_key], g_key)
    if blob.get("D") is not None:
        if blob.get("D_kwargs") is None:
            raise OfficialWeightsError("blob has 'D' but no 'D_kwargs' to build it from")
        D = Discriminator(**discriminator_kwargs(blob["D_kwargs"], flavor(blob.get("G_kwargs"))))
        load_checked(D, blob["D"], "D")
    return G, D


def load_official_file(path: str | os.PathLike,
                       g_key: str | None = None) -> tuple[Generator | None, Discriminator | None]:
    """``load_official`` of a file: a ``torch.save``-d blob (loaded with ``weights_only=True``; ``g_key`` None means
    'G') or an NVlabs network pickle, told apart by content (:func:`stylegan.official_pickle.is_network_pickle`) and
    read without running its code; for a pickle, ``g_key`` None means 'G_ema' (what the official tools use; 'G' is
    the training generator). TensorFlow network pickles (the StyleGAN2 paper's ``(G, D, Gs)``) are converted by
    :mod:`stylegan.official_tf`; their 'G_ema' is Gs."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"official weights file not found: {path}")
    if is_network_pickle(path):
        data = read_network_pickle(path)
        if is_tf_pickle(data):
            return _load_tf(data, path, g_key or "G_ema")
        blob = network_blob(data, path)
        try:
            return load_official(blob, g_key=g_key or "G_ema")
        except OfficialWeightsError as e:
            raise OfficialWeightsError(f"{path}: {e}") from None
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, Mapping):
        raise OfficialWeightsError(f"{path}: expected a dict with 'G'/'D' and 'G_kwargs'/'D_kwargs'")
    return load_official(blob, g_key=g_key or "G")


def _load_tf(data: Any, path: str | os.PathLike, g_key: str) -> tuple[Generator, Discriminator]:
    """(G, D) of a TensorFlow network pickle (:mod:`stylegan.official_tf`); ``g_key`` 'G_ema' is its Gs."""
    nets = tf_networks(data, path)
    if g_key not in nets or g_key == "D":
        raise OfficialWeightsError(f"{path}: a TensorFlow network pickle has generators 'G_ema' (Gs) and 'G', not "
                                   f"{g_key!r}")
    out = []
    for key, cls in ((g_key, Generator), ("D", Discriminator)):
        kwargs, state = nets[key]
        try:
            net = cls(**kwargs)
        except ValueError as e:
            raise OfficialWeightsError(f"{path}: its {key} cannot be built here ({e})") from None
        try:
            load_checked(net, state, "Gs" if key == "G_ema" else key)  # the TF name
        except OfficialWeightsError as e:
            raise OfficialWeightsError(f"{path}: {e}") from None
        out.append(net)
    return out[0], out[1]


def export_official(G: Generator | None = None, D: Discriminator | None = None) -> dict[str, Any]:
    """The inverse of ``load_official``: official state_dicts and constructor kwargs."""
    blob: dict[str, Any] = {"G": None, "D": None, "G_kwargs": None, "D_kwargs": None}
    if G is not None:
        kw = dict(G.init_kwargs)
        if (style := kw.pop("style_block")) != "demod":
            raise OfficialWeightsError(f"only style_block='demod' generators exist in the official StyleGAN2 code; "
                                       f"this one has style_block={style!r}, whose parameters have no official names")
        if (labels := kw["mapping_kwargs"].get("label_embedding", "embed")) != "embed":
            raise OfficialWeightsError(f"the official PyTorch generator embeds labels with an FC layer; this one has "
                                       f"mapping_kwargs.label_embedding={labels!r} (the TF code's), no official form")
        if kw.pop("output_activation", "linear") != "linear":
            raise OfficialWeightsError("the official generator has no output activation: a G trained with "
                                       "model.generator.output_activation=tanh cannot be exported to its format")
        blob["G"], blob["G_kwargs"] = _full_resolution(G.state_dict(), kw, "torgb", "synthesis."), kw
    if D is not None:
        kw = dict(D.init_kwargs)
        if (down := kw.pop("downsampling", "fir")) != "fir":
            raise OfficialWeightsError(f"the official StyleGAN2 discriminator down-samples with its FIR filter; this "
                                       f"one has downsampling={down!r} (StyleGAN1's D), which has no official form")
        if (labels := kw.pop("label_conditioning", "projection")) != "projection":
            raise OfficialWeightsError(f"the official PyTorch discriminator is a projection D; this one has "
                                       f"label_conditioning={labels!r} (the TF code's label switch), no official form")
        state = _full_resolution(D.state_dict(), kw, "fromrgb", "")
        kw["epilogue_kwargs"] = {k: kw.pop(k) for k in ("mbstd_group_size", "mbstd_num_channels")}
        blob["D"], blob["D_kwargs"] = state, kw
    return blob


def _full_resolution(state: dict[str, Any], kw: dict[str, Any], rgb: str, prefix: str) -> dict[str, Any]:
    """A progressive-growing network (networks/progressive.py) at lod 0 is the plain 'orig' one: pops
    ``progressive`` from ``kw`` and drops the ToRGB / FromRGB layers of the resolutions below the full one."""
    if not kw.pop("progressive", False):
        return state
    keep = f"{prefix}b{kw['img_resolution']}.{rgb}."
    return {k: v for k, v in state.items() if f".{rgb}." not in f".{k}" or k.startswith(keep)}
