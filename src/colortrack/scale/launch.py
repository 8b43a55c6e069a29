"""``--workers N``: a batch command run again as N local ranks by torchrun, the launcher the
multi-node launch uses too (see docs/scale.md). Imports no torch: the CLI starts instantly."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from colortrack.errors import InputError

FAILED_DIR = "failed"  # OUT/failed/<video>.json: a video that failed every attempt (colortrack.scale.share)

if TYPE_CHECKING:
    from colortrack.scale.ranks import Ranks

# A rank that finished its share waits at the final barrier for the slowest one (hours of video).
BATCH_TIMEOUT = timedelta(days=2)


def add_workers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers", type=int,
        help="share the videos between N local processes launched by torchrun (each video once; "
        "torch threads per process = cores / N); under torchrun itself the ranks share them",
    )


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def wants_launch(args: argparse.Namespace) -> bool:
    """Whether this process should start the ranks (``--workers`` given, not already a rank)."""
    if args.workers is not None and args.workers < 1:
        raise InputError("--workers", f"must be at least 1, got {args.workers}")
    return args.workers is not None and not launched_by_torchrun()


def launch(args: argparse.Namespace, out_dir: Path) -> int:
    """Run the same command line as ``args.workers`` local torchrun ranks and wait for them.
    Exit status 1 when a video failed (its record is in OUT/failed/), else torchrun's."""
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.workers}",
        "-m", "colortrack", *args.argv,
    ]
    status = subprocess.call(command, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if status == 0 and any((Path(out_dir) / FAILED_DIR).glob("*.json")):
        return 1
    return status


@contextmanager
def batch_ranks(args: argparse.Namespace, alone: bool = False) -> Iterator[Ranks | None]:
    """This process's Ranks when torchrun started it (``args.device`` set to the rank's device);
    for a plain single-process run, None, or with ``alone`` the Ranks of a job of one (whose
    videos are then retried and reported as a shared job's are)."""
    from colortrack.core.tracker import pick_device
    from colortrack.scale.ranks import Ranks, joined

    if not launched_by_torchrun():
        yield Ranks(0, 1, pick_device(args.device)) if alone else None
        return

    with joined(args.device, backend="gloo", timeout=BATCH_TIMEOUT) as ranks:
        args.device = str(ranks.device)
        yield ranks


def run_manifest(args: argparse.Namespace, columns: tuple[str, ...], make_work: Callable) -> int:
    """Every row of ``args.manifest`` through ``make_work(args)`` (which loads the model once per
    process), shared between the ranks; rank 0 then writes OUT/batch.json (each video's status).
    Exit status 1 when a video failed twice (0 under torchrun: the launcher reports it)."""
    from colortrack.io.atomic import atomic_write_json
    from colortrack.scale.manifest import read_manifest
    from colortrack.scale.share import report_failures, run_shared

    if wants_launch(args):
        return launch(args, args.out)
    rows = read_manifest(args.manifest, columns)
    with batch_ranks(args, alone=True) as ranks:
        work = make_work(args)
        failures = run_shared(rows, work, lambda row: row.name, args.out, ranks, not args.quiet, unit="video")
    if not ranks.primary:
        return 0
    failed = {failure.name for failure in failures}
    videos = [{"name": row.name, "video": str(row.video), "failed": row.name in failed} for row in rows]
    atomic_write_json(Path(args.out) / "batch.json", {"manifest": str(Path(args.manifest).resolve()), "videos": videos})
    print(f"{len(rows) - len(failed)} of {len(rows)} videos done in {args.out}")
    report_failures(args.out, "video")
    return 1 if failed and not launched_by_torchrun() else 0
