"""An offline W&B run file (``run-*.wandb``) as its protobuf records, for tests: the reassembly of the file's log
records is the report's own (``stylegan.report.wandb_files.records``, tested on a hand-built file in
tests/test_report_wandb.py); each payload is parsed here as a ``wandb_internal_pb2.Record``."""

from __future__ import annotations

from pathlib import Path

from wandb.proto import wandb_internal_pb2

from stylegan.report.wandb_files import records as payloads


def records(path: Path) -> list:
    result = []
    for raw in payloads(path):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(raw)
        result.append(rec)
    return result
