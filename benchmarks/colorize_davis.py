"""Colourization from reference frames on DAVIS: every method and reference setting in one go.

    python benchmarks/colorize_davis.py --root ../shared/data/davis2016-train --out out/colorize \
        [--embedder gray|CHECKPOINT] [--sequences a,b] [--max-frames N] [--refs first 10th first+last] \
        [--methods propagate reference spatiotemporal spatiotemporal+inst propagate+refine] [--refiner RUN_DIR] \
        [--short-side H] [--threads 1]

Each reference setting is one ``colortrack eval colorize`` run (the baselines copy, flow and the
per-cell ceiling are measured in the same run), into ``OUT/<refs>/`` (finished sequences are
reused). Prints one markdown table with the commands, and writes it to ``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from colortrack.cli.main import main as colortrack
from colortrack.eval.colorize import TABLE_FIELDS
from colortrack.io.atomic import atomic_write_text

DEFAULT_METHODS = ["propagate", "reference", "spatiotemporal", "spatiotemporal+inst"]
DEFAULT_REFS = ["first", "10th", "first+last"]


def run_setting(args: argparse.Namespace, refs: str) -> tuple[dict, str]:
    out = args.out / refs.replace("+", "_")
    argv = ["eval", "colorize", "--root", str(args.root), "--refs", refs, "--method", ",".join(args.methods)]
    argv += ["--embedder", args.embedder, "--out", str(out), "--quiet"]
    if args.sequences:
        argv += ["--sequences", args.sequences]
    if args.max_frames:
        argv += ["--max-frames", str(args.max_frames)]
    if args.short_side:
        argv += ["--short-side", str(args.short_side)]
    if args.refiner:
        argv += ["--refiner", args.refiner]
    if colortrack(argv) != 0:
        raise SystemExit(f"colortrack {' '.join(argv)} failed")
    return json.loads((out / "results.json").read_text()), "colortrack " + " ".join(argv)


def table(rows: list[tuple[str, dict]]) -> str:
    header = "| refs | method | " + " | ".join(label for label, _, _ in TABLE_FIELDS) + " |"
    lines = [header, "|" + "---|" * (len(TABLE_FIELDS) + 2)]
    for refs, results in rows:
        for name, summary in results["methods"].items():
            cells = [fmt.format(summary[key]) if summary.get(key) is not None else "-" for _, key, fmt in TABLE_FIELDS]
            lines.append(f"| {refs} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/data/davis2016-train"))
    parser.add_argument("--out", type=Path, default=Path("out/colorize"))
    parser.add_argument("--embedder", default="model")
    parser.add_argument("--sequences", default=None)
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--short-side", type=int, default=None)
    parser.add_argument("--refs", nargs="+", default=DEFAULT_REFS)
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, help="a method may end in +inst, then +refine")
    parser.add_argument("--refiner", default=None, help="refiner of the +refine methods (default: the shipped one)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: on a shared, loaded CPU more threads are slower)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, commands = [], []
    for refs in args.refs:
        results, command = run_setting(args, refs)
        rows.append((refs, results))
        commands.append(command)
    sequences = rows[0][1]["config"]["sequences"]
    frames = f"first {args.max_frames} frames" if args.max_frames else "all frames"
    text = "\n".join(
        [
            f"DAVIS colourization, embedder `{args.embedder}`, {len(sequences)} sequence(s) ({', '.join(sequences)}), "
            f"{frames}; PSNR in dB, outliers = % of pixels whose largest RGB channel error > 16, "
            "flicker = predicted minus true mean |d ab| at pixels whose true ab is stable, "
            f"s/frame includes embedding ({args.threads} torch thread(s)). Reference frames are not scored.",
            "",
            table(rows),
            "",
            "Commands:",
            "",
            *[f"    {command}" for command in commands],
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "table.md", text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
