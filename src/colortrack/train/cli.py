"""``colortrack train``: self-supervised colourization training on a folder of videos.

Multi-GPU (or multi-process CPU): ``torchrun --nproc_per_node N -m colortrack.train.cli --data ...``
(or the ``colortrack`` script with ``train ...``).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from colortrack.errors import InputError, run_with_clear_errors
from colortrack.model import INPUT_MODES, MODEL_PRESETS
from colortrack.train.trainer import PRECISIONS, RESUMABLE, TrainConfig, load_run_config, train

# Command-line option -> TrainConfig field, for the options that map one to one.
_OPTIONS = {
    "steps": "steps",
    "batch_size": "batch_size",
    "model": "model_preset",
    "crop_size": "crop_size",
    "cache_short_side": "cache_short_side",
    "cache_dir": "cache_dir",
    "fps": "fps",
    "num_colors": "num_colors",
    "kmeans_samples": "kmeans_samples",
    "temperature": "temperature",
    "channel_dropout": "channel_dropout",
    "precision": "precision",
    "workers": "workers",
    "device": "device",
    "log_every": "log_every",
    "checkpoint_every": "checkpoint_every",
    "keep_checkpoints": "keep_checkpoints",
    "seed": "seed",
    "input": "input_mode",
    "init": "init",
}


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``train`` command; its handler is ``args.run`` (= :func:`run_train`)."""
    parser = subparsers.add_parser(
        "train", help="learn to track by colourizing unlabelled videos", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(parser)
    parser.set_defaults(run=run_train)
    return parser


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option defaults to None: unset options take TrainConfig's default, or on --resume
    the run's saved value."""
    add = parser.add_argument
    add("--data", nargs="+", type=Path, help="folders searched recursively for videos and frame folders")
    add("--out", type=Path, required=True, help="run folder: config.json, log.csv, checkpoints/, ckpt")
    add("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    add("--steps", type=int, help="total optimizer steps (default 10000)")
    add("--batch-size", type=int, help="clips per step and process (default 16)")
    add("--model", choices=sorted(MODEL_PRESETS), help="network preset (default small)")
    add("--input", choices=INPUT_MODES, help="network input: gray (L only, default) or lab (with channel dropout)")
    add("--init", type=Path, help="checkpoint whose weights start the run (a gray one may start a lab run)")
    add("--crop-size", type=int, help="square crop side (default 128 for small, 256 for resnet18)")
    add("--cache-short-side", type=int, help="frames are cached at this short side (default 240)")
    add("--cache-dir", type=Path, help="frame cache folder (default RUN_DIR/cache)")
    add("--fps", type=float, help="frames per second kept from each video (default 6)")
    add("--lr", nargs="+", metavar="[STEP:]LR", help="learning rate schedule, e.g. 1e-3 40000:1e-4")
    add("--num-colors", type=int, help="k-means colour clusters (default 16)")
    add("--kmeans-samples", type=int, help="ab samples for k-means (default 20000)")
    add("--temperature", type=float, help="softmax temperature of the training affinity (default 1)")
    add("--channel-dropout", type=float, help="lab input: share of clips with ab or L zeroed (default 0.5)")
    add("--precision", choices=PRECISIONS, help="fp32 (default), bf16, fp16 or auto")
    add("--workers", type=int, help="data loader processes (default 0)")
    add("--device", help="auto (default), cpu, cuda, ...")
    add("--log-every", type=int, help="steps between log.csv rows (default 10)")
    add("--checkpoint-every", type=int, help="steps between checkpoints (default 500)")
    add("--keep-checkpoints", type=int, help="checkpoints kept, 0 = all (default 3)")
    add("--seed", type=int, help="seed of the initial weights and of the clip sampling (default 0)")
    add("--quiet", action="store_true", help="no progress bar")


def run_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    result = train(config, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":
        print(f"trained to step {result.step} (loss {result.loss:.4f}); checkpoint {result.checkpoint}")
    return 0


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the options ask for. On --resume: the run's saved one, where only the
    options in RESUMABLE may be changed."""
    given = {field: getattr(args, option) for option, field in _OPTIONS.items() if getattr(args, option) is not None}
    given = {key: str(value) if isinstance(value, Path) else value for key, value in given.items()}
    if args.lr is not None:
        given["lr_schedule"] = parse_lr_schedule(args.lr)
    if args.data is not None:
        given["data"] = [str(path) for path in args.data]
    if args.quiet:
        given["progress"] = False
    saved = load_run_config(args.out) if args.resume and (args.out / "config.json").is_file() else None
    if saved is None:
        return replace(TrainConfig(), out=str(args.out), **given)
    fixed = {key: value for key, value in given.items() if key not in RESUMABLE and value != getattr(saved, key)}
    if fixed:
        names = ", ".join("--" + key.replace("_", "-") for key in sorted(fixed))
        raise InputError(args.out, f"cannot change {names} when resuming (only {', '.join(RESUMABLE)})")
    return replace(saved, out=str(args.out), **given)


def parse_lr_schedule(items: list[str]) -> list[tuple[int, float]]:
    """["1e-3", "40000:1e-4"] -> [(0, 1e-3), (40000, 1e-4)]; an entry without a step starts at 0."""
    schedule = []
    for item in items:
        step, _, lr = item.rpartition(":")
        try:
            schedule.append((int(step) if step else 0, float(lr)))
        except ValueError as err:
            raise InputError("--lr", f"expected LR or STEP:LR, got {item!r}") from err
    return sorted(schedule)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m colortrack.train.cli``, e.g. under torchrun)."""
    parser = argparse.ArgumentParser(prog="colortrack train", description=__doc__)
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    return run_with_clear_errors("colortrack train", lambda: run_train(args))


if __name__ == "__main__":
    sys.exit(main())
