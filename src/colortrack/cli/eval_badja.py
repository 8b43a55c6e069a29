"""``colortrack eval badja``: BADJA animal joints propagated through DAVIS frames (PCK@0.1, @0.2)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_eval_badja_parser(benchmarks) -> None:
    from colortrack.cli.options import add_method_options, add_point_options

    parser = benchmarks.add_parser("badja", help="BADJA animal keypoint propagation (PCK@0.1, @0.2)")
    parser.add_argument("--root", type=Path, required=True, help="DAVIS root holding the sequences' frames and masks")
    parser.add_argument("--annotations", type=Path, required=True, help="folder of BADJA <sequence>.json files")
    parser.add_argument("--sequences", default=None, help="comma-separated subset")
    parser.add_argument("--resolution", default="480p")
    parser.add_argument("--out", type=Path, required=True, help="folder for predictions, results.json and contact_sheet.png")
    add_method_options(parser)
    add_point_options(parser)
    parser.set_defaults(run=run_eval_badja)


def run_eval_badja(args: argparse.Namespace) -> int:
    from colortrack.cli.eval import comma_list
    from colortrack.cli.options import tracker_of
    from colortrack.eval.badja import badja_clips, find_badja_annotations, run_badja_eval
    from colortrack.eval.keypoints import format_results

    clips = badja_clips(args.root, find_badja_annotations(args.annotations, comma_list(args.sequences)), args.resolution)
    tracker = tracker_of(args).for_points()
    results = run_badja_eval(args.root, args.annotations, args.resolution, clips, tracker, args.out, progress=not args.quiet)
    print(f"BADJA PCK (%), method {tracker.method}, preset {tracker.preset}, {len(clips)} sequence(s), {results['scored']} joint-frames")
    print(format_results(results, label="sequence"))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'contact_sheet.png'}")
    return 0
