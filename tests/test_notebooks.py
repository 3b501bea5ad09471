"""The notebooks, executed for real (nbclient, a Python kernel) on a tiny sweep (conftest ``grid``) and one of its
checkpoints, so they never rot. They are committed without outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.xdist_group("grid")  # the session sweep grid: one worker builds it (conftest)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, cwd: Path, monkeypatch, **env: str) -> nbformat.NotebookNode:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} is committed with outputs"
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if kind in o.get("data", {})]


def test_ablation_report_notebook(grid, monkeypatch, tmp_path):
    grid = Path(shutil.copytree(grid, tmp_path / "sweep"))  # the notebook rewrites report.md: not the shared one
    nb = execute("01_ablation_report.ipynb", grid.parent, monkeypatch, STYLEGAN_SWEEP=str(grid))
    (table,) = _outputs(nb, "text/markdown")
    text = table["data"]["text/markdown"]
    for job, g, d in [(0, "orig", "orig"), (1, "orig", "resnet"), (2, "skip", "orig"), (3, "skip", "resnet")]:
        assert f"| {job} | {g} | {d} | completed |" in text
    assert len(_outputs(nb, "image/png")) == 2  # the curves and the side-by-side sample grids


def test_latent_space_notebook(grid, monkeypatch):
    ckpt = grid / "1" / "checkpoints" / "last.ckpt"
    nb = execute("02_latent_space.ipynb", grid.parent, monkeypatch, STYLEGAN_CKPT=str(ckpt))
    assert len(_outputs(nb, "image/png")) == 5  # truncation, 3 style-mixing crossovers, interpolation
