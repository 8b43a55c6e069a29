"""``colortrack demo``: every capability on the built-in scene, beside its baselines, on one HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from colortrack.cli.options import add_method_options
from colortrack.defaults import DEMO_FRAMES, DEMO_HEIGHT


def add_demo_parser(commands) -> None:
    parser = commands.add_parser("demo")
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--frames", type=int, default=DEMO_FRAMES, help="length of the scene (the same motion, sampled more or less finely)")
    parser.add_argument("--scene-height", type=int, default=DEMO_HEIGHT, help="frame height in pixels (16:9 frames)")
    add_method_options(parser)
    parser.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from colortrack.demo.run import run_demo as demo

    return demo(args)
