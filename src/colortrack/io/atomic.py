"""Atomic file writes: write to a temporary file beside the target, then ``os.replace`` it.

A run that is killed half-way never leaves a truncated file at the target path: the target
either keeps its old content (or does not exist) or has the complete new content.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from colortrack.errors import OutputError

# OSError numbers that mean "this output cannot be written here", not a bug: reported as an
# OutputError naming the path (one line, exit code 2) instead of a traceback.
WRITE_ERRNOS = frozenset(
    code
    for code in (
        errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EACCES, errno.EPERM,
        errno.ENOTDIR, errno.EEXIST, errno.EFBIG, errno.EISDIR,
    )
    if code is not None
)


def is_write_error(err: BaseException) -> bool:
    """Whether ``err`` is an OSError that says the output cannot be written (see WRITE_ERRNOS)."""
    return isinstance(err, OSError) and err.errno in WRITE_ERRNOS


def write_problem(err: OSError) -> str:
    """A short reason for a failed write, e.g. ``cannot write (No space left on device)``."""
    reason = err.strerror or os.strerror(err.errno or 0)
    return f"cannot write ({reason})"


def make_dirs(path: str | os.PathLike) -> Path:
    """``mkdir -p path``; OutputError naming ``path`` when it (or a parent) is a file or cannot
    be created (read-only, no permission, no space)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise OutputError(blocker, "exists and is not a folder (an output folder is needed here)") from err
        if is_write_error(err):
            raise OutputError(path, f"cannot create the folder ({err.strerror})") from err
        raise
    return path


def temp_path_for(path: str | os.PathLike) -> Path:
    """A fresh hidden temporary path in the same folder as ``path``, with the same suffix.

    Keeping the suffix lets writers that guess the format from the name (PIL, cv2, PyAV) work.
    """
    path = Path(path)
    return path.with_name(f".{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}")


def _fsync_file(path: Path) -> None:
    """Flush ``path`` to disk where the platform allows it (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success move it onto ``path``.

    The parent folder is created if needed. If the body raises, the temporary file is removed
    and ``path`` is left untouched. The body must create the file at the yielded path.
    An OSError that says the output cannot be written (no space, read-only, no permission, a
    file in the way; see WRITE_ERRNOS) becomes an OutputError naming ``path``.
    """
    path = Path(path)
    make_dirs(path.parent)
    tmp = temp_path_for(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: the writer did not create the temporary file")
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if is_write_error(err):
            raise OutputError(path, write_problem(err)) from err
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON (indent=2, trailing newline) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")
