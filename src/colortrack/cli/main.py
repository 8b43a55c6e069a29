"""The ``colortrack`` command line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from colortrack import __version__

# One module per command: "module:function" adds the command's parser (``function(commands)``),
# and the help listed by ``colortrack --help``. A command's module is imported only when that
# command runs, so that start-up and argument errors stay instant (no torch import).
COMMANDS: dict[str, tuple[str, str]] = {
    "track": ("colortrack.cli.track:add_track_parser", "propagate masks of one or more keyframes, or points, through a video"),
    "eval": ("colortrack.cli.eval:add_eval_parser", "evaluate on a benchmark"),
    "demo": ("colortrack.cli.demo:add_demo_parser", "every capability on a built-in scene with exact ground truth, beside its baselines, on one HTML page"),
    "train": ("colortrack.cli.train:add_train_parser", "learn to track by colourizing unlabelled videos"),
    "average": ("colortrack.cli.average:add_average_parser", "average the weights of several checkpoints of one run into one"),
    "shards": ("colortrack.cli.shards:add_shards_parser", "prepare a sharded training corpus (tar files of clips) for train --shards"),
    "train-refiner": (
        "colortrack.cli.train_refiner:add_train_refiner_parser",
        "train the colourization refiner on unlabelled colour videos",
    ),
    "colorize": (
        "colortrack.cli.colorize:add_colorize_parser",
        "colourize a (grayscale or colour) video from colour reference frames",
    ),
    "embed": ("colortrack.cli.embed:add_embed_parser", "video of the embeddings (PCA to RGB) beside the frames"),
    "report": ("colortrack.cli.report:add_report_parser", "self-contained HTML report comparing DAVIS evaluation folders"),
    "reproduce": (
        "colortrack.cli.reproduce:add_reproduce_parser",
        "reproduce a paper's tables and figures (vondrick, akimoto), ours beside the published numbers",
    ),
    "app": ("colortrack.cli.app:add_app_parser", "annotate a video in the browser (masks, propagation, export; colorize)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    sleeping_idle_threads()
    args = build_parser(_command_in(argv)).parse_args(argv)
    args.argv = argv  # a batch command run again as torchrun ranks (--workers)
    from colortrack.errors import run_with_clear_errors

    return run_with_clear_errors("colortrack", lambda: args.run(args))


def sleeping_idle_threads() -> None:
    """Idle OpenMP threads of torch sleep instead of spinning (unless OMP_WAIT_POLICY says
    otherwise). Read when torch loads, so called before: on a CPU shared with other work, a
    spinning thread holds a core that the other threads of the job need (480p tracking used
    10x the CPU time of passive waiting with 2 threads on a loaded 2-core machine)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command listed; the options of ``command`` (of every command when None) filled in."""
    parser = argparse.ArgumentParser(prog="colortrack", description=__doc__)
    parser.add_argument("--version", action="version", version=f"colortrack {__version__}")
    commands = _Commands(parser.add_subparsers(dest="command", required=True))
    for name, (target, _) in COMMANDS.items():
        if command in (None, name):
            module, function = target.split(":")
            getattr(importlib.import_module(module), function)(commands)
        else:
            commands.add_parser(name)
    return parser


class _Commands:
    """The subcommands, each created with its help from :data:`COMMANDS`."""

    def __init__(self, subparsers):
        self.subparsers = subparsers

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        kwargs.setdefault("help", COMMANDS[name][1])
        kwargs.setdefault("description", kwargs["help"])
        return self.subparsers.add_parser(name, **kwargs)


def _command_in(argv: list[str]) -> str | None:
    """The command named on the command line (its first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), "")


if __name__ == "__main__":
    sys.exit(main())
