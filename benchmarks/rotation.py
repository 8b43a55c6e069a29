"""J&F of DAVIS sequences upright and turned a quarter turn (portrait), measured in one run.

    python benchmarks/rotation.py --root ../shared/data/davis2016-train --work /tmp/rotation \
        --sequences dog-agility,rollerblade,motorbike [--method model]

Writes two DAVIS-layout copies under WORK, which must lie outside the repository (they hold the
shared data): ``upright/`` and ``rotated/`` (frames and masks turned 90 degrees clockwise), both
from the same decoded frames saved as PNG. Each is scored by ``colortrack eval davis`` into
``WORK/eval-upright`` and ``WORK/eval-rotated``; a markdown table of J&F per sequence, upright
and rotated, is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from colortrack.cli.main import main as colortrack
from colortrack.io.davis import DavisDataset, write_sequence

VIEWS = {"upright": 0, "rotated": -1}  # quarter turns of np.rot90 (-1: clockwise)


def write_views(root: Path, work: Path, names: list[str]) -> None:
    for sequence in DavisDataset(root, sequences=names):
        frames, masks = sequence.read_frames(), sequence.read_masks()
        for view, turns in VIEWS.items():
            if not (work / view / "Annotations" / "480p" / sequence.name).is_dir():
                turned = (np.rot90(frames, turns, axes=(1, 2)), np.rot90(masks, turns, axes=(1, 2)))
                write_sequence(work / view, sequence.name, *turned)


def evaluate(work: Path, view: str, method: str) -> dict:
    args = ["eval", "davis", "--root", str(work / view), "--method", method, "--out", str(work / f"eval-{view}"), "--quiet"]
    if colortrack(args) != 0:
        raise SystemExit(f"colortrack {' '.join(args)} failed")
    results = json.loads((work / f"eval-{view}" / "results.json").read_text())
    return {row["sequence"]: row["J&F"] for row in results["sequences"]} | {"mean": results["J&F"]}


def table(scores: dict[str, dict]) -> str:
    upright, rotated = scores["upright"], scores["rotated"]
    rows = [f"| {name} | {upright[name]:.1f} | {rotated[name]:.1f} | {rotated[name] - upright[name]:+.1f} |" for name in upright]
    return "\n".join(["| sequence | upright J&F | rotated J&F | rotated - upright |", "|---|---|---|---|", *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sequences", required=True)
    parser.add_argument("--method", default="model")
    args = parser.parse_args(argv)
    names = [name for name in args.sequences.split(",") if name]
    write_views(args.root, args.work, names)
    print(table({view: evaluate(args.work, view, args.method) for view in VIEWS}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
