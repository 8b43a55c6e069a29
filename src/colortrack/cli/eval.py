"""``colortrack eval``: DAVIS (J&F), JHMDB and BADJA (PCK), colourization benchmarks and the demo's motion measure."""

from __future__ import annotations

import argparse
from pathlib import Path

from colortrack.cli.colorize import add_eval_colorize_parser
from colortrack.cli.eval_badja import add_eval_badja_parser
from colortrack.cli.eval_compare import add_eval_compare_parser
from colortrack.cli.eval_motion import add_eval_motion_parser
from colortrack.cli.options import add_method_options, add_point_options, tracker_of
from colortrack.scale.launch import add_workers_option, batch_ranks, launch, wants_launch


def add_eval_parser(commands) -> None:
    parser = commands.add_parser("eval")
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    davis = benchmarks.add_parser("davis", help="DAVIS semi-supervised protocol (J&F)")
    davis.add_argument("--root", type=Path, required=True, help="DAVIS root (JPEGImages/, Annotations/)")
    davis.add_argument("--sequences", default=None, help="comma-separated subset")
    davis.add_argument("--resolution", default="480p")
    davis.add_argument("--out", type=Path, required=True, help="folder for predictions and results.json")
    add_method_options(davis)
    add_workers_option(davis)
    davis.set_defaults(run=run_eval_davis)
    jhmdb = benchmarks.add_parser("jhmdb", help="JHMDB keypoint propagation (PCK@0.1..0.5)")
    jhmdb.add_argument("--root", type=Path, required=True, help="JHMDB root (Rename_Images/, joint_positions/)")
    jhmdb.add_argument("--clips", default=None, help="comma-separated subset of clip names")
    jhmdb.add_argument("--out", type=Path, required=True, help="folder for predictions and results.json")
    add_method_options(jhmdb)
    add_point_options(jhmdb)
    add_workers_option(jhmdb)
    jhmdb.set_defaults(run=run_eval_jhmdb)
    add_eval_badja_parser(benchmarks)
    add_eval_colorize_parser(benchmarks)
    add_eval_motion_parser(benchmarks)
    add_eval_compare_parser(benchmarks)


def comma_list(text: str | None) -> list[str] | None:
    return [name for name in text.split(",") if name] if text else None


def run_eval_davis(args: argparse.Namespace) -> int:
    if wants_launch(args):
        return launch(args, args.out)
    with batch_ranks(args) as ranks:
        return _eval_davis(args, ranks)


def _eval_davis(args: argparse.Namespace, ranks) -> int:
    from colortrack.eval.davis import print_summary, run_davis_eval
    from colortrack.io.davis import DavisDataset
    from colortrack.scale.share import report_failures

    dataset = DavisDataset(args.root, resolution=args.resolution, sequences=comma_list(args.sequences))
    tracker = tracker_of(args)
    summary = run_davis_eval(dataset, tracker, args.out, args.root, not args.quiet, ranks)
    if summary is None:
        return 0
    print_summary(summary, f"DAVIS {args.resolution}, method {tracker.method}, preset {tracker.preset}")
    print(f"wrote {args.out / 'results.json'}")
    report_failures(args.out, "sequence")
    return 0


def run_eval_jhmdb(args: argparse.Namespace) -> int:
    if wants_launch(args):
        return launch(args, args.out)
    with batch_ranks(args) as ranks:
        return _eval_jhmdb(args, ranks)


def _eval_jhmdb(args: argparse.Namespace, ranks) -> int:
    from colortrack.eval.jhmdb import run_jhmdb_eval
    from colortrack.eval.keypoints import format_results
    from colortrack.io.jhmdb import find_jhmdb_clips
    from colortrack.scale.share import report_failures

    clips = find_jhmdb_clips(args.root, comma_list(args.clips))
    tracker = tracker_of(args).for_points()
    results = run_jhmdb_eval(clips, args.root, tracker, args.out, not args.quiet, ranks)
    if results is None:
        return 0
    print(f"JHMDB PCK (%), method {tracker.method}, preset {tracker.preset}, {len(clips)} clip(s)")
    print(format_results(results))
    print(f"wrote {args.out / 'results.json'}")
    report_failures(args.out, "clip")
    return 0
