"""One resume mechanism for every command's output folder: its ``config.json`` names the
configuration (settings and input fingerprints) that the outputs beside it belong to.

Two policies, one record: a job whose outputs are all-or-nothing (``track``) is skipped when the
folder holds the complete outputs of the same configuration and otherwise starts clean
(:meth:`RunFolder.finished`, :meth:`RunFolder.start_clean`); a job made of resumable parts
(``eval davis``, ``eval colorize``) keeps the parts of the same configuration and refuses a folder
that holds another one (:meth:`RunFolder.claim`). Every file is written atomically, so an output
that exists is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from colortrack.errors import InputError, OutputError
from colortrack.io.atomic import atomic_write_json, is_write_error, make_dirs

CONFIG_FILE = "config.json"


def output_folder(path: Path) -> Path:
    """``path`` created as a folder; a clear error when it is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(path, "output path exists and is not a folder")
    return make_dirs(path)


def input_fingerprint(source) -> dict:
    """What identifies an input for a run's configuration: a path (file) or a
    :class:`colortrack.io.video.VideoReader` (a video file or a folder of frames) -> its absolute
    path, number of files, total size and latest modification time."""
    if isinstance(source, (str, Path)):
        path, files = Path(source), [Path(source)]
    else:
        path, files = source.path, source.frame_paths or [source.path]
    stats = [file.stat() for file in files]
    return {
        "path": str(Path(path).resolve()),
        "files": len(files),
        "bytes": sum(stat.st_size for stat in stats),
        "mtime_ns": max(stat.st_mtime_ns for stat in stats),
    }


@dataclass(frozen=True)
class RunFolder:
    """An output folder and the configuration (a JSON-able dict) of the run writing into it."""

    path: Path
    config: dict

    @classmethod
    def open(cls, path: Path, config: dict) -> RunFolder:
        """Create the folder if needed; ``config`` is compared as its JSON form (tuples = lists)."""
        return cls(output_folder(path), json.loads(json.dumps(config)))

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    def saved_config(self) -> dict | None:
        """The configuration recorded in the folder; None when there is none (or it is unreadable)."""
        try:
            return json.loads(self.config_path.read_text())
        except (OSError, ValueError):
            return None

    def finished(self, outputs: list[Path]) -> bool:
        """Whether the folder records this configuration and every one of ``outputs`` exists."""
        return self.saved_config() == self.config and all(Path(p).is_file() for p in outputs)

    def start_clean(self, stale: list[Path]) -> None:
        """Forget an earlier run: remove its config.json, then its ``stale`` outputs, then record
        this configuration (a run killed part-way is redone in full, never mixed)."""
        for path in [self.config_path, *stale]:
            try:
                Path(path).unlink(missing_ok=True)
            except OSError as err:
                if is_write_error(err):
                    raise OutputError(path, f"cannot remove an earlier output ({err.strerror})") from err
                raise
        atomic_write_json(self.config_path, self.config)

    def claim(self, defaults: dict | None = None) -> None:
        """Record this configuration, keeping the parts an earlier run of the same one wrote;
        refuse a folder that holds another configuration. ``defaults``: the values of keys that
        configurations saved by older versions lack."""
        saved = self.saved_config() if self.config_path.exists() else None
        if saved is None:
            atomic_write_json(self.config_path, self.config)
        elif {**(defaults or {}), **saved} != self.config:
            raise InputError(self.path, "holds results of another configuration; choose a new --out")
