"""The ``colortrack`` command line."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from colortrack import __version__
from colortrack.errors import InputError, run_with_clear_errors
from colortrack.tasks.points import PointConfig
from colortrack.models.registry import DEFAULT_METHOD, default_preset, make_propagator, resolve_preset
from colortrack.core.precision import PRECISIONS
from colortrack.core.tracker import PRESETS, Propagator, TrackConfig, pick_device



def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "preset", "") is None:
        args.preset = default_preset(args.method)
    return run_with_clear_errors("colortrack", lambda: args.run(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colortrack", description=__doc__)
    parser.add_argument("--version", action="version", version=f"colortrack {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_track(commands)
    _add_eval(commands)
    _add_demo(commands)
    _add_train(commands)
    _add_train_refiner(commands)
    _add_colorize(commands)
    _add_embed(commands)
    _add_report(commands)
    _add_app(commands)
    return parser


def _add_method_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method", default=DEFAULT_METHOD,
        help="model (the shipped weights, default), identity, flow, color, or a checkpoint (file or run folder)",
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESETS),
        help="propagation settings (default: the method's tuned ones, 'color' for color, else 'default')",
    )
    tuning = parser.add_argument_group("override the preset")
    tuning.add_argument("--temperature", type=float, help="softmax temperature")
    tuning.add_argument("--topk", type=int, help="most similar reference pixels kept (0: all)")
    tuning.add_argument("--radius", type=int, help="local window radius in feature cells (0: global)")
    tuning.add_argument("--recent", type=int, help="number of most recent frames in the context")
    tuning.add_argument("--first-frame", choices=("keep", "drop"), help="keep the first frame in the context")
    tuning.add_argument(
        "--short-side", "--input-height", type=int, help="resize frames so that their shorter side has this many pixels before embedding (0: native; --input-height is an old name)"
    )
    tuning.add_argument("--precision", choices=PRECISIONS, help="autocast of a learned encoder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_track(commands) -> None:
    parser = commands.add_parser("track", help="propagate masks of one or more keyframes, or points, through a video")
    parser.add_argument("video", type=Path, help="video file (mp4/avi/mov/mkv) or folder of frames")
    first = parser.add_mutually_exclusive_group(required=True)
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
    _add_method_options(parser)
    _add_point_options(parser)
    parser.set_defaults(run=_run_track)


def _add_eval(commands) -> None:
    parser = commands.add_parser("eval", help="evaluate on a benchmark")
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    davis = benchmarks.add_parser("davis", help="DAVIS semi-supervised protocol (J&F)")
    davis.add_argument("--root", type=Path, required=True, help="DAVIS root (JPEGImages/, Annotations/)")
    davis.add_argument("--sequences", default=None, help="comma-separated subset")
    davis.add_argument("--resolution", default="480p")
    davis.add_argument("--out", type=Path, required=True, help="folder for predictions and results.json")
    _add_method_options(davis)
    davis.set_defaults(run=_run_eval_davis)
    jhmdb = benchmarks.add_parser("jhmdb", help="JHMDB keypoint propagation (PCK@0.1..0.5)")
    jhmdb.add_argument("--root", type=Path, required=True, help="JHMDB root (Rename_Images/, joint_positions/)")
    jhmdb.add_argument("--clips", default=None, help="comma-separated subset of clip names")
    jhmdb.add_argument("--out", type=Path, required=True, help="folder for predictions and results.json")
    _add_method_options(jhmdb)
    _add_point_options(jhmdb)
    jhmdb.set_defaults(run=_run_eval_jhmdb)
    _add_eval_badja(benchmarks)
    _add_eval_colorize(benchmarks)


def _add_point_options(parser: argparse.ArgumentParser) -> None:
    points = parser.add_argument_group("points")
    points.add_argument("--sigma", type=float, help="Gaussian of each point in native pixels (default: half a feature cell)")
    points.add_argument(
        "--lost-below", type=float, help="confidence under which a point is reported lost (0: never)"
    )
    points.add_argument(
        "--fade-below", type=float,
        help="a point is lost while its confidence is under this fraction of its recent level (occlusion; 0: never)",
    )


def point_config(args: argparse.Namespace) -> PointConfig:
    """Point encoding and decoding with the command line's overrides (sigma None: sized per video
    in feature cells, see :func:`colortrack.tasks.points.point_sigma`)."""
    config = PointConfig()
    if args.sigma is not None and not args.sigma > 0:
        raise InputError("--sigma", f"must be positive, got {args.sigma}")
    lost_below = config.lost_below if args.lost_below is None else args.lost_below
    fade_below = config.fade_below if args.fade_below is None else args.fade_below
    return replace(config, sigma=args.sigma, lost_below=lost_below, fade_below=fade_below)


def _add_demo(commands) -> None:
    parser = commands.add_parser("demo", help="track objects in a generated example video")
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    _add_method_options(parser)
    parser.set_defaults(run=_run_demo)


def _add_train(commands) -> None:
    from colortrack.cli.train import add_train_parser

    add_train_parser(commands)


def _add_train_refiner(commands) -> None:
    from colortrack.cli.train_refiner import add_train_refiner_parser

    add_train_refiner_parser(commands)


def track_config(args: argparse.Namespace) -> TrackConfig:
    """The preset with the command line's overrides applied (0 disables top-k or the radius)."""
    config = resolve_preset(args.preset)
    affinity, memory = {}, {}
    if args.temperature is not None:
        affinity["temperature"] = args.temperature
    if args.topk is not None:
        affinity["topk"] = args.topk or None
    if args.radius is not None:
        affinity["radius"] = args.radius or None
    if args.recent is not None:
        memory["recent"] = args.recent
    if args.first_frame is not None:
        memory["keep_first"] = args.first_frame == "keep"
    return TrackConfig(
        affinity=replace(config.affinity, **affinity),
        memory=replace(config.memory, **memory),
        short_side=config.short_side if args.short_side is None else (args.short_side or None),
        precision=args.precision or config.precision,
    )


def configured_propagator(args: argparse.Namespace) -> tuple[TrackConfig, Propagator]:
    """The track configuration of the command line and the propagator it selects."""
    config = track_config(args)
    return config, make_propagator(args.method, config, pick_device(args.device))


def _comma_list(text: str | None) -> list[str] | None:
    return [name for name in text.split(",") if name] if text else None


def _run_track(args: argparse.Namespace) -> int:
    from colortrack.tasks.masks import track_video

    if args.points is not None:
        return _run_track_points(args)
    config, propagator = configured_propagator(args)
    settings = {"method": args.method, "preset": args.preset, "track": config.to_dict()}
    keyframes = keyframe_paths(args.mask, "--mask")
    output = track_video(args.video, keyframes, args.out, propagator, settings, not args.no_overlay, not args.quiet)
    print(f"wrote {output.num_frames} masks to {output.masks_dir}")
    if output.overlay:
        print(f"wrote {output.overlay}")
    return 0


def keyframe_paths(specs: list[str], option: str) -> dict[int, Path]:
    """``FILE[@FRAME]`` arguments of ``option`` -> ``{frame index: path}``; a frame given twice is an InputError."""
    from colortrack.tasks.colorize import parse_reference

    keyframes: dict[int, Path] = {}
    for spec in specs:
        path, index = parse_reference(spec)
        if index in keyframes:
            raise InputError(f"{option} {spec}", f"frame {index} is already annotated by {keyframes[index]}")
        keyframes[index] = path
    return keyframes


def _run_eval_davis(args: argparse.Namespace) -> int:
    from colortrack.eval.davis import DavisEvalConfig, evaluate_davis, print_summary
    from colortrack.io.davis import DavisDataset

    names = _comma_list(args.sequences)
    dataset = DavisDataset(args.root, resolution=args.resolution, sequences=names)
    config, propagator = configured_propagator(args)
    eval_config = DavisEvalConfig(
        root=str(args.root),
        method=args.method,
        preset=args.preset,
        track=config.to_dict(),
        sequences=[sequence.name for sequence in dataset.sequences],
    )
    summary = evaluate_davis(dataset, propagator, eval_config, args.out, progress=not args.quiet)
    print_summary(summary, f"DAVIS {args.resolution}, method {args.method}, preset {args.preset}")
    print(f"wrote {args.out / 'results.json'}")
    return 0


def _run_track_points(args: argparse.Namespace) -> int:
    from colortrack.tasks.points_job import track_points_video

    config, propagator = configured_propagator(args)
    points = point_config(args)
    settings = {"method": args.method, "preset": args.preset, "track": config.to_dict(), "points": points.to_dict()}
    output = track_points_video(
        args.video, keyframe_paths(args.points, "--points"), args.out, propagator, settings, points,
        not args.no_overlay, not args.quiet,
    )
    print(f"wrote {output.num_frames} frames of points to {output.keypoints} ({output.num_lost} lost)")
    if output.overlay:
        print(f"wrote {output.overlay}")
    return 0


def _run_eval_jhmdb(args: argparse.Namespace) -> int:
    from colortrack.io.jhmdb import find_jhmdb_clips
    from colortrack.eval.jhmdb import evaluate_jhmdb
    from colortrack.eval.keypoints import format_results

    names = _comma_list(args.clips)
    clips = find_jhmdb_clips(args.root, names)
    config, propagator = configured_propagator(args)
    points = point_config(args)
    settings = {
        "method": args.method,
        "preset": args.preset,
        "config": {"root": str(args.root), "track": config.to_dict(), "points": points.to_dict()},
    }
    results = evaluate_jhmdb(clips, propagator, points, settings, args.out, progress=not args.quiet)
    print(f"JHMDB PCK (%), method {args.method}, preset {args.preset}, {len(clips)} clip(s)")
    print(format_results(results))
    print(f"wrote {args.out / 'results.json'}")
    return 0


def _add_colorize(commands) -> None:
    from colortrack.cli.colorize import add_colorize_parser

    add_colorize_parser(commands)


def _add_embed(commands) -> None:
    from colortrack.tasks.embed import add_embed_parser

    add_embed_parser(commands)


def _add_report(commands) -> None:
    from colortrack.cli.report import add_report_parser

    add_report_parser(commands)


def _add_app(commands) -> None:
    from colortrack.cli.app import add_app_parser

    add_app_parser(commands)


def _add_eval_badja(benchmarks) -> None:
    from colortrack.cli.eval_badja import add_eval_badja_parser

    add_eval_badja_parser(benchmarks)


def _add_eval_colorize(benchmarks) -> None:
    from colortrack.cli.colorize import add_eval_colorize_parser

    add_eval_colorize_parser(benchmarks)


def _run_demo(args: argparse.Namespace) -> int:
    from colortrack.demo.run import run_demo

    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
