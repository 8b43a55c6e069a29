"""``colortrack demo``: track the objects of a generated example video and colourize it."""

from __future__ import annotations

import argparse
from pathlib import Path

from colortrack.cli.options import add_method_options


def add_demo_parser(commands) -> None:
    parser = commands.add_parser("demo")
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    add_method_options(parser)
    parser.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from colortrack.demo.run import run_demo as demo

    return demo(args)
