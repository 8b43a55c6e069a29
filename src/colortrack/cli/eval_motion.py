"""``colortrack eval motion``: how much of each demo object's own motion a method carries in one step."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_eval_motion_parser(benchmarks) -> None:
    from colortrack.cli.options import add_method_options

    parser = benchmarks.add_parser(
        "motion", help="share of each demo object's own motion (turn, scale, bend) carried from frame t - gap to t"
    )
    parser.add_argument("--gaps", default="1,4", help="comma-separated frame gaps (default 1,4)")
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json and config.json (default: print only)")
    add_method_options(parser)
    parser.set_defaults(run=run_eval_motion)


def run_eval_motion(args: argparse.Namespace) -> int:
    from colortrack.cli.eval import comma_list
    from colortrack.cli.options import tracker_of
    from colortrack.defaults import DEMO_FRAMES, DEMO_HEIGHT
    from colortrack.demo.scene import render_scene, scene_size
    from colortrack.errors import InputError
    from colortrack.eval.motion import carried_motion
    from colortrack.io.atomic import atomic_write_json
    from colortrack.io.runs import CONFIG_FILE, output_folder

    try:
        gaps = [int(gap) for gap in comma_list(args.gaps) or ()]
    except ValueError:
        raise InputError("--gaps", f"expected comma-separated frame gaps, got {args.gaps!r}") from None
    if not gaps or not all(0 < gap < DEMO_FRAMES for gap in gaps):
        raise InputError("--gaps", f"each gap must be in 1..{DEMO_FRAMES - 1}, got {args.gaps!r}")
    tracker = tracker_of(args).for_points()  # what a point is moved by
    scene = render_scene(scene_size(DEMO_HEIGHT), DEMO_FRAMES)
    results = [row for gap in gaps for row in carried_motion(tracker.propagator, scene, gap)]
    print(f"Own motion carried, demo scene ({DEMO_FRAMES} frames, {DEMO_HEIGHT} rows), method {tracker.method}, preset {tracker.preset}")
    print(f"{'object':<10} {'gap':>3} {'carried':>8} {'own px':>7} {'error px':>9}")
    for row in results:
        print(f"{row.name:<10} {row.gap:>3} {row.carried:>8.2f} {row.own_motion:>7.1f} {row.error:>9.1f}")
    if args.out is not None:
        folder = output_folder(args.out)
        atomic_write_json(folder / CONFIG_FILE, {**tracker.settings(), "scene_height": DEMO_HEIGHT, "scene_frames": DEMO_FRAMES, "gaps": gaps})
        atomic_write_json(folder / "results.json", [row.to_dict() for row in results])
        print(f"wrote {folder / 'results.json'}")
    return 0
