"""`make test` runs on two xdist workers with ``--dist loadgroup``: the tests of one ``xdist_group`` (the session's
sweep grid, built once) must run on one worker. pytest 9.2 with xdist 3.8 silently split them (hence pytest < 9)."""

from __future__ import annotations

import os

import pytest

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def ledger(tmp_path_factory):
    """One folder for every worker of this run (the workers' base temps share a parent)."""
    root = tmp_path_factory.getbasetemp()
    return (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "grouping"


@pytest.mark.xdist_group("grouping")
@pytest.mark.parametrize("i", range(4))
def test_a_group_runs_on_one_worker(ledger, i):
    ledger.mkdir(exist_ok=True)
    (ledger / f"{i}-{WORKER}").touch()
    seen = {p.name.split("-", 1)[1] for p in ledger.iterdir()}
    assert seen == {WORKER}, f"the group's tests ran on {sorted(seen)}"
