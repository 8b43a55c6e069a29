"""Options shared by the tracking commands (track, eval davis/jhmdb, demo) and the Tracker they select."""

from __future__ import annotations

import argparse

from colortrack.defaults import DEFAULT_METHOD, PRECISIONS, PRESET_NAMES, TRACK_OPTIONS

POINT_OPTIONS = ("sigma", "lost_below", "fade_below")


def add_method_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method", default=DEFAULT_METHOD,
        help="model (the shipped weights, default), model-v1 (the weights shipped until 2026-11-29), image-colorization (the single-image colorization baseline), "
        "identity, flow (DIS), farneback (coarse-to-fine flow), color, or a checkpoint (file or run folder)",
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESET_NAMES),
        help="propagation settings (default: the method's tuned ones, 'color' for color, else 'default')",
    )
    tuning = parser.add_argument_group("override the preset")
    tuning.add_argument("--temperature", type=float, help="softmax temperature")
    tuning.add_argument("--topk", type=int, help="most similar reference pixels kept (0: all)")
    tuning.add_argument("--radius", type=int, help="local window radius in feature cells (0: global)")
    tuning.add_argument("--recent", type=int, help="number of most recent frames in the context")
    tuning.add_argument("--first-frame", choices=("keep", "drop"), help="keep the first frame in the context")
    tuning.add_argument(
        "--anchors", choices=("global", "window"),
        help="search the annotated frames (first, keyframes) over the whole frame or only within the radius",
    )
    tuning.add_argument(
        "--short-side", "--input-height", type=int,
        help="resize frames so that their shorter side has this many pixels before embedding "
        "(0: native; --input-height is an old name)",
    )
    tuning.add_argument("--precision", choices=PRECISIONS, help="autocast of a learned encoder")
    tuning.add_argument("--flip", choices=("on", "off"), help="also track the mirrored video and fuse (about 2x the time)")
    tuning.add_argument(
        "--extra-short-sides", type=int, nargs="*", metavar="PIXELS",
        help="also track at these short sides and fuse (none given: single scale)",
    )
    tuning.add_argument(
        "--fine-weight", type=float,
        help="weight of a trained model's first-stage (local texture) features in the affinity (0: the embedding alone)",
    )
    tuning.add_argument(
        "--embed-dims", type=int,
        help="project mask tracking's embeddings onto this many principal directions of the first frame's (0: all; points keep all)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_point_options(parser: argparse.ArgumentParser) -> None:
    points = parser.add_argument_group("points")
    points.add_argument("--sigma", type=float, help="Gaussian of each point in native pixels (default: half a feature cell)")
    points.add_argument(
        "--lost-below", type=float, help="confidence under which a point is reported lost (0: never)"
    )
    points.add_argument(
        "--fade-below", type=float,
        help="a point is lost while its confidence is under this fraction of its recent level (occlusion; 0: never; "
        "default: the model's own, 0.2 where it has none)",
    )


def tracker_of(args: argparse.Namespace):
    """The :class:`colortrack.Tracker` the command line selects (method, preset, overrides)."""
    from colortrack.api import Tracker

    given = {name: getattr(args, name, None) for name in TRACK_OPTIONS + POINT_OPTIONS}
    return Tracker.pretrained(args.method, args.device, args.preset, **given)


def track_config(args: argparse.Namespace):
    """The :class:`colortrack.core.tracker.TrackConfig` of the command line (no model loaded)."""
    from colortrack.models.registry import track_config as configure

    return configure(args.preset, args.method, **{name: getattr(args, name) for name in TRACK_OPTIONS})
