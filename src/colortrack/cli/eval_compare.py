"""``colortrack eval compare``: two runs of one benchmark, their difference and its bootstrap interval."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_eval_compare_parser(benchmarks) -> None:
    parser = benchmarks.add_parser(
        "compare", help="paired bootstrap interval of the difference between two eval davis/jhmdb/badja runs"
    )
    parser.add_argument("first", type=Path, help="eval output folder (or its results.json)")
    parser.add_argument("second", type=Path, help="eval output folder of the same benchmark and data")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap draws (default 10000)")
    parser.add_argument("--level", type=float, default=0.95, help="interval coverage (default 0.95)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the comparison to this JSON file")
    parser.set_defaults(run=run_eval_compare)


def run_eval_compare(args: argparse.Namespace) -> int:
    from colortrack.eval.compare import compare_runs, format_comparison, load_units
    from colortrack.io.atomic import atomic_write_json

    labels = (str(args.first), str(args.second))
    first, second = load_units(args.first), load_units(args.second)
    comparisons = compare_runs(first, second, args.resamples, args.level, args.seed, labels)
    print(format_comparison(comparisons, first, labels, args.resamples, args.level))
    if args.out is not None:
        atomic_write_json(args.out, {
            "first": labels[0], "second": labels[1], "unit": first.unit, "units": list(first.names),
            "resamples": args.resamples, "level": args.level, "seed": args.seed,
            "metrics": [c.to_dict() for c in comparisons],
        })
    return 0
