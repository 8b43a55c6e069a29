"""``colortrack shards``: a sharded training corpus (tar files of pre-cut, pre-resized clips) for
``colortrack train --shards``; see docs/scale.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from colortrack.errors import InputError


def add_shards_parser(commands) -> None:
    from colortrack.train.shard_format import IMAGE_FORMATS, ShardConfig

    default = ShardConfig()
    parser = commands.add_parser("shards")
    add = parser.add_argument
    add("--data", nargs="+", type=Path, required=True, help="folders searched recursively for videos and frame folders")
    add("--out", type=Path, required=True, help="shard folder: shard-NNNNNN.tar, shard-NNNNNN.json, index.json")
    add("--short-side", type=int, default=default.short_side, help=f"frames resized to this short side (default {default.short_side})")
    add("--fps", type=float, default=default.fps, help=f"frames per second kept (default {default.fps:g})")
    add("--chunk-frames", type=int, default=default.chunk_frames,
        help=f"frames per chunk; training clips never span two (default {default.chunk_frames})")
    add("--videos-per-shard", type=int, default=default.videos_per_shard, help=f"default {default.videos_per_shard}")
    add("--format", choices=IMAGE_FORMATS, default=default.image_format, help="frame encoding: jpg (default) or png (lossless)")
    add("--quality", type=int, default=default.jpeg_quality, help=f"JPEG quality (default {default.jpeg_quality})")
    add("--workers", type=int, default=1, help="processes writing shards in parallel (default 1)")
    add("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_shards)


def run_shards(args: argparse.Namespace) -> int:
    from colortrack.train.data import find_videos
    from colortrack.train.shard_format import ShardConfig
    from colortrack.train.shards import prepare_shards

    if args.workers < 1:
        raise InputError("--workers", f"must be at least 1, got {args.workers}")
    sources = find_videos(args.data)
    if not sources:
        raise InputError(", ".join(map(str, args.data)), "no video files or frame folders found")
    config = ShardConfig(args.short_side, args.fps, args.chunk_frames, args.videos_per_shard, args.format, args.quality)
    index = prepare_shards(sources, args.out, config, args.workers, progress=not args.quiet)
    chunks = [chunk for listing in index["shards"] for chunk in listing["chunks"]]
    frames = sum(len(chunk["frames"]) for chunk in chunks)
    print(f"wrote {len(index['shards'])} shards, {len(chunks)} chunks, {frames} frames to {args.out}")
    return 0
