"""The one folder the app may read and write: videos are opened from it, uploads and projects go into it."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write, make_dirs, temp_path_for
from colortrack.io.video import VIDEO_EXTENSIONS, VideoReader, read_image

PROJECTS_DIR = "colortrack-app"  # inside the workspace: one folder per annotated video
UPLOADS_DIR = "uploads"
DEFAULT_MAX_UPLOAD_BYTES = 2 << 30
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ForbiddenPath(InputError):
    """A path that leads outside the workspace."""


class UploadTooLarge(InputError):
    """An upload over the workspace's size limit."""


@dataclass(frozen=True)
class Workspace:
    """root: the folder the app is confined to (symlinks resolved)."""

    root: Path
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES

    @classmethod
    def at(cls, root: str | os.PathLike, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> Workspace:
        root = Path(root)
        if not root.is_dir():
            raise InputError(root, "the workspace is not a folder")
        return cls(root.resolve(), max_upload_bytes)

    @property
    def projects(self) -> Path:
        return self.root / PROJECTS_DIR

    def resolve(self, relative: str | os.PathLike) -> Path:
        """The real path of ``relative`` (relative to the root, or absolute inside it); ForbiddenPath
        when it, or the file a symlink points to, lies outside the workspace."""
        text = str(relative)
        if not text or "\x00" in text:
            raise ForbiddenPath(text or "(empty path)", "not a path inside the workspace")
        path = (self.root / text).resolve()
        if not path.is_relative_to(self.root):
            raise ForbiddenPath(text, "is outside the workspace folder")
        return path

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def open_video(self, relative: str | os.PathLike) -> VideoReader:
        """The video at ``relative`` (a file or a folder of frames), validated."""
        path = self.resolve(relative)
        if path.is_relative_to(self.projects):
            raise ForbiddenPath(relative, "is the app's own output, not an input video")
        return VideoReader(path)

    def list_videos(self, limit: int = 500) -> list[str]:
        """Video files under the root (the app's own outputs and hidden folders excluded), sorted."""
        found = []
        for folder, subfolders, files in os.walk(self.root):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and Path(folder, d) != self.projects)
            found += [Path(folder, f) for f in files if Path(f).suffix.lower() in VIDEO_EXTENSIONS]
            if len(found) >= limit:
                break
        return sorted(self.relative(path) for path in found[:limit])

    async def save_upload(self, filename: str, chunks: AsyncIterable[bytes]) -> str:
        """Write an uploaded video to ``uploads/`` (atomically, at most ``max_upload_bytes``) and
        check that it decodes. Returns its path relative to the root."""
        name = _SAFE_NAME.sub("_", Path(filename or "").name).lstrip(".")
        suffix = Path(name).suffix.lower()
        if suffix not in VIDEO_EXTENSIONS:
            raise InputError(filename or "(upload)", f"not a video file (use {', '.join(VIDEO_EXTENSIONS)})")
        target = _free_name(make_dirs(self.root / UPLOADS_DIR), name)
        with atomic_write(target) as tmp:
            await self._copy_limited(chunks, tmp, filename)
            try:
                VideoReader(tmp)
            except InputError as err:  # no file is left behind
                raise InputError(filename, err.problem) from err
        return self.relative(target)

    async def receive_image(self, filename: str, chunks: AsyncIterable[bytes], folder: Path) -> np.ndarray:
        """An uploaded image (at most ``max_upload_bytes``) as RGB (H, W, 3) uint8; its bytes pass
        through a temporary file in ``folder`` that is removed again."""
        tmp = temp_path_for(make_dirs(folder) / f"upload{Path(filename).suffix.lower()}")
        try:
            await self._copy_limited(chunks, tmp, filename)
            return read_image(tmp)
        except InputError as err:
            raise type(err)(filename, err.problem) from err
        finally:
            tmp.unlink(missing_ok=True)

    def check_upload_size(self, filename: str, declared: int | None) -> None:
        """UploadTooLarge as soon as the declared length is over the limit."""
        if declared is not None and declared > self.max_upload_bytes:
            raise UploadTooLarge(filename, f"upload is larger than the limit of {self.max_upload_bytes / 2**20:g} MB")

    async def _copy_limited(self, chunks: AsyncIterable[bytes], tmp: Path, filename: str) -> None:
        written = 0
        with open(tmp, "wb") as out:
            async for chunk in chunks:
                written += len(chunk)
                self.check_upload_size(filename, written)
                out.write(chunk)


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/stem-2.ext`` etc. when taken."""
    path, stem, suffix, n = folder / name, Path(name).stem, Path(name).suffix, 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path
