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
