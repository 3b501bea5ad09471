"""Atomic writes: a failed write leaves the previous file intact and no temp file behind."""

from __future__ import annotations

import pytest

from stylegan.utils.atomic import atomic_open


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "stats.json"
    with atomic_open(path, "w") as f:
        f.write("old")
    with pytest.raises(RuntimeError), atomic_open(path, "w") as f:
        f.write("half of the new")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    with atomic_open(path, "w") as f:
        f.write("new")
    assert path.read_text() == "new" and sorted(p.name for p in path.parent.iterdir()) == ["stats.json"]
