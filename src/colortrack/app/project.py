"""One annotated video, kept on disk as it is edited: every change is written atomically at once,
so a crash loses nothing and a restart opens the project where it was left.

Layout of ``WORKSPACE/colortrack-app/<id>/``: ``project.json`` (video, objects), ``keyframes/%05d.png``
(the user's masks), ``masks/%05d.png`` + ``confidence.json`` (propagated), ``frames/%05d.jpg`` (for
display), ``references/%05d.png`` + ``colorized/`` (colorize tab), ``exports/``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from colortrack.app.workspace import Workspace
from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write, atomic_write_json, make_dirs
from colortrack.io.masks import DAVIS_PALETTE, VOID_ID, read_mask, write_mask
from colortrack.io.runs import input_fingerprint
from colortrack.io.video import VideoReader, read_image
from colortrack.tasks.keyframes import affected_frames

FRAME_QUALITY = 90
_FRAME_FILE = re.compile(r"^(\d{5})\.(png|jpg)$")


@dataclass(frozen=True)
class ObjectInfo:
    id: int
    name: str
    color: str  # "#rrggbb"

    @classmethod
    def default(cls, object_id: int) -> ObjectInfo:
        red, green, blue = (int(c) for c in DAVIS_PALETTE[object_id])
        return cls(object_id, f"object {object_id}", f"#{red:02x}{green:02x}{blue:02x}")

    @classmethod
    def parse(cls, data: dict) -> ObjectInfo:
        object_id, name, color = int(data["id"]), str(data["name"]).strip(), str(data["color"])
        if not 0 < object_id < VOID_ID:
            raise InputError("objects", f"object id {object_id} is not in 1..254")
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", color):
            raise InputError("objects", f"colour {color!r} of object {object_id} is not #rrggbb")
        return cls(object_id, name[:80] or f"object {object_id}", color.lower())

    @property
    def rgb(self) -> tuple[int, int, int]:
        return tuple(int(self.color[i : i + 2], 16) for i in (1, 3, 5))


class Project:
    """The annotations of one workspace video. Thread-safe: the job thread writes results while
    requests read them."""

    def __init__(self, folder: Path, video: str, reader: VideoReader, objects: list[ObjectInfo], fingerprint: dict):
        self.folder = folder
        self.video = video
        self.reader = reader
        self.objects = objects
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        self._confidence = _read_confidence(folder / "confidence.json")
        self._stale = set(_read_json(folder / "stale.json").get("frames", []))

    @classmethod
    def open(cls, workspace: Workspace, video: str) -> Project:
        """Open (or start) the project of ``video`` (relative to the workspace root); a video that
        changed since is re-read, its keyframes kept and everything derived from it dropped."""
        reader = workspace.open_video(video)
        relative = workspace.relative(reader.path)
        folder = make_dirs(workspace.projects / project_id(relative))
        saved = _read_json(folder / "project.json")
        fingerprint = input_fingerprint(reader)
        changed = saved.get("fingerprint") != fingerprint
        if changed:
            _forget_derived(folder)
        objects = [ObjectInfo.parse(o) for o in saved.get("objects", [])]
        project = cls(folder, relative, reader, objects, fingerprint)
        project._save()
        for index in project.keyframes() if changed else []:
            project._mark_stale(index)
        return project

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def key(self) -> str:
        """Names this version of the video: it changes when the file does."""
        digest = hashlib.sha1(json.dumps(self.fingerprint, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.id}:{digest}"

    @property
    def size(self) -> tuple[int, int]:
        info = self.reader.info
        return info.height, info.width

    @property
    def num_frames(self) -> int:
        return self.reader.info.num_frames

    def summary(self) -> dict:
        info = self.reader.info
        return {
            "id": self.id,
            "video": self.video,
            "num_frames": info.num_frames,
            "fps": info.fps,
            "height": info.height,
            "width": info.width,
            "frames_ready": self.frames_ready(),
            "objects": [asdict(o) for o in self.objects],
            "keyframes": self.keyframes(),
            "stale": self.stale(),
            "confidence": {str(t): c for t, c in sorted(self.confidence().items())},
            "references": _indices(self.folder / "references"),
            "colorized": (self.folder / "exports" / "colorized.mp4").is_file(),
        }

    # -- display frames -------------------------------------------------------------------
    def frame_path(self, index: int) -> Path:
        self.check_index(index)
        return self.folder / "frames" / f"{index:05d}.jpg"

    def frames_ready(self) -> bool:
        return len(_indices(self.folder / "frames")) == self.num_frames

    def extract_frames(self, advance: Callable[[int], None]) -> None:
        """Decode the video once into ``frames/%05d.jpg`` (a file there is complete: atomic)."""
        for index, frame in enumerate(self.reader):
            path = self.frame_path(index)
            if not path.is_file():
                with atomic_write(path) as tmp:
                    Image.fromarray(frame).save(tmp, format="JPEG", quality=FRAME_QUALITY)
            advance(index)

    # -- masks ------------------------------------------------------------------------------
    def keyframes(self) -> list[int]:
        return _indices(self.folder / "keyframes")

    def read_keyframes(self) -> dict[int, np.ndarray]:
        return {index: self.keyframe(index) for index in self.keyframes()}

    def keyframe(self, index: int) -> np.ndarray:
        return read_mask(self._keyframe_path(index), size=self.size)

    def set_keyframe(self, index: int, ids: np.ndarray) -> None:
        if ids.shape != self.size:
            raise InputError(f"frame {index}", f"mask is {ids.shape[1]}x{ids.shape[0]}, the video {self.size[1]}x{self.size[0]}")
        write_mask(self._keyframe_path(index), ids)
        self._mark_stale(index)
        self._add_objects(np.unique(ids))

    def delete_keyframe(self, index: int) -> None:
        if self._keyframe_path(index).is_file():
            self._keyframe_path(index).unlink()
            self._mark_stale(index)

    def stale(self) -> list[int]:
        """Frames whose propagated mask predates a change of the keyframes around them."""
        with self._lock:
            return sorted(self._stale)

    def _mark_stale(self, index: int) -> None:
        keyframes = self.keyframes()
        with self._lock:
            self._stale.update(affected_frames(keyframes, index, self.num_frames))
            self._stale.difference_update(keyframes)
            atomic_write_json(self.folder / "stale.json", {"frames": sorted(self._stale)})

    def mask(self, index: int) -> np.ndarray | None:
        """The frame's keyframe mask, else its propagated one, else None. (H, W) uint8 ids."""
        for path in (self._keyframe_path(index), self._mask_path(index)):
            if path.is_file():
                return read_mask(path, size=self.size)
        return None

    def write_result(self, index: int, ids: np.ndarray, confidence: float) -> None:
        write_mask(self._mask_path(index), ids)
        with self._lock:
            self._confidence[index] = confidence
            self._stale.discard(index)
            atomic_write_json(self.folder / "confidence.json", {str(t): c for t, c in sorted(self._confidence.items())})
            atomic_write_json(self.folder / "stale.json", {"frames": sorted(self._stale)})

    def confidence(self) -> dict[int, float]:
        with self._lock:
            return dict(self._confidence)

    def set_objects(self, objects: list[ObjectInfo]) -> None:
        if len({o.id for o in objects}) != len(objects):
            raise InputError("objects", "two objects have the same id")
        with self._lock:
            self.objects = sorted(objects, key=lambda o: o.id)
        self._save()

    def palette(self) -> np.ndarray:
        """(256, 3) uint8: the objects' own colours, DAVIS colours for the rest."""
        palette = DAVIS_PALETTE.copy()
        for obj in self.objects:
            palette[obj.id] = obj.rgb
        return palette

    # -- colour references ------------------------------------------------------------------
    def references(self) -> dict[int, np.ndarray]:
        return {t: read_image(self._reference_path(t)) for t in _indices(self.folder / "references")}

    def set_reference(self, index: int, image: np.ndarray, name: str) -> None:
        if image.shape[:2] != self.size:
            height, width = self.size
            raise InputError(name, f"reference is {image.shape[1]}x{image.shape[0]}, the video {width}x{height}")
        with atomic_write(self._reference_path(index)) as tmp:
            Image.fromarray(image).save(tmp, format="PNG")

    def delete_reference(self, index: int) -> None:
        self._reference_path(index).unlink(missing_ok=True)

    def reference_path(self, index: int) -> Path:
        return self._reference_path(index)

    def colorized_path(self, index: int) -> Path:
        self.check_index(index)
        return self.folder / "colorized" / f"{index:05d}.jpg"

    def export_path(self, name: str) -> Path:
        return make_dirs(self.folder / "exports") / name

    # -- helpers ----------------------------------------------------------------------------
    def check_index(self, index: int) -> None:
        if not 0 <= index < self.num_frames:
            raise InputError(f"frame {index}", f"not a frame of the video (0..{self.num_frames - 1})")

    def _keyframe_path(self, index: int) -> Path:
        self.check_index(index)
        return self.folder / "keyframes" / f"{index:05d}.png"

    def _mask_path(self, index: int) -> Path:
        self.check_index(index)
        return self.folder / "masks" / f"{index:05d}.png"

    def _reference_path(self, index: int) -> Path:
        self.check_index(index)
        return self.folder / "references" / f"{index:05d}.png"

    def _add_objects(self, ids: np.ndarray) -> None:
        known = {o.id for o in self.objects}
        new = [ObjectInfo.default(int(i)) for i in ids if i not in (0, VOID_ID) and int(i) not in known]
        if new:
            self.set_objects(self.objects + new)

    def _save(self) -> None:
        data = {"video": self.video, "fingerprint": self.fingerprint, "objects": [asdict(o) for o in self.objects]}
        atomic_write_json(self.folder / "project.json", data)


def project_id(video: str) -> str:
    """A folder name for the project of ``video`` (its path relative to the workspace)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(video).stem)[:40] or "video"
    return f"{stem}-{hashlib.sha1(video.encode()).hexdigest()[:8]}"


def _indices(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _FRAME_FILE.match(p.name)))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_confidence(path: Path) -> dict[int, float]:
    return {int(t): float(c) for t, c in _read_json(path).items()}


def _forget_derived(folder: Path) -> None:
    """Drop what was computed from an earlier version of the video; the user's keyframes stay."""
    for name in ("frames", "masks", "colorized"):
        for path in (folder / name).glob("*.*"):
            path.unlink(missing_ok=True)
    for name in ("confidence.json", "stale.json"):
        (folder / name).unlink(missing_ok=True)
