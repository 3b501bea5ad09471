"""The TensorFlow network pickles of the StyleGAN2 paper (NVlabs/stylegan2: Table 1 configs B-F, the 'orig' / 'skip' /
'resnet' G and D of Table 2, the published ``stylegan2-*-config-f.pkl``) and of StyleGAN2-ADA's TensorFlow code
(NVlabs/stylegan2-ada), read without running any of their code.

Such a file pickles the tuple ``(G, D, Gs)`` of ``dnnlib.tflib.network.Network`` objects (Gs: the moving average of
G, what the official tools use). A Network's pickled state (tflib/network.py ``__getstate__``) holds its build
function's name and keyword arguments (``build_func_name``, ``static_kwargs``), its sub-networks (``components``:
G's 'mapping' and 'synthesis'), its own ``variables`` as (name, numpy array) pairs, and the Python source of the
module that defines it (``build_module_src``, which the official loader ``exec``-s). :mod:`stylegan.official_pickle`
keeps the state as a :class:`~stylegan.official_pickle.TFNetwork` record and drops the source unread.

The conversion follows stylegan2-ada-pytorch's ``legacy.py`` (``convert_tf_generator`` /
``convert_tf_discriminator``): channel_base = 2 * fmap_base; TF weights [k, k, in, out] become [out, in, k, k]
(up-sampling convs flipped: the PyTorch code convolves where TF's transposed conv correlates); dense weights are
transposed; the style bias gains the +1 that TF adds at run time; noise inputs ``noise{i}`` go to layer i's
``noise_const``. Beyond legacy.py: the TF defaults of each build function where legacy.py's differ (D_stylegan2
groups the minibatch std by 4 when no group size is given, legacy.py by the whole batch; networks_stylegan2.py's
mapping layers default to 512 features); the stylegan2 code's conditional networks (label concatenated to z in G,
label switch in D) as ``label_embedding='concat'`` / ``label_conditioning='switch'``; configs B-D
(G_synthesis_stylegan_revised, D_stylegan), which at level of detail 0 compute exactly the 'orig' G and D of
networks_stylegan2.py (the same layer functions) and keep a ToRGB_lod{k} / FromRGB_lod{k} per resolution, as the
project's progressive 'orig' networks (``progressive=True``, lod 0). Refused in one line naming it: config A's
StyleGAN networks (G_style, D_basic), networks saved during progressive growing (lod != 0), arguments this project
cannot honor, unknown variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import torch

from .official_pickle import OfficialWeightsError, TFNetwork

# build function -> flavor ('stylegan2': NVlabs/stylegan2 networks_stylegan2.py; 'ada': NVlabs/stylegan2-ada)
# 'revised': configs B-D (G_synthesis_stylegan_revised, D_stylegan: progressive growing), read at lod 0.
_SYNTHESIS = {"G_synthesis_stylegan2": "stylegan2", "G_synthesis": "ada", "G_synthesis_stylegan_revised": "revised"}
_DISCRIMINATORS = {"D_stylegan2": "stylegan2", "D_main": "ada", "D_stylegan": "revised"}
_REFUSED = {
    "G_style": "the original StyleGAN generator, StyleGAN2 config A",
    "D_basic": "the original StyleGAN discriminator, StyleGAN2 config A",
}
SUPPORTED = ("G_main with G_mapping and G_synthesis_stylegan2 (StyleGAN2 configs E-F), G_synthesis_stylegan_revised "
             "(configs B-D) or G_synthesis (StyleGAN2-ADA TensorFlow); D_stylegan2, D_stylegan or D_main")
# Arguments that only select run-time modes, precision or training behaviour: accepted, no effect on the weights.
_RUNTIME = {"truncation_psi", "truncation_cutoff", "truncation_psi_val", "truncation_cutoff_val", "style_mixing_prob",
            "randomize_noise", "fused_modconv", "dtype", "num_fp16_res", "structure", "freeze_layers",
            "mapping_func", "synthesis_func", "is_template_graph", "augment_strength", "pagan_num", "pagan_fade",
            "adaptive_dropout"}  # adropout scales D's features by exp(randn * augment_strength * it): training only


def is_tf_pickle(data: Any) -> bool:
    """Whether unpickled contents are TF networks (the ``(G, D, Gs)`` tuple, or anything holding a TFNetwork)."""
    items = data if isinstance(data, (tuple, list)) else data.values() if isinstance(data, dict) else [data]
    return any(isinstance(x, TFNetwork) for x in items)


class _Kwargs:
    """A network's static_kwargs, read with the TF build function's defaults; :meth:`finish` refuses leftovers."""

    def __init__(self, net: TFNetwork, where: str) -> None:
        self.src, self.where, self.used = dict(net.static_kwargs), where, set(_RUNTIME)

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.src.get(key, default)

    def require(self, key: str, allowed: Any, default: Any) -> None:
        """``key`` must be ``allowed`` (None or absent: ``default``)."""
        value = self.get(key, default)
        value = default if value is None else value
        if (list(value) if isinstance(value, (list, tuple)) else value) != allowed:
            raise OfficialWeightsError(f"{self.where}: {key}={value!r} is not supported (only {allowed!r})")

    def finish(self) -> None:
        unknown = sorted(set(self.src) - self.used)
        if unknown:
            raise OfficialWeightsError(f"{self.where}: unknown TensorFlow arguments {unknown} (supported networks: "
                                       f"{SUPPORTED})")


def _channels(kw: _Kwargs, resolution: int) -> tuple[int, int]:
    """(channel_base, channel_max) of the TF ``nf(stage) = clip(fmap_base / 2**stage, fmap_min, fmap_max)``, which is
    ``min(2 * fmap_base // res, fmap_max)`` at resolution res when fmap_decay is 1 and fmap_min never clips."""
    base, fmax = int(kw.get("fmap_base", 16384)), int(kw.get("fmap_max", 512))
    kw.require("fmap_decay", 1, 1)
    fmin = kw.get("fmap_min", 1)
    if min(2 * base // resolution, fmax) < fmin:
        raise OfficialWeightsError(f"{kw.where}: fmap_min={fmin} clips the channel counts (only fmap_min <= "
                                   f"{min(2 * base // resolution, fmax)} is supported)")
    return 2 * base, fmax


def _common(kw: _Kwargs, resolution_default: int = 1024) -> dict[str, Any]:
    out = {"img_resolution": int(kw.get("resolution", resolution_default)),
           "img_channels": int(kw.get("num_channels", 3)), "c_dim": int(kw.get("label_size", 0)),
           "conv_clamp": kw.get("conv_clamp")}
    out["channel_base"], out["channel_max"] = _channels(kw, out["img_resolution"])
    kw.require("nonlinearity", "lrelu", "lrelu")
    kw.require("resample_kernel", [1, 3, 3, 1], [1, 3, 3, 1])
    return out


def _component(net: TFNetwork, name: str, where: str) -> TFNetwork:
    comp = net.components.get(name)
    if not isinstance(comp, TFNetwork):
        raise OfficialWeightsError(f"{where} has no '{name}' sub-network")
    return comp


def _refuse_unsupported(func: Any, where: str) -> None:
    what = _REFUSED.get(func, "a network this project does not convert")
    raise OfficialWeightsError(f"{where} was built by {func} ({what}); only {SUPPORTED} load")


def generator_kwargs(G: TFNetwork, where: str) -> tuple[dict[str, Any], str]:
    """The project's ``Generator`` arguments of a TF G_main, and its flavor ('stylegan2' or 'ada')."""
    if G.build_func_name != "G_main":
        _refuse_unsupported(G.build_func_name, where)
    synthesis, mapping = _component(G, "synthesis", where), _component(G, "mapping", where)
    if synthesis.build_func_name not in _SYNTHESIS:
        _refuse_unsupported(synthesis.build_func_name, f"{where} synthesis")
    if mapping.build_func_name != "G_mapping":
        _refuse_unsupported(mapping.build_func_name, f"{where} mapping")
    flavor = _SYNTHESIS[synthesis.build_func_name]
    kw = _Kwargs(G, where)
    out = _common(kw)
    out.update(z_dim=int(kw.get("latent_size", 512)), w_dim=int(kw.get("dlatent_size", 512)),
               architecture=kw.get("architecture", "skip"), use_noise=bool(kw.get("use_noise", True)),
               fused_modconv_default="inference_only")
    channels4 = min(out["channel_base"] // 4, out["channel_max"])
    kw.require("fmap_const", channels4, channels4)
    kw.require("mapping_nonlinearity", "lrelu", "lrelu")
    kw.require("normalize_latents", True, True)
    beta = kw.get("dlatent_avg_beta", kw.get("w_avg_beta", 0.995))  # legacy.py's 'w_avg_beta'; None: not tracked
    labels = {n.split("/")[0] for n, _ in mapping.variables if n.startswith("Label")}
    mapping_kwargs = {"num_layers": int(kw.get("mapping_layers", 8)), "lr_multiplier": kw.get("mapping_lrmul", 0.01),
                      "w_avg_beta": 1.0 if beta is None else beta,
                      "layer_features": kw.get("mapping_fmaps", None if flavor == "ada" else 512)}
    label_fmaps = kw.get("label_fmaps")
    if out["c_dim"] and labels == {"LabelConcat"}:  # stylegan2's G_mapping: concat(z, c @ E), then normalized
        mapping_kwargs["label_embedding"] = "concat"
    elif out["c_dim"]:  # stylegan2-ada's: an FC embedding of c (label_fmaps, default latent_size), normalized apart
        mapping_kwargs["embed_features"] = out["z_dim"] if label_fmaps is None else int(label_fmaps)
    kw.finish()
    out["mapping_kwargs"] = mapping_kwargs
    if flavor != "ada":  # networks_stylegan2.py has neither argument (its **_kwargs swallow them)
        out.update(conv_clamp=None, use_noise=True)
    if flavor == "revised":  # at lod 0: the 'orig' G, with a ToRGB at every resolution
        out.update(architecture="orig", progressive=True)
    return out, flavor


def discriminator_kwargs(D: TFNetwork, where: str) -> tuple[dict[str, Any], str]:
    """The project's ``Discriminator`` arguments of a TF D_stylegan2 / D_main, and its flavor."""
    if D.build_func_name not in _DISCRIMINATORS:
        _refuse_unsupported(D.build_func_name, where)
    flavor = _DISCRIMINATORS[D.build_func_name]
    kw = _Kwargs(D, where)
    out = _common(kw)
    out["architecture"] = kw.get("architecture", "resnet")
    if flavor == "revised":  # D_stylegan at lod 0: the 'orig' D, with a FromRGB at every resolution
        out.update(architecture="orig", progressive=True)
    group, features = kw.get("mbstd_group_size", None if flavor == "ada" else 4), kw.get("mbstd_num_features", 1)
    if flavor != "ada" and group is not None and group <= 1:  # networks_stylegan2.py skips the layer for group <= 1
        group, features = None, 0
    out.update(mbstd_group_size=group, mbstd_num_channels=int(features))
    for key, allowed, default in (("use_pagan", False, False), ("use_spectral_norm", False, False),
                                  ("score_size", 1, 1), ("score_max", 1, 1)):  # stylegan2-ada's comparison methods
        kw.require(key, allowed, default)
    if flavor == "ada":
        cmap = kw.get("mapping_fmaps")
        cmap = min(out["channel_base"] // 2, out["channel_max"]) if cmap is None else int(cmap)  # nf(0)
        mapping = {"num_layers": int(kw.get("mapping_layers", 0)), "embed_features": cmap, "layer_features": cmap,
                   "lr_multiplier": kw.get("mapping_lrmul", 0.1)}
        if out["c_dim"]:
            out.update(cmap_dim=cmap, mapping_kwargs=mapping)
    elif out["c_dim"]:
        out["label_conditioning"] = "switch"  # Output has one logit per class; the score is <logits, c>
    if flavor != "ada":
        out["conv_clamp"] = None  # networks_stylegan2.py never clamps (conv_clamp is stylegan2-ada's)
    kw.finish()
    return out, flavor


def _conv(flip: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """TF [k, k, in, out] -> [out, in, k, k]; ``flip``: the up-sampling convs (see the module docstring)."""
    return lambda w: (w.flip([0, 1]) if flip else w).permute(3, 2, 0, 1)


def _dense(w: torch.Tensor) -> torch.Tensor:
    return w.t()


_LAYER = {"weight": ("weight", _conv()), "bias": ("bias", None), "noise_strength": ("noise_strength", None),
          "mod_weight": ("affine.weight", _dense), "mod_bias": ("affine.bias", lambda b: b + 1)}
_LAYER_UP = {**_LAYER, "weight": ("weight", _conv(flip=True))}


def _generator_name(name: str) -> tuple[str, Callable | None] | None:
    """The project's state_dict key (and transform) of a TF G variable ('mapping/...', 'synthesis/...' or own)."""
    if name == "dlatent_avg":
        return "mapping.w_avg", None
    if m := re.fullmatch(r"mapping/Dense(\d+)/(weight|bias)", name):
        return f"mapping.fc{int(m[1])}.{m[2]}", _dense if m[2] == "weight" else None
    if m := re.fullmatch(r"mapping/LabelEmbed/(weight|bias)", name):
        return f"mapping.embed.{m[1]}", _dense if m[1] == "weight" else None
    if name == "mapping/LabelConcat/weight":
        return "mapping.label_concat", None
    if m := re.fullmatch(r"synthesis/noise(\d+)", name):  # layer i: b4.conv1, then b8.conv0, b8.conv1, b16.conv0 ...
        i = int(m[1])
        layer = "b4.conv1" if i == 0 else f"b{2 ** ((i + 5) // 2)}.conv{0 if i % 2 else 1}"
        return f"synthesis.{layer}.noise_const", lambda x: x[0, 0]
    if name == "synthesis/4x4/Const/const":
        return "synthesis.b4.const", lambda x: x[0]
    if m := re.fullmatch(r"synthesis/(\d+)x\1/(Conv|Conv0_up|Conv1|ToRGB)/(\w+)", name):
        layer = {"Conv": "conv1", "Conv0_up": "conv0", "Conv1": "conv1", "ToRGB": "torgb"}[m[2]]
        if m[2] != "ToRGB" and (m[2] == "Conv") != (m[1] == "4"):  # 'Conv' at 4x4 only, Conv0_up / Conv1 above it
            return None
        if layer == "torgb" and m[3] == "noise_strength":
            return None
        key = (_LAYER_UP if m[2] == "Conv0_up" else _LAYER).get(m[3])
        return None if key is None else (f"synthesis.b{m[1]}.{layer}.{key[0]}", key[1])
    if m := re.fullmatch(r"synthesis/(\d+)x\1/Skip/weight", name):
        return f"synthesis.b{m[1]}.skip.weight", _conv(flip=True)
    return None


def _discriminator_name(name: str) -> tuple[str, Callable | None] | None:
    """The project's state_dict key (and transform) of a TF D variable."""
    if m := re.fullmatch(r"(\d+)x\1/(FromRGB|Conv0|Conv1_down|Skip|Conv|Dense0)/(weight|bias)", name):
        res, layer, leaf = m[1], m[2], m[3]
        if (res == "4") != (layer in ("Conv", "Dense0")) and layer != "FromRGB":
            return None
        block = {"FromRGB": "fromrgb", "Conv0": "conv0", "Conv1_down": "conv1", "Skip": "skip", "Conv": "conv",
                 "Dense0": "fc"}[layer]
        return f"b{res}.{block}.{leaf}", (_dense if layer == "Dense0" else _conv()) if leaf == "weight" else None
    if m := re.fullmatch(r"(Output|LabelEmbed|Mapping(\d+))/(weight|bias)", name):
        key = "b4.out" if m[1] == "Output" else "mapping.embed" if m[1] == "LabelEmbed" else f"mapping.fc{int(m[2])}"
        return f"{key}.{m[3]}", _dense if m[3] == "weight" else None
    return None


def _variables(net: TFNetwork, prefix: str = "") -> dict[str, Any]:
    """All variables of ``net`` and its sub-networks, named 'component/variable' as legacy.py collects them."""
    out = {prefix + str(name): value for name, value in net.variables}
    for name, comp in net.components.items():
        if isinstance(comp, TFNetwork):
            out.update(_variables(comp, f"{prefix}{name}/"))
    return out


def _lod_variables(variables: dict[str, Any], resolution: int, where: str) -> dict[str, Any]:
    """``ToRGB_lod{k}`` / ``FromRGB_lod{k}`` (configs B-D) are the layers at resolution R >> k (legacy.py's renaming);
    the level of detail ``lod`` must be 0: a final network (TF fades its lower resolutions in otherwise)."""
    out = {}
    for name, value in variables.items():
        if name.rsplit("/", 1)[-1] == "lod":
            lod = value.tensor if hasattr(value, "tensor") else value
            if lod is None or float(lod) != 0:
                raise OfficialWeightsError(f"{where} was saved during progressive growing ({name}={lod!r}); only "
                                           "networks at lod 0 (trained up to the full resolution) load")
            continue
        if m := re.fullmatch(r"(synthesis/)?(ToRGB|FromRGB)_lod(\d+)/(\w+)", name):
            r = resolution >> int(m[3])
            name = f"{m[1] or ''}{r}x{r}/{m[2]}/{m[4]}"
        out[name] = value
    return out


def state_dict(net: TFNetwork, rename: Callable, where: str, resolution: int) -> dict[str, torch.Tensor]:
    """The project's state_dict of a TF network's variables; an unknown variable or a non-numeric one is refused."""
    out = {}
    for name, value in _lod_variables(_variables(net), resolution, where).items():
        target = rename(name)
        if isinstance(value, float):  # a 0-d variable: TF's session.run gives a numpy scalar
            value = torch.tensor(value)
        tensor = value if isinstance(value, torch.Tensor) else getattr(value, "tensor", None)
        if target is None:
            raise OfficialWeightsError(f"{where}: unknown TensorFlow variable '{name}' (only the variables of "
                                       f"{SUPPORTED} are converted)")
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise OfficialWeightsError(f"{where}: variable '{name}' is not a float array")
        key, fn = target
        try:
            out[key] = (fn(tensor) if fn is not None else tensor).float().contiguous()
        except (IndexError, RuntimeError) as e:
            raise OfficialWeightsError(f"{where}: variable '{name}' has shape {list(tensor.shape)}, which does not "
                                       f"fit {key} ({str(e).splitlines()[0][:120]})") from None
    return out


def tf_networks(data: Any, path: str | os.PathLike) -> dict[str, tuple[dict[str, Any], dict[str, torch.Tensor]]]:
    """``{'G_ema': (Generator kwargs, state_dict), 'G': ..., 'D': (Discriminator kwargs, state_dict)}`` of a TF
    network pickle's contents ``(G, D, Gs)``; G_ema is Gs. Refusals are one-line ``OfficialWeightsError``-s."""
    if not (isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetwork) for n in data)):
        raise OfficialWeightsError(f"{path} holds TensorFlow networks but not the (G, D, Gs) tuple of a StyleGAN2 "
                                   "network pickle")
    out = {}
    for key, net in (("G_ema", data[2]), ("G", data[0]), ("D", data[1])):
        where = f"{path}: {'Gs' if key == 'G_ema' else key} ({net.name})"
        try:
            kwargs, _ = (discriminator_kwargs if key == "D" else generator_kwargs)(net, where)  # names checked first
            if not isinstance(net.version, int) or net.version < 4:
                raise OfficialWeightsError(f"{where} has TF network pickle version {net.version!r}, older than "
                                           "StyleGAN2's (version 4); only StyleGAN2 TF pickles load")
            rename = _discriminator_name if key == "D" else _generator_name
            out[key] = kwargs, state_dict(net, rename, where, kwargs["img_resolution"])
        except OfficialWeightsError:
            raise
        except (TypeError, ValueError, AttributeError) as e:  # malformed kwargs or components
            raise OfficialWeightsError(f"{where} is malformed ({str(e).splitlines()[0][:200]})") from None
    return out

