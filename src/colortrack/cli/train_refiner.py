"""``colortrack train-refiner``: train the colourization refiner on unlabelled colour videos.

The data is first coloured by our own warping (``--embedder``, ``--method``) from the first frame
of short segments, once (``RUN_DIR/warps``); then the refiner learns to turn warped colours into
true ones. Multi-process: ``torchrun --nproc_per_node N -m colortrack.cli.train_refiner ...``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from colortrack.defaults import COLORIZE_METHODS as METHODS
from colortrack.errors import InputError, run_with_clear_errors
from colortrack.cli.train import add_common_arguments, given_options, merged_config
from colortrack.train.refine_trainer import (
    RESUMABLE,
    RefineTrainConfig,
    export_weights,
    load_refine_run_config,
    train_refiner,
)

_OPTIONS = (
    "embedder", "method", "short_side", "cache_short_side", "cache_dir", "fps", "segment_frames",
    "segments_per_video", "steps", "batch_size", "crop_size", "perfect", "temporal_weight", "precision", "workers",
    "device", "log_every", "checkpoint_every", "keep_checkpoints", "seed",
)


def add_train_refiner_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train-refiner", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_refiner_arguments(parser)
    parser.set_defaults(run=run_train_refiner)
    return parser


def add_train_refiner_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option defaults to None: unset options take RefineTrainConfig's default, or on
    --resume the run's saved value."""
    add_common_arguments(parser, RefineTrainConfig, "config.json, log.csv, warps/, checkpoints/, ckpt")
    add = parser.add_argument
    add("--embedder", help="embedder of the warping: 'model' (the shipped one, default), 'gray' or a checkpoint")
    add("--method", choices=METHODS, help="warping method (default propagate)")
    add("--short-side", "--input-height", type=int, help="resize frames so that their shorter side has this many pixels before embedding (default 240)")
    add("--segment-frames", type=int, help="frames per warped segment, the first is the reference (default 10)")
    add("--segments-per-video", type=int, help="warped segments per video (default 1)")
    add("--crop-size", type=int, help="square crop side (default 96)")
    add("--perfect", type=float, help="share of steps given the true colours as warped (default 0.1)")
    add("--temporal-weight", type=float, help="weight of the temporal term (default 0.3)")
    add("--export", type=Path, metavar="WEIGHTS.safetensors", help="afterwards, write the weights and WEIGHTS.json")


def run_train_refiner(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    checkpoint, step, loss = train_refiner(config, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":
        return 0
    trained = "already at" if math.isnan(loss) else "trained to"
    print(f"{trained} step {step}" + ("" if math.isnan(loss) else f" (loss {loss:.4f})") + f"; checkpoint {checkpoint}")
    if args.export is not None:
        print(f"wrote {export_weights(checkpoint, args.export)}")
    return 0


def config_from_args(args: argparse.Namespace) -> RefineTrainConfig:
    """The config the options ask for; on --resume the saved one, with only RESUMABLE changes."""
    given = given_options(args, {name: name for name in _OPTIONS})
    if "perfect" in given and not 0 <= given["perfect"] <= 1:
        raise InputError("--perfect", f"must be between 0 and 1, got {given['perfect']}")
    for name in ("steps", "batch_size", "segment_frames", "segments_per_video", "crop_size"):
        if name in given and given[name] < 1:
            raise InputError("--" + name.replace("_", "-"), f"must be positive, got {given[name]}")
    return merged_config(args, given, RefineTrainConfig(), load_refine_run_config, RESUMABLE)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m colortrack.cli.train_refiner``, e.g. under torchrun)."""
    parser = argparse.ArgumentParser(prog="colortrack train-refiner", description=__doc__)
    add_train_refiner_arguments(parser)
    args = parser.parse_args(argv)
    return run_with_clear_errors("colortrack train-refiner", lambda: run_train_refiner(args))


if __name__ == "__main__":
    sys.exit(main())
