"""BADJA keypoint propagation PCK@0.1 and @0.2 of several methods in one run.

    OMP_NUM_THREADS=1 python benchmarks/badja_pck.py --root ../shared/data/davis2016-train \
        --annotations ../shared/data/badja --out out/badja [--methods identity flow color model] [--sequences a,b]

Methods are given as in ``benchmarks/jhmdb_pck.py`` (``NAME[:PRESET][+OVERRIDES]``). Predictions
and each method's ``contact_sheet.png`` go to ``OUT/<label>/``; a markdown table (with the command
of each row) is printed and written to ``OUT/summary.md``, the numbers to ``OUT/summary.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jhmdb_pck import DEFAULT_METHODS, run_all

from colortrack.eval.badja import BADJA_ALPHAS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="DAVIS root")
    parser.add_argument("--annotations", type=Path, required=True, help="folder of BADJA <sequence>.json")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    parser.add_argument("--sequences", default=None)
    args = parser.parse_args(argv)
    benchmark = ["eval", "badja", "--root", str(args.root), "--annotations", str(args.annotations)]
    run_all(args.methods, benchmark + (["--sequences", args.sequences] if args.sequences else []), args.out, BADJA_ALPHAS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
