"""``colortrack reproduce vondrick|akimoto``: every table and figure of a paper, ours beside the
published numbers, in one resumable command (see ``colortrack.eval.reproduce`` and docs/reproduce.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from colortrack.defaults import (
    AKIMOTO_FRAME_SHORT_SIDE, AKIMOTO_SHORT_SIDE, COLORIZE_REFERENCES, IMAGE_COLORIZATION, SHIPPED_MODEL, SHIPPED_REFINER,
)
from colortrack.errors import InputError


def add_reproduce_parser(commands) -> None:
    parser = commands.add_parser("reproduce")
    papers = parser.add_subparsers(dest="paper", required=True)
    vondrick = papers.add_parser(
        "vondrick", help="Vondrick et al. 2018: Tables 1-2, Figs. 5, 6, 9, 10, the multi-object subset",
        description="Vondrick et al. 2018: Tables 1-2, Figs. 5, 6, 9, 10 and the multi-object subset",
    )
    vondrick.add_argument("--jhmdb", type=Path, help="JHMDB root (Rename_Images/, joint_positions/) for Table 2")
    vondrick.add_argument("--badja", type=Path, help="folder of BADJA <sequence>.json files on the --davis frames, for Table 2")
    vondrick.add_argument("--fine-weight", type=float,
                          help="fine-feature weight of the learned methods (default: their preset's; 0: as before the sixth session)")
    vondrick.add_argument("--embed-dims", type=int,
                          help="projection of the learned methods' mask embeddings (default: their preset's; 0: none, as before the sixth session)")
    vondrick.add_argument("--baseline", default=IMAGE_COLORIZATION,
                          help=f"weights of the single-image colorization baseline (default {IMAGE_COLORIZATION})")
    _add_common(vondrick)
    vondrick.set_defaults(run=run_vondrick)
    akimoto = papers.add_parser(
        "akimoto", help="Akimoto et al. 2020: Table 1 (PSNR by references and tracking), outliers over time, refinement",
        description="Akimoto et al. 2020: Table 1 (PSNR by references and tracking), outliers over time, refinement",
    )
    akimoto.add_argument("--refiner", default=SHIPPED_REFINER, help=f"refiner weights (default {SHIPPED_REFINER}, the shipped ones)")
    akimoto.add_argument("--max-frames", type=int, help="only the first N frames of each sequence (a quick run)")
    akimoto.add_argument("--frame-short-side", type=int, default=AKIMOTO_FRAME_SHORT_SIDE,
                         help=f"frames are resized to this shorter side, colourized and scored there (default {AKIMOTO_FRAME_SHORT_SIDE}; 0: native)")
    akimoto.add_argument("--refs", help=f"comma-separated subset of the reference settings ({', '.join(COLORIZE_REFERENCES)})")
    _add_common(akimoto, f"embedding short side of ours (default {AKIMOTO_SHORT_SIDE}; 0: native)")
    akimoto.set_defaults(run=run_akimoto, short_side=AKIMOTO_SHORT_SIDE)


def _add_common(
    parser: argparse.ArgumentParser,
    short_side_help: str = "embedding short side of the learned methods (default: their preset's; 0: native)",
) -> None:
    parser.add_argument("--davis", type=Path, required=True, help="DAVIS root (JPEGImages/, Annotations/)")
    parser.add_argument("--out", type=Path, required=True, help="output folder: results.json, index.html, one folder per eval")
    parser.add_argument("--sequences", help="comma-separated subset of the DAVIS sequences")
    parser.add_argument("--method", default=SHIPPED_MODEL, help=f"ours: {SHIPPED_MODEL} (the shipped weights, default) or a checkpoint")
    parser.add_argument("--short-side", type=int, help=short_side_help)
    parser.add_argument("--resolution", default="480p")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress")


def _sequences(args: argparse.Namespace) -> list[str] | None:
    from colortrack.cli.eval import comma_list

    return comma_list(args.sequences)


def _check_short_side(args: argparse.Namespace) -> None:
    if args.short_side is not None and args.short_side < 0:
        raise InputError("--short-side", f"must not be negative, got {args.short_side}")


def run_vondrick(args: argparse.Namespace) -> int:
    from colortrack.eval.reproduce.vondrick import VondrickConfig, reproduce_vondrick

    _check_short_side(args)
    config = VondrickConfig(
        davis=str(args.davis), jhmdb=str(args.jhmdb) if args.jhmdb else None, badja=str(args.badja) if args.badja else None,
        sequences=_sequences(args), method=args.method, baseline=args.baseline, short_side=args.short_side,
        fine_weight=args.fine_weight, embed_dims=args.embed_dims, resolution=args.resolution,
    )
    results = reproduce_vondrick(config, args.out, args.device, progress=not args.quiet)
    _print_rows("Table 1 (J, F)", results["table1"]["rows"], ("J", "F"))
    for key, section in results["table2"].items():
        _print_rows(f"Table 2, {key} (PCK@0.1, @0.2)", section["rows"], ("PCK@0.1", "PCK@0.2"))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'index.html'}")
    return 0


def run_akimoto(args: argparse.Namespace) -> int:
    from colortrack.cli.eval import comma_list
    from colortrack.eval.reproduce.akimoto import AkimotoConfig, reproduce_akimoto

    _check_short_side(args)
    if args.frame_short_side != 0 and args.frame_short_side < 8:
        raise InputError("--frame-short-side", f"must be 0 (native) or at least 8, got {args.frame_short_side}")
    refs = tuple(comma_list(args.refs) or COLORIZE_REFERENCES)
    unknown = [name for name in refs if name not in COLORIZE_REFERENCES]
    if unknown:
        raise InputError("--refs", f"unknown reference setting {unknown[0]!r}: choose {', '.join(COLORIZE_REFERENCES)}")
    config = AkimotoConfig(
        davis=str(args.davis), sequences=_sequences(args), embedder=args.method, refiner=args.refiner,
        short_side=args.short_side, max_frames=args.max_frames, resolution=args.resolution, refs=refs,
        frame_short_side=args.frame_short_side,
    )
    results = reproduce_akimoto(config, args.out, args.device, progress=not args.quiet)
    _print_rows("Table 1 (PSNR, in, out; without refinement)", results["table1"]["rows"], ("PSNR", "PSNR in", "PSNR out"))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'index.html'}")
    return 0


def _print_rows(title: str, rows: list[dict], columns: tuple[str, ...]) -> None:
    print(title + ": published -> ours")
    for row in rows:
        published = " ".join(_fmt(row["published"].get(c)) for c in columns)
        ours = " ".join(_fmt((row["measured"] or {}).get(c)) for c in columns)
        print(f"  {row['name']:<34} {published:>14} -> {ours}")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.1f}"
