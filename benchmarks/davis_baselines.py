"""J&F of several methods on a DAVIS root in one run, each also scored by an independent evaluator.

    python benchmarks/davis_baselines.py --root ../shared/data/davis2016-train --out out/bench \
        [--methods identity flow color color:paper model RUN_DIR/ckpt] [--sequences a,b]

Each method is ``NAME[:PRESET][+OVERRIDES]`` as accepted by ``colortrack eval davis`` (no preset:
the method's own; overrides are extra command-line flags separated by commas, e.g.
``color:color+--topk,5``). Predictions go
to ``OUT/<label>/`` (finished sequences are reused), and a markdown table plus ``OUT/summary.json``
are written. The independent evaluator is vos-benchmark (``pip install --no-deps vos-benchmark``);
its J&F is shown beside ours.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from colortrack.cli.main import main as colortrack
from colortrack.io.atomic import atomic_write_json, atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_evaluator import vos_benchmark  # noqa: E402

DEFAULT_METHODS = ["identity", "flow", "color", "model"]


def run_method(spec: str, root: Path, out: Path, sequences: str | None) -> dict:
    name, _, rest = spec.partition(":")
    preset, _, extra = rest.partition("+")
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_")
    args = ["eval", "davis", "--root", str(root), "--method", name, "--out", str(out / label), "--quiet"]
    args += (["--preset", preset] if preset else []) + ([flag for flag in extra.split(",") if flag] if extra else [])
    if sequences:
        args += ["--sequences", sequences]
    if colortrack(args) != 0:
        raise SystemExit(f"colortrack {' '.join(args)} failed")
    results = json.loads((out / label / "results.json").read_text())
    results["label"], results["command"] = spec, "colortrack " + " ".join(args)
    return results


def independent(root: Path, predictions: Path, sequences: list[str]) -> float | None:
    try:
        (jf, _, _), _ = vos_benchmark(root / "Annotations" / "480p", predictions, sequences)
    except ImportError:
        return None
    return jf


def table(rows: list[dict]) -> str:
    lines = [
        "| method | J&F | J | F | J-Recall | J-Decay | s/frame | J&F (vos-benchmark) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        check = "n/a" if row["independent"] is None else f"{row['independent']:.1f}"
        lines.append(
            f"| {row['label']} | {row['J&F']:.1f} | {row['J']:.1f} | {row['F']:.1f} | {row['J-Recall']:.1f} "
            f"| {row['J-Decay']:.1f} | {row['seconds_per_frame']:.3f} | {check} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    parser.add_argument("--sequences", default=None)
    args = parser.parse_args(argv)
    rows = []
    for spec in args.methods:
        results = run_method(spec, args.root, args.out, args.sequences)
        label_dir = args.out / re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_")
        results["independent"] = independent(args.root, label_dir, results["config"]["sequences"])
        rows.append(results)
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    markdown = table(rows)
    print(markdown)
    atomic_write_text(args.out / "summary.md", markdown + "\n")
    atomic_write_json(args.out / "summary.json", [{k: v for k, v in row.items() if k != "timing"} for row in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
