"""DAVIS-layout datasets: ``JPEGImages/<res>/<seq>/*.jpg`` with ``Annotations/<res>/<seq>/*.png``.

Only the two image folders are required (``ImageSets`` is not); ``db_info.yml``, when
present, gives each sequence's attributes. Construction only lists files; images are read on
demand by :class:`DavisSequence`.

Annotations may cover only some frames (DAVIS test-dev, YouTube-VOS style): each mask is paired
with the frame of the same file stem (``00012.png`` annotates ``00012.jpg``, whatever the first
frame's number), and an object may first appear in a later annotation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from colortrack.errors import InputError
from colortrack.io.masks import VOID_ID, read_mask, read_masks, write_mask
from colortrack.io.video import image_size, list_images, natural_key, read_image, write_frames_png


@dataclass
class DavisSequence:
    """One sequence: frame files and mask files in time order. ``mask_frames[i]`` is the index
    (into ``frame_paths``) of the frame that ``mask_paths[i]`` annotates (default: frames 0, 1, ...)."""

    name: str
    frame_paths: list[Path]
    mask_paths: list[Path]
    attributes: list[str] = field(default_factory=list)
    mask_frames: list[int] | None = None

    def __post_init__(self) -> None:
        if self.mask_frames is None:
            self.mask_frames = list(range(len(self.mask_paths)))

    @property
    def dense(self) -> bool:
        """Whether every frame has its mask."""
        return self.mask_frames == list(range(len(self.frame_paths)))

    def mask_path(self, index: int) -> Path | None:
        """The annotation of frame ``index``, None where it has none."""
        if index not in self.mask_frames:
            return None
        return self.mask_paths[self.mask_frames.index(index)]

    def output_name(self, index: int) -> str:
        """The file name of frame ``index``'s predicted mask: the frame's stem, ``.png``."""
        return f"{self.frame_paths[index].stem}.png"

    def __len__(self) -> int:
        return len(self.frame_paths)

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the first frame (header only)."""
        return image_size(self.frame_paths[0])

    def read_frames(self) -> np.ndarray:
        """All frames, ``(T, H, W, 3) uint8``; InputError naming a frame of another size."""
        height, width = self.size
        out = np.empty((len(self.frame_paths), height, width, 3), dtype=np.uint8)
        for t, path in enumerate(self.frame_paths):
            rgb = read_image(path)
            if rgb.shape[:2] != (height, width):
                raise InputError(
                    path, f"frame is {rgb.shape[1]}x{rgb.shape[0]}, expected {width}x{height}"
                )
            out[t] = rgb
        return out

    def check_sizes(self) -> None:
        """InputError naming the first frame or mask whose size (read from its header) differs
        from the first frame's, or whose header is unreadable; cheap, for checks up front."""
        height, width = self.size
        for path in [*self.frame_paths, *self.mask_paths]:
            h, w = image_size(path)
            if (h, w) != (height, width):
                kind = "mask" if path in self.mask_paths else "frame"
                raise InputError(path, f"{kind} is {w}x{h}, expected {width}x{height} (the first frame's size)")

    def read_masks(self) -> np.ndarray:
        """All masks as ids, ``(T_masks, H, W) uint8``; InputError if not the frame size."""
        return read_masks(self.mask_paths, size=self.size)

    def first_mask(self) -> np.ndarray:
        """The first annotation's ids ``(H, W) uint8``."""
        return read_mask(self.mask_paths[0], size=self.size)

    def first_appearances(self, masks: np.ndarray) -> dict[int, np.ndarray]:
        """``{frame index: ids (H, W) uint8}`` of the objects first annotated on that frame, every
        other pixel void (255), except on the first annotated frame, given whole.
        masks: :meth:`read_masks`."""
        seen: set[int] = set()
        keyframes = {}
        for frame, mask in zip(self.mask_frames, masks):
            objects = set(np.unique(mask).tolist()) - {0, VOID_ID}
            new = sorted(objects - seen)
            if not seen:
                keyframes[frame] = mask
            elif new:
                keyframes[frame] = np.where(np.isin(mask, new), mask, VOID_ID).astype(np.uint8)
            seen |= objects
        return keyframes


def _read_attributes(path: Path) -> dict[str, list[str]]:
    """``{sequence: [attribute, ...]}`` from a DAVIS ``db_info.yml``."""
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8"))
        entries = info["sequences"]
        return {str(e["name"]): [str(a) for a in e.get("attributes") or []] for e in entries}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError) as err:
        raise InputError(path, f"not a valid DAVIS db_info.yml ({type(err).__name__})") from err


class DavisDataset:
    """A DAVIS-layout folder. ``sequences`` limits (and orders) the sequences loaded."""

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: str = "480p",
        sequences: list[str] | None = None,
    ):
        self.root = Path(root)
        self.resolution = resolution
        if not self.root.is_dir():
            raise InputError(self.root, "no such DAVIS folder")
        self.frames_dir = self.root / "JPEGImages" / resolution
        self.masks_dir = self.root / "Annotations" / resolution
        for folder in (self.frames_dir, self.masks_dir):
            if not folder.is_dir():
                rel = folder.relative_to(self.root)
                raise InputError(self.root, f"not a DAVIS folder: no {rel}/")
        info = self.root / "db_info.yml"
        self.attributes: dict[str, list[str]] = _read_attributes(info) if info.is_file() else {}
        names = self._available() if sequences is None else list(sequences)
        self.sequences: list[DavisSequence] = [self._load(name) for name in names]

    def _available(self) -> list[str]:
        """Names of the sequence folders under ``JPEGImages/<res>``, sorted naturally."""
        names = [
            p.name for p in self.frames_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        ]
        if not names:
            raise InputError(self.frames_dir, "no sequence folders")
        return sorted(names, key=natural_key)

    def _load(self, name: str) -> DavisSequence:
        """List one sequence's frames and masks, checking that they pair up."""
        frame_dir, mask_dir = self.frames_dir / name, self.masks_dir / name
        if not frame_dir.is_dir():
            raise InputError(name, f"no sequence '{name}' in {self.root}")
        if not mask_dir.is_dir():
            raise InputError(mask_dir, f"sequence '{name}' has no annotation folder")
        frames = list_images(frame_dir)
        masks = [p for p in list_images(mask_dir) if p.suffix.lower() == ".png"]
        if not frames:
            raise InputError(frame_dir, f"sequence '{name}' has no frames")
        if not masks:
            raise InputError(mask_dir, f"sequence '{name}' has no masks")
        index_of = {frame.stem: index for index, frame in enumerate(frames)}
        for mask in masks:
            if mask.stem not in index_of:
                raise InputError(mask, f"sequence '{name}': no frame named {mask.stem} for this mask")
        mask_frames = [index_of[mask.stem] for mask in masks]
        return DavisSequence(name, frames, masks, list(self.attributes.get(name, [])), mask_frames)

    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self) -> Iterator[DavisSequence]:
        return iter(self.sequences)

    def __getitem__(self, key: int | str) -> DavisSequence:
        """A sequence by position or by name."""
        if isinstance(key, str):
            for seq in self.sequences:
                if seq.name == key:
                    return seq
            raise InputError(key, f"no sequence '{key}' in {self.root}")
        return self.sequences[key]

    @property
    def names(self) -> list[str]:
        """Sequence names in order."""
        return [s.name for s in self.sequences]


def write_sequence(
    root: str | os.PathLike, name: str, frames: np.ndarray, masks: np.ndarray, resolution: str = "480p"
) -> DavisSequence:
    """Write one sequence in the DAVIS layout under ``root``: ``frames`` ``(T, H, W, 3) uint8`` as
    ``JPEGImages/<res>/<name>/%05d.png`` and id ``masks`` ``(T_masks, H, W)`` (the first ones) as
    palette PNGs in ``Annotations/<res>/<name>/``."""
    root = Path(root)
    frame_paths = write_frames_png(root / "JPEGImages" / resolution / name, frames)
    mask_dir = root / "Annotations" / resolution / name
    mask_paths = [write_mask(mask_dir / f"{index:05d}.png", mask) for index, mask in enumerate(masks)]
    return DavisSequence(name, frame_paths, mask_paths)
