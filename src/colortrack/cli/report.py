"""``colortrack report``: the HTML page comparing DAVIS evaluation folders (see ``colortrack.eval.report``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from colortrack.errors import InputError
from colortrack.eval.report.scores import COLOR_HEIGHT, COLOR_STEP
from colortrack.eval.report.stats import FAIL_J


def add_report_parser(commands) -> None:
    parser = commands.add_parser("report")
    parser.add_argument("eval_dirs", type=Path, nargs="+", metavar="EVAL_DIR", help="folders of colortrack eval davis")
    parser.add_argument("--out", type=Path, required=True, help="output HTML file")
    parser.add_argument("--root", type=Path, help="DAVIS root (default: the one in the evaluations' config)")
    parser.add_argument("--labels", help="comma-separated names of the methods (default: folder names)")
    parser.add_argument("--color-step", type=int, default=COLOR_STEP, help="colorization analysis on every Nth frame")
    parser.add_argument("--color-height", type=int, default=COLOR_HEIGHT, help="frame height for the colorization analysis")
    parser.add_argument("--fail-j", type=float, default=FAIL_J, help="a frame is a tracking failure when J is below this")
    parser.add_argument("--no-colorization", action="store_true", help="skip the colorization-failure analysis")
    parser.add_argument("--no-sheets", action="store_true", help="no contact sheets")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from colortrack.core.tracker import pick_device
    from colortrack.eval.report.build import ReportOptions, build_report

    if args.color_step < 1:
        raise InputError("--color-step", f"must be positive, got {args.color_step}")
    if args.color_height < 8:
        raise InputError("--color-height", f"must be at least 8, got {args.color_height}")
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    options = ReportOptions(
        color_step=args.color_step,
        color_height=args.color_height,
        fail_j=args.fail_j,
        sheets=not args.no_sheets,
        colorization=not args.no_colorization,
    )
    out = build_report(args.eval_dirs, args.out, args.root, labels, options, pick_device(args.device), not args.quiet)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)")
    return 0
