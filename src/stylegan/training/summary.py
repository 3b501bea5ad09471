"""The model summary printed at the start of a run: Lightning's table without its FLOPs column.

Lightning counts FLOPs only by running ``example_input_array`` through ``forward``; the training module has neither
(its phases call G and D directly), so Lightning's column and its "Total Flops" line always read 0. This summary
shows what is known: each sub-network's parameters and mode, and the totals.
"""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary import get_human_readable_count

log = logging.getLogger(__name__)

COLUMNS = (" ", "Name", "Type", "Params", "Mode")


def summary_table(summary_data: list[tuple[str, list[str]]], total: int, trainable: int, size_mb: float) -> str:
    """``summary_data``: Lightning's (header, cells) columns; the FLOPs and any other column not in COLUMNS is left
    out."""
    cols = [(head, cells) for head, cells in summary_data if head in COLUMNS]
    widths = [max([len(head)] + [len(str(c)) for c in cells]) for head, cells in cols]
    rule = "-" * (sum(widths) + 3 * len(widths))
    lines = [" | ".join(head.ljust(w) for (head, _), w in zip(cols, widths, strict=True)), rule]
    rows = len(cols[0][1]) if cols else 0
    lines += [" | ".join(str(cells[i]).ljust(w) for (_, cells), w in zip(cols, widths, strict=True))
              for i in range(rows)]
    lines += [rule, f"{get_human_readable_count(trainable):<10}Trainable params",
              f"{get_human_readable_count(total - trainable):<10}Non-trainable params",
              f"{get_human_readable_count(total):<10}Total params",
              f"{size_mb:<10,.3f}Total estimated model params size (MB)"]
    return "\n".join(lines)


class ParameterSummary(ModelSummary):
    """``ModelSummary`` whose table has no FLOPs column and no "Total Flops" line (they would always read 0)."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int,
                  **summarize_kwargs: Any) -> None:
        log.info("\n%s", summary_table(summary_data, total_parameters, trainable_parameters, model_size))
