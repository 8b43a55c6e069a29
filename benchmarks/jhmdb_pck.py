"""JHMDB keypoint propagation PCK@0.1..0.5 of several methods in one run.

    python benchmarks/jhmdb_pck.py --root ../shared/data/jhmdb-sample --out out/jhmdb \
        [--methods identity flow color RUN_DIR/ckpt:default color+--lost-below,0] [--clips a,b]

Each method is ``NAME[:PRESET][+OVERRIDES]`` as accepted by ``colortrack eval jhmdb`` (overrides
are extra command-line flags separated by commas, e.g. ``color:default+--sigma,8``). Predictions go
to ``OUT/<label>/``; a markdown table (with the command that produced each row) is printed and
written to ``OUT/summary.md``, the numbers to ``OUT/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from colortrack.cli.main import main as colortrack
from colortrack.io.atomic import atomic_write_json, atomic_write_text
from colortrack.eval.metrics.pck import PCK_ALPHAS

DEFAULT_METHODS = ["identity", "flow", "color", "model"]


def label_of(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_")


def run_method(spec: str, benchmark: list[str], out: Path) -> dict:
    """``colortrack eval`` of one method spec; ``benchmark``: its arguments before ``--method``
    (e.g. ``["eval", "jhmdb", "--root", ROOT]``)."""
    name, _, rest = spec.partition(":")
    name, _, extra_name = name.partition("+")
    preset, _, extra = rest.partition("+")
    extra = extra or extra_name
    args = benchmark + ["--method", name, "--out", str(out / label_of(spec)), "--quiet"]
    args += (["--preset", preset] if preset else []) + [flag for flag in extra.split(",") if flag]
    if colortrack(args) != 0:
        raise SystemExit(f"colortrack {' '.join(args)} failed")
    results = json.loads((out / label_of(spec) / "results.json").read_text())
    results["label"], results["command"] = spec, "colortrack " + " ".join(args)
    return results


def table(rows: list[dict], alphas: tuple[float, ...] = PCK_ALPHAS) -> str:
    keys = [f"PCK@{alpha:g}" for alpha in alphas]
    lines = ["| method | " + " | ".join(keys) + " | scored | s/frame | command |", "|---" * (len(keys) + 4) + "|"]
    for row in rows:
        cells = " | ".join(f"{row[key]:.1f}" for key in keys)
        lines.append(f"| {row['label']} | {cells} | {row['scored']} | {row['seconds_per_frame']:.3f} | `{row['command']}` |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    parser.add_argument("--clips", default=None)
    args = parser.parse_args(argv)
    benchmark = ["eval", "jhmdb", "--root", str(args.root)] + (["--clips", args.clips] if args.clips else [])
    run_all(args.methods, benchmark, args.out, PCK_ALPHAS)
    return 0


def run_all(methods: list[str], benchmark: list[str], out: Path, alphas: tuple[float, ...]) -> list[dict]:
    """Every method in turn, each row printed as it finishes; the table and numbers written to ``out``."""
    rows = []
    for spec in methods:
        rows.append(run_method(spec, benchmark, out))
        print(table(rows[-1:], alphas).splitlines()[-1], flush=True)
    markdown = table(rows, alphas)
    print(markdown)
    atomic_write_text(out / "summary.md", markdown + "\n")
    atomic_write_json(out / "summary.json", rows)
    return rows


if __name__ == "__main__":
    sys.exit(main())
