"""What a network records of its constructor arguments (``init_kwargs``): the dict that checkpoints, exports
(``stylegan export``), official-format files and the resume / fine-tuning checks use to rebuild or compare it.

One rule for G and D: the arguments of the official StyleGAN2 network (stylegan2-ada-pytorch's ``init_kwargs``) are
always recorded; the project's extensions (output activation, progressive growing, StyleGAN1's down-sampling, the TF
label embedding / switch) only where they differ from their default. So a network the official code can build
records exactly the official kwargs, and files written before an extension existed still compare equal.
"""

from __future__ import annotations

from typing import Any


def recorded_kwargs(always: dict[str, Any], extensions: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """``always``: name -> value; ``extensions``: name -> (value, default), recorded only when value != default."""
    kwargs = dict(always)
    kwargs.update({name: value for name, (value, default) in extensions.items() if value != default})
    return kwargs


def flat(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Nested argument dicts spread out (``mapping_kwargs.num_layers``), so that one of their keys can differ."""
    out = {k: v for k, v in kwargs.items() if not isinstance(v, dict)}
    out.update({f"{k}.{kk}": vv for k, v in kwargs.items() if isinstance(v, dict) for kk, vv in v.items()})
    return out


def differences(theirs: dict[str, Any], ours: dict[str, Any], key: str, where: str, only_shared: bool = False,
                ignore: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The recorded arguments in which a file (``theirs``, "in the ``where``") and this run (``ours``) differ, as
    ``<key>.<name>=<theirs> in the <where>, <ours> here``; nested dicts compared key by key. ``only_shared``: only
    names both record (a file may leave defaults out); ``ignore``: names that do not matter to the caller."""
    a, b = flat(theirs), flat(ours)
    names = (set(a) & set(b)) if only_shared else (set(a) | set(b))
    return [f"{key}.{n}={a.get(n)!r} in the {where}, {b.get(n)!r} here" for n in sorted(names - set(ignore))
            if a.get(n) != b.get(n)]
