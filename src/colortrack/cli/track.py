"""``colortrack track``: propagate a first-frame mask or points through a video."""

from __future__ import annotations

import argparse
from pathlib import Path

from colortrack.cli.options import add_method_options, add_point_options, tracker_of


def add_track_parser(commands) -> None:
    parser = commands.add_parser("track")
    parser.add_argument("video", type=Path, help="video file (mp4/avi/mov/mkv) or folder of frames")
    first = parser.add_mutually_exclusive_group(required=True)
    first.add_argument("--mask", type=Path, help="first-frame mask PNG (palette ids or 0/255)")
    first.add_argument(
        "--points", type=Path, help="first-frame points: JSON, CSV (name,x,y) or JHMDB joint_positions.mat"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    add_method_options(parser)
    add_point_options(parser)
    parser.set_defaults(run=run_track)


def run_track(args: argparse.Namespace) -> int:
    if args.points is not None:
        return _run_track_points(args)
    from colortrack.tasks.track_job import track_video

    tracker = tracker_of(args)
    output = track_video(
        args.video, args.mask, args.out, tracker.propagator, tracker.settings(), not args.no_overlay, not args.quiet
    )
    print(f"wrote {output.num_frames} masks to {output.masks_dir}")
    if output.overlay:
        print(f"wrote {output.overlay}")
    return 0


def _run_track_points(args: argparse.Namespace) -> int:
    from colortrack.tasks.points_job import track_points_video

    tracker = tracker_of(args)
    settings = {**tracker.settings(), "points": tracker.points.to_dict()}
    output = track_points_video(
        args.video, args.points, args.out, tracker.propagator, settings, tracker.points, not args.no_overlay, not args.quiet
    )
    print(f"wrote {output.num_frames} frames of points to {output.keypoints} ({output.num_lost} lost)")
    if output.overlay:
        print(f"wrote {output.overlay}")
    return 0
