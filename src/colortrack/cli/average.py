"""``colortrack average``: one checkpoint whose weights are the mean of several of one run.

    colortrack average --out checkpoints/heldout-avg runs/camp-longer/checkpoints/step_00{1500,1750,...,3000}
    colortrack average --out DIR checkpoints/heldout-gray/checkpoints/step_003500 checkpoints/heldout-avg --weights 0.15 0.85

Averaging the checkpoints of the second half of a constant-learning-rate run smooths the
checkpoint-to-checkpoint noise of the dev scores (``docs/training.md``). The result is a
weights-only checkpoint folder that every ``--method`` / ``--init`` accepts.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_average_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("average", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint folders (or run folders: their latest)")
    parser.add_argument("--out", type=Path, required=True, help="the averaged checkpoint folder to write")
    parser.add_argument(
        "--weights", type=float, nargs="+", default=None,
        help="one weight per checkpoint (normalised; default: equal). A gray-input checkpoint mixes "
        "into Lab ones with zero a, b input weights",
    )
    parser.set_defaults(run=run_average)
    return parser


def run_average(args: argparse.Namespace) -> int:
    from colortrack.train.checkpoint import average_checkpoints

    folder = average_checkpoints(args.checkpoints, args.out, args.weights)
    print(f"averaged {len(args.checkpoints)} checkpoints into {folder}")
    return 0
