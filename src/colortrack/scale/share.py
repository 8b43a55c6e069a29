"""A batch job's items (videos, sequences, clips) shared between the ranks of a torchrun launch.

Item ``i`` of the sorted list goes to rank ``i % world_size``: every item is done once, by a rank
known in advance, and a re-run gives each rank the same items. An item that raises is tried once
more; if it fails again, the failure is recorded as ``OUT/failed/<name>.json`` and the rank moves
on to its next item. After every rank has finished its share, rank 0 aggregates from the outputs
(which the job functions write atomically, item by item, so that a killed job resumes where it
stopped). An item that later succeeds has its failure record removed.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tqdm import tqdm

from colortrack.io.atomic import atomic_write_json, make_dirs
from colortrack.scale.launch import FAILED_DIR

if TYPE_CHECKING:
    from colortrack.scale.ranks import Ranks

Item = TypeVar("Item")
RETRIES = 1
# The fields of a results.json that are wall-clock times: they differ between any two runs,
# so a batch run's results equal a single process's only without them.
TIMING_FIELDS = ("timing", "seconds_per_frame", "seconds")


def without_timing(value):
    """A results.json value (dict, list or scalar) without its :data:`TIMING_FIELDS`, at any depth."""
    if isinstance(value, dict):
        return {key: without_timing(item) for key, item in value.items() if key not in TIMING_FIELDS}
    if isinstance(value, list):
        return [without_timing(item) for item in value]
    return value


@dataclass(frozen=True)
class Failure:
    """An item that failed every attempt: its name and the last error, in one line."""

    name: str
    error: str
    attempts: int


def run_shared(
    items: Sequence[Item],
    work: Callable[[Item], object],
    name_of: Callable[[Item], str],
    out_dir: Path,
    ranks: Ranks | None,
    progress: bool = True,
    unit: str = "item",
) -> list[Failure]:
    """Apply ``work`` to every item; returns the failures of all ranks (item order).

    ranks None: one process, today's behaviour (every item here, in order; an error stops the job).
    Otherwise this rank's share with one retry per item, then a barrier, so that on return every
    rank's outputs are written.
    """
    if ranks is None:
        for item in tqdm(items, desc=f"{unit}s", unit=unit, disable=not progress):
            work(item)
        return []
    folder = make_dirs(Path(out_dir) / FAILED_DIR)
    mine = list(items)[ranks.rank :: ranks.world_size]
    bar = tqdm(mine, desc=f"{unit}s (rank {ranks.rank}/{ranks.world_size})", unit=unit, disable=not progress,
               position=ranks.rank)
    for item in bar:
        _attempt(work, item, _record_path(folder, name_of(item)), name_of(item))
    ranks.barrier()
    return [failure for item in items if (failure := _recorded(_record_path(folder, name_of(item)))) is not None]


def _record_path(folder: Path, name: str) -> Path:
    return folder / (name.replace("/", "_").replace("\\", "_") + ".json")


def _attempt(work: Callable[[Item], object], item: Item, record: Path, name: str) -> None:
    for attempt in range(1, RETRIES + 2):
        try:
            work(item)
        except Exception as error:  # a bad video must not stop the others; KeyboardInterrupt does
            message = _one_line(error)
            tqdm.write(f"warning: {name}: attempt {attempt} failed: {message}", file=sys.stderr)
            if attempt == RETRIES + 1:
                atomic_write_json(record, {"name": name, "error": message, "attempts": attempt,
                                           "traceback": traceback.format_exc()})
            continue
        record.unlink(missing_ok=True)
        return


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _recorded(path: Path) -> Failure | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return Failure(data["name"], data["error"], data["attempts"])


def recorded_failures(out_dir: Path) -> list[Failure]:
    """The failures recorded in ``out_dir/failed/`` (by name)."""
    return [_recorded(path) for path in sorted((Path(out_dir) / FAILED_DIR).glob("*.json"))]


def report_failures(out_dir: Path, unit: str) -> None:
    """One line on stderr per failure recorded in ``out_dir``."""
    for failure in recorded_failures(out_dir):
        print(f"error: {unit} {failure.name} failed {failure.attempts} times: {failure.error}", file=sys.stderr)
