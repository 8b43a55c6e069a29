"""``colortrack colorize`` and ``colortrack eval colorize``: parsers and runners."""

from __future__ import annotations

import argparse
from pathlib import Path

from colortrack.defaults import (
    COLORIZE_METHODS, COLORIZE_REFERENCES, DEFAULT_COLORIZE_METHOD, PRECISIONS, REFINE_BY_DEFAULT, SHIPPED_MODEL,
    SHIPPED_REFINER,
)
from colortrack.errors import InputError
from colortrack.scale.launch import add_workers_option, batch_ranks, launch, run_manifest, wants_launch


def add_colorize_parser(commands) -> None:
    parser = commands.add_parser("colorize")
    parser.add_argument("video", type=Path, nargs="?", help="video file or folder of frames (colour input is reduced to L)")
    parser.add_argument(
        "--manifest", type=Path,
        help="CSV of many videos (columns video, ref, optional instances and name; see docs/scale.md) instead of "
        "VIDEO: each goes to OUT/<name>.mp4 (OUT a folder); with --workers or under torchrun the ranks share them",
    )
    parser.add_argument(
        "--ref",
        action="append",
        metavar="IMAGE[@FRAME]",
        help="colour image of frame FRAME (default 0), same size as the video; repeatable",
    )
    parser.add_argument("--out", type=Path, required=True, help="output video (.mp4); settings go to OUT.json")
    parser.add_argument("--frames-dir", type=Path, help="also write the frames as DIR/%%05d.png")
    parser.add_argument(
        "--method", default=DEFAULT_COLORIZE_METHOD, choices=COLORIZE_METHODS,
        help=f"how colours travel (default {DEFAULT_COLORIZE_METHOD})",
    )
    parser.add_argument(
        "--instances", metavar="MASK.png[@FRAME]", help="object ids on frame FRAME: colours stay within objects"
    )
    parser.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=REFINE_BY_DEFAULT,
        help="refine the warped colours with --refiner (Akimoto et al.'s third stage) "
        f"(default {'on' if REFINE_BY_DEFAULT else 'off'})",
    )
    _add_colorize_options(parser)
    add_workers_option(parser)
    parser.set_defaults(run=run_colorize)


def add_eval_colorize_parser(benchmarks) -> None:
    parser = benchmarks.add_parser("colorize", help="colourization from reference frames on a DAVIS-layout dataset")
    parser.add_argument("--root", type=Path, required=True, help="DAVIS root (JPEGImages/, Annotations/)")
    parser.add_argument(
        "--refs", default="first", choices=COLORIZE_REFERENCES,
        help="reference frames: 0; the 10th; the first and last; the 10th and (N-10)th (default first)",
    )
    parser.add_argument("--sequences", default=None, help="comma-separated subset")
    parser.add_argument("--resolution", default="480p")
    parser.add_argument(
        "--method",
        default="propagate",
        help="comma-separated: propagate, reference, spatiotemporal, each optionally +inst (instance restriction), "
        "then optionally +refine (refined by --refiner)",
    )
    parser.add_argument("--max-frames", type=int, help="only the first N frames of each sequence")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json")
    _add_colorize_options(parser)
    add_workers_option(parser)
    parser.set_defaults(run=run_eval_colorize)


def _add_colorize_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--embedder", default=SHIPPED_MODEL,
        help="'model' (the shipped weights, default), 'gray' (training-free, luminance patches) or a checkpoint",
    )
    parser.add_argument(
        "--refiner", default=SHIPPED_REFINER,
        help=f"'{SHIPPED_REFINER}' (the shipped weights) or a train-refiner run or weights file",
    )
    tuning = parser.add_argument_group("override the method's defaults")
    tuning.add_argument("--temperature", type=float, help="softmax temperature")
    tuning.add_argument("--topk", type=int, help="most similar reference pixels kept (0: all)")
    tuning.add_argument("--radius", type=int, help="local window radius in feature cells (0: global)")
    tuning.add_argument("--recent", type=int, help="propagate: number of recent predicted frames in the context")
    tuning.add_argument(
        "--short-side", "--input-height", type=int,
        help="resize frames so that their shorter side has this many pixels before embedding (default: 240 for a trained model, native for gray; 0: native; --input-height is an old name)",
    )
    tuning.add_argument(
        "--precision", choices=PRECISIONS,
        help="autocast of a learned embedder and of the refiner (default bf16)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def overrides(args: argparse.Namespace) -> dict:
    """The command line's overrides of a method's defaults (:func:`colortrack.tasks.colorize.colorize_overrides`)."""
    from colortrack.tasks.colorize import colorize_overrides

    return colorize_overrides(args.embedder, args.temperature, args.topk, args.radius, args.recent, args.precision)


def short_side(args: argparse.Namespace) -> int | None:
    """The embedding short side: as given (0: native), else the one the embedder was tuned at."""
    from colortrack.tasks.colorize import default_short_side

    if args.short_side is not None:
        return args.short_side or None
    return default_short_side(args.embedder)


def run_colorize(args: argparse.Namespace) -> int:
    from colortrack.tasks.colorize import colorize_video

    if (args.video is None) == (args.manifest is None):
        raise InputError("colorize", "give either VIDEO or --manifest")
    if args.manifest is not None:
        if args.ref or args.instances or args.frames_dir:
            raise InputError("--manifest", "the manifest's columns give the references: drop --ref/--instances/--frames-dir")
        return run_manifest(args, ("ref",), _colorize_row)
    if not args.ref:
        raise InputError("colorize", "--ref is required")
    if args.workers is not None:
        raise InputError("--workers", "shares the videos of a --manifest (one video runs in one process)")
    colorizer = _colorizer(args)
    output = colorize_video(
        args.video,
        args.ref,
        args.out,
        colorizer.engine,
        colorizer.settings(),
        frames_dir=args.frames_dir,
        instances=args.instances,
        progress=not args.quiet,
    )
    print(f"wrote {output.num_frames} frames to {output.video}")
    if output.frames_dir is not None:
        print(f"wrote {output.frames_dir}/%05d.png")
    return 0


def _colorize_row(args: argparse.Namespace):
    """The work of one manifest row: OUT/<name>.mp4 colourized from its references."""
    from colortrack.tasks.colorize import colorize_video

    colorizer = _colorizer(args)

    def colorize(row) -> None:
        out = args.out / f"{row.name}.mp4"
        colorize_video(row.video, row.keyframes, out, colorizer.engine, colorizer.settings(), None, row.instances, False)

    return colorize


def _colorizer(args: argparse.Namespace):
    from colortrack.api import Colorizer

    return Colorizer.pretrained(
        args.embedder,
        args.method,
        refine=args.refine,
        refiner=args.refiner,
        device=args.device,
        temperature=args.temperature,
        topk=args.topk,
        radius=args.radius,
        recent=args.recent,
        short_side=args.short_side,
    )


def run_eval_colorize(args: argparse.Namespace) -> int:
    if wants_launch(args):
        return launch(args, args.out)
    with batch_ranks(args) as ranks:
        return _eval_colorize(args, ranks)


def _eval_colorize(args: argparse.Namespace, ranks) -> int:
    from colortrack.eval.colorize import format_table, run_colorize_grid
    from colortrack.io.davis import DavisDataset
    from colortrack.core.tracker import pick_device
    from colortrack.scale.share import report_failures

    names = [name for name in args.sequences.split(",") if name] if args.sequences else None
    dataset = DavisDataset(args.root, resolution=args.resolution, sequences=names)
    methods = [name for name in args.method.split(",") if name]
    found = run_colorize_grid(
        dataset, {args.out: args.refs}, methods, args.embedder, pick_device(args.device), overrides(args), short_side(args),
        args.max_frames, args.refiner, not args.quiet, ranks,
    )
    if found is None:
        return 0
    results = found[args.out]
    title = f"DAVIS {args.resolution} colorization, refs {args.refs}, embedder {args.embedder}, {len(dataset)} sequence(s)"
    print(format_table(results, title))
    print(f"wrote {args.out / 'results.json'}")
    report_failures(args.out, "sequence")
    return 0
