"""``colortrack train``: self-supervised colourization training on a folder of videos.

Multi-GPU (or multi-process CPU): ``torchrun --nproc_per_node N -m colortrack.cli.train --data ...``
(or the ``colortrack`` script with ``train ...``).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields, replace
from pathlib import Path

from colortrack.errors import InputError, run_with_clear_errors
from colortrack.models.network import INPUT_MODES, MODEL_PRESETS
from colortrack.train.loss import OBJECTIVES
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
    "ab_dropout_share": "ab_dropout_share",
    "precision": "precision",
    "workers": "workers",
    "device": "device",
    "log_every": "log_every",
    "checkpoint_every": "checkpoint_every",
    "keep_checkpoints": "keep_checkpoints",
    "seed": "seed",
    "input": "input_mode",
    "init": "init",
    "clip_frames": "clip_frames",
    "max_gap": "max_gap",
    "input_jitter": "input_jitter",
    "rotation": "rotation",
    "objective": "objective",
    "cycle_weight": "cycle_weight",
    "shards": "shards",
}


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``train`` command; its handler is ``args.run`` (= :func:`run_train`)."""
    parser = subparsers.add_parser(
        "train", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(parser)
    parser.set_defaults(run=run_train)
    return parser


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option defaults to None: unset options take TrainConfig's default, or on --resume
    the run's saved value."""
    add_common_arguments(parser, TrainConfig, "config.json, log.csv, checkpoints/, ckpt")
    add = parser.add_argument
    add("--model", choices=sorted(MODEL_PRESETS), help="network preset (default small)")
    add("--input", choices=INPUT_MODES, help="network input: gray (L only, default) or lab (with channel dropout)")
    add("--init", type=Path, help="checkpoint whose weights start the run (a gray one may start a lab run)")
    add("--crop-size", type=int, help="square crop side (default 128 for small, 256 for resnet18)")
    add("--num-colors", type=int, help="k-means colour clusters (default 16)")
    add("--kmeans-samples", type=int, help="ab samples for k-means (default 20000)")
    add("--temperature", type=float, help="softmax temperature of the training affinity (default 1)")
    add("--channel-dropout", type=float, help="lab input: share of clips with ab or L zeroed (default 0.5)")
    add("--ab-dropout-share", type=float, help="lab input: part of the dropped clips that lose ab rather than L (default 0.5)")
    add("--clip-frames", type=int, help="frames per clip: references + 1 target (default 4, as in the paper)")
    add("--max-gap", type=int, help="clip frames are 1..MAX_GAP cached frames apart, drawn per clip (default 1)")
    add("--input-jitter", type=float, help="photometric jitter of the input only, targets unchanged (default 0)")
    add("--rotation", type=float, help="synthetic in-plane spin: each clip turns at up to ROTATION degrees a frame (default 0)")
    add("--shards", help="a sharded corpus (folder or URL of `colortrack shards` output) instead of --data")
    add("--objective", choices=OBJECTIVES, help="ce: cross-entropy over 16 colour clusters (default); regression: smooth-L1 on ab; "
        "image: the single-image colorization baseline (each frame's colour clusters from that frame alone)")
    add("--cycle-weight", type=float, help="weight of a cycle-consistency term: a walk around the clip's palindrome "
        "through the same affinity must return to its start (default 0: off)")


def add_common_arguments(parser: argparse.ArgumentParser, config_class: type, run_files: str) -> None:
    """The options of every trainer (``train``, ``train-refiner``); help shows ``config_class``'s defaults."""
    default = {field.name: field.default for field in fields(config_class)}
    add = parser.add_argument
    add("--data", nargs="+", type=Path, help="folders searched recursively for videos and frame folders")
    add("--out", type=Path, required=True, help=f"run folder: {run_files}")
    add("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    add("--steps", type=int, help=f"total optimizer steps (default {default['steps']})")
    add("--batch-size", type=int, help=f"samples per step and process (default {default['batch_size']})")
    add("--cache-short-side", type=int, help=f"frames are cached at this short side (default {default['cache_short_side']})")
    add("--cache-dir", type=Path, help="frame cache folder (default RUN_DIR/cache; another run's may be shared)")
    add("--fps", type=float, help=f"frames per second kept from each video (default {default['fps']:g})")
    add("--lr", nargs="+", metavar="[STEP:]LR", help="learning rate schedule, e.g. 1e-3 40000:1e-4 (default 1e-3)")
    add("--precision", choices=PRECISIONS, help="fp32 (default), bf16, fp16 or auto")
    add("--workers", type=int, help="data loader processes (default 0)")
    add("--device", help="auto (default), cpu, cuda, ...")
    add("--log-every", type=int, help=f"steps between log.csv rows (default {default['log_every']})")
    add("--checkpoint-every", type=int, help=f"steps between checkpoints (default {default['checkpoint_every']})")
    add("--keep-checkpoints", type=int, help=f"checkpoints kept, 0 = all (default {default['keep_checkpoints']})")
    add("--seed", type=int, help=f"seed of the initial weights and of the sampling (default {default['seed']})")
    add("--quiet", action="store_true", help="no progress bars")


def run_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    result = train(config, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":
        print(f"trained to step {result.step} (loss {result.loss:.4f}); checkpoint {result.checkpoint}")
    return 0


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the options ask for. On --resume: the run's saved one, where only the
    options in RESUMABLE may be changed."""
    return merged_config(args, given_options(args, _OPTIONS), TrainConfig(), load_run_config, RESUMABLE)


def given_options(args: argparse.Namespace, options: dict[str, str]) -> dict:
    """The config fields the command line sets: ``options`` (option -> field) given a value, with
    paths as strings, plus --lr, --data and --quiet."""
    given = {field: getattr(args, option) for option, field in options.items() if getattr(args, option) is not None}
    given = {key: str(value) if isinstance(value, Path) else value for key, value in given.items()}
    if args.lr is not None:
        given["lr_schedule"] = parse_lr_schedule(args.lr)
    if args.data is not None:
        given["data"] = [str(path) for path in args.data]
    if args.quiet:
        given["progress"] = False
    return given


def merged_config(args: argparse.Namespace, given: dict, default, load_saved, resumable: tuple[str, ...]):
    """``default`` with ``given`` fields; on --resume the run's saved config (``load_saved(out)``)
    with ``given`` fields, of which only ``resumable`` ones may differ from the saved values."""
    saved = load_saved(args.out) if args.resume and (args.out / "config.json").is_file() else None
    if saved is None:
        return replace(default, out=str(args.out), **given)
    fixed = {key: value for key, value in given.items() if key not in resumable and value != getattr(saved, key)}
    if fixed:
        names = ", ".join("--" + key.replace("_", "-") for key in sorted(fixed))
        raise InputError(args.out, f"cannot change {names} when resuming (only {', '.join(resumable)})")
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
    """Stand-alone entry point (``python -m colortrack.cli.train``, e.g. under torchrun)."""
    parser = argparse.ArgumentParser(prog="colortrack train", description=__doc__)
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    return run_with_clear_errors("colortrack train", lambda: run_train(args))


if __name__ == "__main__":
    sys.exit(main())
