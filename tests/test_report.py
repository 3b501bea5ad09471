"""``stylegan.report`` on a sweep folder laid out as stylegan-train writes one (Hydra job folders, CSV logs,
status.json), with known values: seeds averaged per cell, unfinished and failed jobs marked, never dropped."""

from __future__ import annotations

import csv
import itertools
import json
import statistics
from pathlib import Path

import pytest

from stylegan.report import ReportError, write_report
from stylegan.report.__main__ import main

FD = "metrics/fid50k_full"


def _job(root: Path, num: int, overrides: list[str], values: list[float], status: str | None) -> None:
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / "csv").mkdir()
    with open(job / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "kimg", "loss/D", "step", FD, "timing/sec_per_kimg"])
        for i, v in enumerate(values):
            w.writerow([0, 0.5 * i + 0.25, 1.0, 10 * i, "", 3.0 + num])  # a training row
            w.writerow(["", 0.5 * (i + 1), "", 10 * i + 5, v, ""])  # a metric row
    if status:
        record = {"status": status, "job_num": num, **({"error": "ValueError: boom"} if status == "failed" else {})}
        (job / "status.json").write_text(json.dumps(record))


@pytest.fixture
def sweep(tmp_path) -> tuple[Path, dict]:
    """2 G archs x 2 gammas x 2 seeds; the last job is unfinished (running when killed), one failed."""
    root = tmp_path / "sweep"
    finals = {}
    for num, (g, gamma, seed) in enumerate(itertools.product(["orig", "skip"], ["1", "10"], ["0", "1"])):
        values = [50.0 - num, 40.0 - 2 * num + 0.5 * int(seed)]
        status = {7: "running", 5: "failed"}.get(num, "completed")
        _job(root, num, ["experiment=tiny", f"model/generator={g}", f"loss.r1_gamma={gamma}", f"seed={seed}"],
             values, status)
        finals[(g, gamma, seed)] = (values[-1], "unfinished" if status == "running" else status)
    return root, finals


def test_cells_average_the_finished_seeds_and_mark_the_rest(sweep):
    root, finals = sweep
    report = write_report(root, "fid50k_full", rows="model/generator", cols="loss.r1_gamma", plot=False)
    assert report.metric == FD and report.factors == ["model/generator", "loss.r1_gamma", "seed"]
    assert [j.num for j in report.failed] == [5] and [j.num for j in report.unfinished] == [7]
    md = report.paths["md"].read_text()
    means = {}
    for g, gamma in itertools.product(["orig", "skip"], ["1", "10"]):
        done = [finals[(g, gamma, s)][0] for s in "01" if finals[(g, gamma, s)][1] == "completed"]
        means[(g, gamma)] = (statistics.fmean(done), statistics.stdev(done) if len(done) > 1 else None)
    best = min(m for m, _ in means.values())
    for g in ("orig", "skip"):
        (line,) = [x for x in md.splitlines() if x.startswith(f"| **{g}** |")]
        cells = [c.strip() for c in line.split("|")[2:4]]
        for gamma, cell in zip(["1", "10"], cells, strict=True):
            mean, std = means[(g, gamma)]
            text = f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.4g} (n=2)"
            assert cell.strip("*").startswith(text), (cell, text)
            assert cell.startswith("**") == (mean == best)
    assert "(1 failed)" in md and "(1 unfinished)" in md
    assert "- job 5 (model/generator=skip loss.r1_gamma=1 seed=1): failed: ValueError: boom" in md
    assert "- job 7 (model/generator=skip loss.r1_gamma=10 seed=1): unfinished at kimg 1" in md


def test_csv_has_every_job_with_its_last_value(sweep):
    root, finals = sweep
    write_report(root, plot=False)  # default metric: the FID column
    with open(root / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    for r in rows:
        value, status = finals[(r["model/generator"], r["loss.r1_gamma"], r["seed"])]
        assert (float(r[FD]), r["status"], float(r["kimg"])) == (value, status, 1.0)
        assert float(r["timing/sec_per_kimg"]) == 3.0 + int(r["job"])
    write_report(root, reduce="median", plot=False)
    with open(root / "report.csv") as f:
        medians = {r["job"]: float(r[FD]) for r in csv.DictReader(f)}
    for num, (key, _) in enumerate(finals.items()):
        values = [50.0 - num, 40.0 - 2 * num + 0.5 * int(key[2])]  # what _job logged for this job
        assert medians[str(num)] == statistics.median(values)


def test_one_line_errors(sweep, tmp_path, capsys):
    root, _ = sweep
    with pytest.raises(ReportError, match="--rows seedx is not a swept override; swept: model/generator"):
        write_report(root, rows="seedx", cols="seed", plot=False)
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stylegan-report: error: ") and "holds no Hydra job folders" in err
    assert main([str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_reduce_best_through_the_command_takes_each_jobs_best_in_the_metrics_direction(tmp_path, capsys):
    """``stylegan-report DIR --reduce best``: per job the lowest FID and the highest precision logged over the run
    (neither the last nor the first value here), in report.csv and in the printed grid."""
    root = tmp_path / "sweep"
    prec = "metrics/pr50k3_full_precision"
    curves = {}
    for num, (g, gamma) in enumerate(itertools.product(["orig", "skip"], ["1", "10"])):
        fids = [60.0 - num, 20.0 + num, 35.0 - num, 30.0 + 2 * num]  # the best (lowest) is the second
        precs = [0.1 * num, 0.9 - 0.1 * num, 0.5, 0.4]  # the best (highest) is the second
        curves[(g, gamma)] = (fids, precs)
        _job(root, num, [f"model/generator={g}", f"loss.r1_gamma={gamma}"], [], "completed")
        with open(root / str(num) / "csv" / "metrics.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch", "kimg", "step", FD, prec])
            w.writerows([["", 0.5 * (i + 1), 10 * i, v, p] for i, (v, p) in enumerate(zip(fids, precs, strict=True))])
    for metric, column, pick in (("fid50k_full", FD, min), ("pr50k3_full_precision", prec, max)):
        assert main([str(root), "--metric", metric, "--reduce", "best", "--no-plot"]) == 0
        out = capsys.readouterr().out
        with open(root / "report.csv") as f:
            got = {(r["model/generator"], r["loss.r1_gamma"]): float(r[column]) for r in csv.DictReader(f)}
        want = {k: pick(v[0] if column == FD else v[1]) for k, v in curves.items()}
        assert got == pytest.approx(want), column
        for g in ("orig", "skip"):
            (line,) = [x for x in out.splitlines() if x.startswith(f"| **{g}** |") or x.startswith(f"| {g} |")]
            cells = [float(c.strip().strip("*")) for c in line.split("|")[2:4]]
            assert cells == pytest.approx([want[(g, "1")], want[(g, "10")]], rel=1e-3), (column, line)


def test_every_reader_of_a_metric_takes_its_direction_from_one_rule():
    """The report's best cell, early stopping's mode=auto and best.ckpt agree: class accuracy, precision and recall
    up; distances and seconds down; a rate up."""
    from stylegan.metrics.names import is_better
    from stylegan.report.collect import best_of
    from stylegan.training.early_stopping import MetricEarlyStopping

    up = ["metrics/class_acc1k@mnist_lenet", "metrics/pr50k3_full_precision", "metrics/pr50k3_full_recall"]
    down = ["metrics/fid50k_full", "metrics/fd1k_full@mnist_lenet", "metrics/kid50k_full", "metrics/ppl2_wend"]
    for column in up + down:
        want = 0.9 if column in up else 0.1
        assert best_of([0.5, 0.9, float("nan"), 0.1], column) == want, column
        assert is_better(0.9, 0.5, column) == (column in up), column
        assert MetricEarlyStopping(monitor=column).mode == ("max" if column in up else "min"), column
    assert best_of([3.0, 5.0], "timing/img_per_sec") == 5.0 and best_of([3.0, 5.0], "timing/sec_per_kimg") == 3.0
