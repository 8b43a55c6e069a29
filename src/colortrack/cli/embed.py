"""``colortrack embed``: a video of the embeddings (PCA to RGB) beside the frames."""

from __future__ import annotations

import argparse
from pathlib import Path

from colortrack.defaults import SHIPPED_MODEL
from colortrack.errors import InputError


def add_embed_parser(commands) -> None:
    parser = commands.add_parser("embed")
    parser.add_argument("video", type=Path, help="video file or folder of frames")
    parser.add_argument("--out", type=Path, required=True, help="output video (.mp4)")
    parser.add_argument(
        "--method", default=SHIPPED_MODEL, help="model (the shipped weights), color, gray, or a checkpoint (file or run folder)"
    )
    parser.add_argument(
        "--short-side", "--input-height", type=int,
        help="resize frames so that their shorter side has this many pixels before embedding (default: native)",
    )
    parser.add_argument("--samples-per-frame", type=int, default=512, help="cells per frame used to fit the PCA")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run_embed)


def run_embed(args: argparse.Namespace) -> int:
    from colortrack.core.tracker import pick_device
    from colortrack.tasks.embed import embed_video

    if args.out.exists() and args.out.is_dir():
        raise InputError(args.out, "is a folder; --out names the output video file")
    if args.samples_per_frame < 1:
        raise InputError("--samples-per-frame", f"must be positive, got {args.samples_per_frame}")
    count, _ = embed_video(
        args.video,
        args.out,
        args.method,
        args.short_side,
        args.samples_per_frame,
        device=pick_device(args.device),
        progress=not args.quiet,
    )
    print(f"wrote {count} frames to {args.out}")
    return 0
