"""``colortrack track``: propagate a first-frame mask or points through a video."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from colortrack.cli.options import add_method_options, add_point_options, tracker_of
from colortrack.errors import InputError
from colortrack.scale.launch import add_workers_option, run_manifest


def add_track_parser(commands) -> None:
    parser = commands.add_parser("track")
    parser.add_argument("video", type=Path, nargs="?", help="video file (mp4/avi/mov/mkv) or folder of frames")
    parser.add_argument(
        "--manifest", type=Path,
        help="CSV of many videos (columns video, mask or points, optional name; see docs/scale.md) instead of VIDEO: "
        "each goes to OUT/<name>/; with --workers or under torchrun the ranks share them",
    )
    first = parser.add_mutually_exclusive_group()
    first.add_argument(
        "--mask", action="append", metavar="MASK.png[@FRAME]",
        help="mask PNG (palette ids or 0/255) of frame FRAME, a 0-based index (default 0); repeat it to give "
        "several keyframes: frames between two are predicted from both",
    )
    first.add_argument(
        "--points", action="append", metavar="POINTS[@FRAME]",
        help="points of frame FRAME (default 0): JSON, CSV (name,x,y) or JHMDB joint_positions.mat; repeat it "
        "to give several keyframes with the same names",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    add_method_options(parser)
    add_point_options(parser)
    add_workers_option(parser)
    parser.set_defaults(run=run_track)


def run_track(args: argparse.Namespace) -> int:
    if (args.video is None) == (args.manifest is None):
        raise InputError("track", "give either VIDEO or --manifest")
    if args.manifest is not None:
        if args.mask is not None or args.points is not None:
            raise InputError("--manifest", "the manifest's columns give the keyframes: drop --mask/--points")
        return run_manifest(args, ("mask", "points"), _track_row)
    if args.mask is None and args.points is None:
        raise InputError("track", "one of --mask or --points is required")
    if args.workers is not None:
        raise InputError("--workers", "shares the videos of a --manifest (one video runs in one process)")
    if args.points is not None:
        return _run_track_points(args)
    from colortrack.tasks.masks import track_video

    tracker = tracker_of(args)
    keyframes = keyframe_paths(args.mask, "--mask")
    output = track_video(
        args.video, keyframes, args.out, tracker.propagator, tracker.settings(), not args.no_overlay, not args.quiet
    )
    print(f"wrote {output.num_frames} masks to {output.masks_dir}")
    if output.overlay:
        print(f"wrote {output.overlay}")
    return 0


def _track_row(args: argparse.Namespace) -> Callable:
    """The work of one manifest row: its masks or points tracked into OUT/<name>/."""
    from colortrack.tasks.masks import track_video
    from colortrack.tasks.points_job import track_points_video

    tracker = tracker_of(args)
    pointer = tracker.for_points()
    settings = {**pointer.settings(), "points": pointer.points.to_dict()}

    def track(row) -> None:
        keyframes = keyframe_paths(row.keyframes, f"{args.manifest} ({row.name})")
        out, overlay = args.out / row.name, not args.no_overlay
        if row.column == "mask":
            track_video(row.video, keyframes, out, tracker.propagator, tracker.settings(), overlay, progress=False)
        else:
            track_points_video(row.video, keyframes, out, pointer.propagator, settings, pointer.points, overlay, False)

    return track


def keyframe_paths(specs: list[str], option: str) -> dict[int, Path]:
    """``FILE[@FRAME]`` arguments of ``option`` -> ``{frame index: path}``; a frame given twice is an InputError."""
    from colortrack.io.sources import parse_reference

    keyframes: dict[int, Path] = {}
    for spec in specs:
        path, index = parse_reference(spec)
        if index in keyframes:
            raise InputError(f"{option} {spec}", f"frame {index} is already annotated by {keyframes[index]}")
        keyframes[index] = path
    return keyframes


def _run_track_points(args: argparse.Namespace) -> int:
    from colortrack.tasks.points_job import track_points_video

    tracker = tracker_of(args).for_points()
    settings = {**tracker.settings(), "points": tracker.points.to_dict()}
    output = track_points_video(
        args.video, keyframe_paths(args.points, "--points"), args.out, tracker.propagator, settings, tracker.points,
        not args.no_overlay, not args.quiet,
    )
    print(f"wrote {output.num_frames} frames of points to {output.keypoints} ({output.num_lost} lost)")
    if output.overlay:
        print(f"wrote {output.overlay}")
    return 0
