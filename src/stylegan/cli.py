"""The one-line rule of the entry points: bad input (a file, key or value at fault) is reported as one line
``<prog>: error: ...`` with exit code 2 and no traceback; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import gc
import os
import re
import sys
from typing import NoReturn

from hydra.errors import InstantiationException

from .data import DatasetError
from .metrics.extractors import MetricSetupError
from .official import OfficialWeightsError

BAD_INPUT: tuple[type[BaseException], ...] = (DatasetError, OfficialWeightsError, MetricSetupError)


def bad_input_line(e: BaseException, extra: tuple[type[BaseException], ...] = ()) -> str | None:
    """The one-line message for bad input, also when Hydra's instantiate wraps the project's ValueError ("Error in
    call to target ..."): then prefixed with the config key unless the message already names it. None: not bad
    input."""
    if isinstance(e, BAD_INPUT + extra):
        return str(e)
    if isinstance(e, InstantiationException) and isinstance(e.__cause__, ValueError):
        key, cause = re.search(r"full_key: (\S+)", str(e)), str(e.__cause__)
        named = key is None or cause.startswith(key.group(1).rsplit(".", 1)[-1] + ".")  # "loss.x ..." for model.loss
        return cause if named else f"{key.group(1)}: {cause}"
    return None


def first_process_on_node() -> bool:
    """False in the other processes of a multi-process launch on this machine (Lightning's DDP children and
    torchrun set LOCAL_RANK, srun SLURM_LOCALID): they meet the same bad input as the first and stay quiet."""
    return os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")) in ("", "0")


def refuse(prog: str, line: str) -> NoReturn:
    """``<prog>: error: <line>`` on stderr (once per machine under DDP, not once per rank), exit code 2."""
    if first_process_on_node():
        print(f"{prog}: error: {line}", file=sys.stderr)
    sys.exit(2)


def freeze_heap() -> None:
    """``gc.freeze()``: the objects alive now (the module graphs of torch, Lightning and Hydra) leave the cyclic
    garbage collector's reach, so neither its passes during the run nor the collections at interpreter exit walk
    them again. Measured: a short ``stylegan-train`` process, and every DDP rank, exits ~1.6 s sooner (7.3 -> 5.7 s)."""
    gc.freeze()
