"""Read NVlabs network pickles (stylegan2-ada-pytorch / stylegan3 ``network-snapshot-*.pkl``, the published FFHQ,
AFHQ, MetFaces ... models) without running any of their code.

Those files ``pickle.dump`` a dict ``{'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs', ...}`` whose
networks are ``torch_utils.persistence`` objects: each is stored as a call of ``_reconstruct_persistent_obj(meta)``
with the module's Python source (``meta['module_src']``, which the official loader ``exec``-s), its class name and
its ``__dict__`` (parameters, buffers, submodules, ``_init_kwargs``). :class:`SafeUnpickler` resolves only an
allow-list of globals, each to a harmless stand-in: a persistent object becomes a :class:`Module` record (the source
text is never looked at), tensors are rebuilt by torch's own functions from storages read with
``torch.load(weights_only=True)``, numpy scalars are decoded with ``struct`` and numeric numpy arrays from their raw
bytes (:class:`NumpyArray`); any other global is refused by name before it is called. The TensorFlow code's
networks (``dnnlib.tflib.network.Network``, the StyleGAN2 paper's pickles) become :class:`TFNetwork` records, whose
embedded ``build_module_src`` is dropped unread; :mod:`stylegan.official_tf` converts them.

:func:`network_blob` turns the records into the official-format blob of :mod:`stylegan.official`; the generator
that tools use is ``G_ema`` (as in the official ``gen_images.py``).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch


class OfficialWeightsError(ValueError):
    """Official weights (a blob or a network pickle) that do not match the networks they describe, or that this
    reader refuses. Defined here, the lower of the two official-format modules (``official`` imports this one)."""

_TORCH_LEGACY_HEAD = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)  # how a legacy torch.save file starts
_STRUCT = {"f8": "d", "f4": "f", "f2": "e", "i8": "q", "i4": "i", "i2": "h", "i1": "b",
           "u8": "Q", "u4": "I", "u2": "H", "u1": "B", "b1": "?"}


@dataclass
class Module:
    """A persistent network as data: what ``_reconstruct_persistent_obj`` would have built, without its code."""

    class_name: str
    init_args: tuple
    init_kwargs: dict[str, Any]
    tensors: dict[str, torch.Tensor]  # own parameters, then persistent buffers (torch's state_dict order)
    children: dict[str, Module]
    attrs: dict[str, Any]  # the other public attributes (z_dim, conv_clamp, weight_gain, ...)

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        out = {prefix + k: v.detach() for k, v in self.tensors.items()}
        for name, child in self.children.items():
            out.update(child.state_dict(f"{prefix}{name}."))
        return out

    def walk(self) -> Iterator[Module]:
        yield self
        for child in self.children.values():
            yield from child.walk()


class _Refused(pickle.UnpicklingError):
    """A global outside the allow-list; the message is its ``module.name``."""


class _Inert:
    """Stand-in for values this loader does not need (numpy arrays): accepts any arguments and state, holds nothing."""

    def __init__(self, *args: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _NumpyDType:
    """Stand-in for ``numpy.dtype``: remembers the type code (e.g. 'f8') and the byte order from its pickled state."""

    def __init__(self, code: Any, align: Any = False, copy: Any = False) -> None:
        self.code, self.order = str(code), "<"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">"):
            self.order = state[1]


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """Stand-in for ``numpy.core.multiarray.scalar``: a Python number for the plain numeric types, else inert."""
    fmt = _STRUCT.get(getattr(dtype, "code", ""))
    if fmt is None or not isinstance(data, bytes):
        return _Inert()
    return struct.unpack(dtype.order + fmt, data)[0]


class NumpyArray:
    """Stand-in for a pickled numpy array: ``tensor`` holds its data when the dtype is numeric (read from the raw bytes
    of its state with ``numpy.frombuffer``, which interprets bytes only), else None (object or string arrays)."""

    tensor: torch.Tensor | None = None

    def __init__(self, *args: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 5:  # (version, shape, dtype, is_fortran, raw bytes)
            self.tensor = _array_tensor(state[4], state[2], state[1], "F" if state[3] else "C")


def _array_tensor(raw: Any, dtype: Any, shape: Any, order: str) -> torch.Tensor | None:
    code = getattr(dtype, "code", "")
    if code not in _STRUCT or not isinstance(raw, (bytes, bytearray)) or not isinstance(shape, tuple):
        return None
    array = np.frombuffer(raw, dtype=np.dtype(code).newbyteorder(dtype.order)).reshape(shape, order=order)
    return torch.from_numpy(np.array(array, dtype=np.dtype(code), order="C"))  # a native-order, writable copy


def _numpy_frombuffer(buf: Any, dtype: Any, shape: Any, order: str = "C") -> NumpyArray:
    """Stand-in for ``numpy.core.numeric._frombuffer`` (how protocol 5 writes arrays; in-band buffers only)."""
    out = NumpyArray()
    out.tensor = _array_tensor(bytes(buf) if isinstance(buf, bytearray) else buf, dtype, tuple(shape), order)
    return out


class TFNetwork:
    """Stand-in for ``dnnlib.tflib.network.Network`` (the TensorFlow code's networks): the fields of its pickled state
    as data. ``build_module_src``, the Python source that the official loader ``exec``-s, is dropped unread."""

    version: Any = None
    name: Any = None
    build_func_name: Any = None
    static_kwargs: Mapping[str, Any] = MappingProxyType({})  # until __setstate__: read-only and empty
    components: Mapping[str, Any] = MappingProxyType({})
    variables: Sequence[Any] = ()

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("a TensorFlow network whose state is not a dict")
        self.version, self.name, self.build_func_name = (state.get(k) for k in ("version", "name", "build_func_name"))
        self.static_kwargs = dict(state.get("static_kwargs") or {})
        self.components = dict(state.get("components") or {})
        self.variables = list(state.get("variables") or [])


def _load_storage(data: Any) -> Any:
    """Stand-in for ``torch.storage._load_from_bytes``: the same bytes, read with torch's weights-only loader."""
    if not isinstance(data, bytes):
        raise pickle.UnpicklingError("a tensor storage that is not bytes")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _persistent_record(meta: Any) -> Module:
    """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``: a :class:`Module`, never the source."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise pickle.UnpicklingError("a persistent object that is not a class instance with a state")
    state = meta["state"]
    skip = set(state.get("_non_persistent_buffers_set") or ())
    tensors = {k: v for k, v in (state.get("_parameters") or {}).items() if v is not None}
    tensors.update({k: v for k, v in (state.get("_buffers") or {}).items() if v is not None and k not in skip})
    children = {k: v for k, v in (state.get("_modules") or {}).items() if v is not None}
    if not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise pickle.UnpicklingError(f"{meta.get('class_name')} has parameters or buffers that are not tensors")
    if not all(isinstance(v, Module) for v in children.values()):
        raise pickle.UnpicklingError(f"{meta.get('class_name')} has submodules that are not persistent networks")
    kwargs = state.get("_init_kwargs") or {}
    return Module(str(meta.get("class_name")), tuple(state.get("_init_args") or ()),
                  dict(kwargs) if isinstance(kwargs, dict) else {}, tensors, children,
                  {k: v for k, v in state.items() if not k.startswith("_")})


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record,
    ("dnnlib.util", "EasyDict"): dict,  # a dict with attribute access; its items are all that matter
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,  # protocol 3 (Python 3.7's default) writes sets as calls
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("numpy", "dtype"): _NumpyDType,
    ("numpy", "ndarray"): _Inert,
    ("dnnlib.tflib.network", "Network"): TFNetwork,
    **{(f"numpy.{core}.{module}", name): fn for core in ("core", "_core")
       for module, name, fn in (("multiarray", "scalar", _numpy_scalar), ("multiarray", "_reconstruct", NumpyArray),
                                ("numeric", "_frombuffer", _numpy_frombuffer))},
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickles only what NVlabs network pickles hold (see the module docstring); refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not used by network pickles")


def is_network_pickle(path: str | os.PathLike) -> bool:
    """Decided by content: a pickle stream (or any ``*.pkl``) that is not a ``torch.save`` file (zip archive or the
    legacy format's leading magic number); those are left to ``torch.load(weights_only=True)``."""
    with open(path, "rb") as f:
        head = f.read(len(_TORCH_LEGACY_HEAD))
    if head.startswith(b"PK\x03\x04") or head == _TORCH_LEGACY_HEAD:
        return False
    return head[:1] == b"\x80" or str(path).lower().endswith(".pkl")


def read_network_pickle(path: str | os.PathLike) -> Any:
    """The unpickled contents of ``path``, networks as :class:`Module` records; one-line ``OfficialWeightsError``."""
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f).load()
    except _Refused as e:
        raise OfficialWeightsError(f"{path} refers to {e}; refusing to unpickle it (only the globals of NVlabs "
                                   "network pickles are allowed)") from None
    except Exception as e:  # any malformed stream: pickle, struct, torch and type errors alike
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise OfficialWeightsError(f"{path} is not a readable network pickle ({why})") from None


def _network(data: dict, key: str, class_name: str, path: Any) -> Module | None:
    net = data.get(key)
    if net is None and key != "G_ema":
        return None
    if not isinstance(net, Module):
        raise OfficialWeightsError(f"{path}: its '{key}' entry is a {type(net).__name__}, not a network")
    if key == "G_ema" and any(m.class_name == "SynthesisInput" for m in net.walk()):
        raise OfficialWeightsError(f"{path} holds a StyleGAN3 (alias-free) generator, which this project does not "
                                   "implement; only StyleGAN2 network pickles load")
    if net.class_name != class_name:
        raise OfficialWeightsError(f"{path}: '{key}' is a {net.class_name}, not a StyleGAN2 {class_name}")
    if net.init_args:
        raise OfficialWeightsError(f"{path}: '{key}' was built with positional arguments; only keywords are read")
    return net


def network_blob(data: Any, path: str | os.PathLike = "network pickle") -> dict[str, Any]:
    """The official-format blob of a network pickle's contents (from :func:`read_network_pickle`).

    ``'G_ema'`` holds the generator to use (``load_official(blob, g_key='G_ema')``); ``'G'`` the training generator
    (None when absent or built with other kwargs), both described by ``'G_kwargs'``; ``'D'`` / ``'D_kwargs'``
    (None when absent). A stylegan2-ada-pytorch G built with default synthesis arguments gets an empty
    ``synthesis_kwargs`` so that :func:`stylegan.official.flavor` picks that code's defaults (its SynthesisBlock,
    unlike stylegan3's, has no ``fused_modconv_default`` attribute).
    """
    if not isinstance(data, dict) or "G_ema" not in data:
        raise OfficialWeightsError(f"{path} is not a StyleGAN2 network pickle (no 'G_ema' entry)")
    G_ema = _network(data, "G_ema", "Generator", path)
    G, D = _network(data, "G", "Generator", path), _network(data, "D", "Discriminator", path)
    G_kwargs = dict(G_ema.init_kwargs)
    synthesis = G_ema.children.get("synthesis")
    b4 = synthesis.children.get("b4") if synthesis is not None else None
    if b4 is not None and "fused_modconv_default" not in b4.attrs:
        G_kwargs.setdefault("synthesis_kwargs", {})
    return {"G_ema": G_ema.state_dict(), "G_kwargs": G_kwargs,
            "G": G.state_dict() if G is not None and G.init_kwargs == G_ema.init_kwargs else None,
            "D": None if D is None else D.state_dict(), "D_kwargs": None if D is None else dict(D.init_kwargs)}
