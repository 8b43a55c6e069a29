"""A batch of videos for ``track --manifest`` and ``colorize --manifest``: a CSV file with a header.

Columns: ``video`` (a video file or a folder of frames), the keyframe column of the command
(``mask`` or ``points`` for track, ``ref`` for colorize: one or more ``FILE[@FRAME]`` separated
by ``;``), optionally ``instances`` (colorize) and ``name`` (the output's name; default the
video's stem). Relative paths are relative to the manifest's folder. Names must be unique.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from colortrack.errors import InputError


@dataclass(frozen=True)
class ManifestRow:
    """One video of a batch: ``keyframes`` are ``FILE[@FRAME]`` strings with absolute files."""

    name: str
    video: Path
    column: str
    keyframes: list[str]
    instances: str | None = None


def read_manifest(path: str | Path, columns: tuple[str, ...]) -> list[ManifestRow]:
    """The rows of the manifest at ``path``, whose keyframe column is one of ``columns``."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            table = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(path, f"cannot read the manifest ({err})") from err
    header = set(table[0]) if table else set()
    found = [column for column in columns if column in header]
    if "video" not in header or len(found) != 1:
        raise InputError(path, f"needs a header with 'video' and one of {', '.join(repr(c) for c in columns)}")
    rows = [_row(record, found[0], path.parent, path, line) for line, record in enumerate(table, start=2)]
    names = [row.name for row in rows]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise InputError(path, f"two rows are named {duplicate!r}; add a 'name' column with unique names")
    return rows


def _row(record: dict, column: str, folder: Path, path: Path, line: int) -> ManifestRow:
    video = (record.get("video") or "").strip()
    specs = [spec.strip() for spec in (record.get(column) or "").split(";") if spec.strip()]
    if not video or not specs:
        raise InputError(f"{path}:{line}", f"needs a video and at least one {column}")
    instances = (record.get("instances") or "").strip() or None
    name = (record.get("name") or "").strip() or Path(video).stem
    if "/" in name or name in (".", ".."):
        raise InputError(f"{path}:{line}", f"name {name!r} is not a plain file name")
    keyframes = [_resolved(spec, folder) for spec in specs]
    return ManifestRow(name, folder / video, column, keyframes, _resolved(instances, folder) if instances else None)


def _resolved(spec: str, folder: Path) -> str:
    """``FILE[@FRAME]`` with FILE made relative to ``folder`` (absolute files unchanged)."""
    file, sep, frame = spec.rpartition("@")
    if sep and frame.isdigit() and file:
        return f"{folder / file}@{frame}"
    return str(folder / spec)
