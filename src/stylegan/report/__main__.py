"""``python -m stylegan.report MULTIRUN_DIR [--metric NAME]`` (or ``stylegan-report``)."""

from __future__ import annotations

import argparse
import sys

from . import ReportError, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stylegan-report", description=__doc__)
    parser.add_argument("sweep_dir", help="a `stylegan-train -m` sweep folder, e.g. multirun/<date>_<time>")
    parser.add_argument("--metric", help="column to tabulate, e.g. fid50k_full or metrics/fid50k_full "
                        "(default: the first FID-like metric, else sec/kimg)")
    parser.add_argument("--reduce", default="last", help="last (last logged value, default), best, or median "
                        "(over the run; for timings)")
    parser.add_argument("--rows", help="swept override for the grid's rows (default: the first of two)")
    parser.add_argument("--cols", help="swept override for the grid's columns (default: the second of two)")
    parser.add_argument("--no-plot", action="store_true", help="skip report.png")
    args = parser.parse_args(argv)
    from pathlib import Path

    root = Path(args.sweep_dir)  # a single run's folder (.hydra/ at its top, no job below): refused, nothing written
    if (root / ".hydra").is_dir() and not any(root.glob("*/**/.hydra/overrides.yaml")):
        print(f"stylegan-report: error: {root} is the folder of one run (stylegan-train without -m), not a sweep: "
              "pass the folder a `stylegan-train -m ...` sweep wrote, e.g. multirun/<date>_<time>", file=sys.stderr)
        return 2
    try:
        report = write_report(args.sweep_dir, args.metric, args.reduce, args.rows, args.cols, not args.no_plot)
    except ReportError as e:
        print(f"stylegan-report: error: {e}", file=sys.stderr)
        return 2
    print(report.paths["md"].read_text())
    print("wrote " + ", ".join(str(p) for p in report.paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
