"""End-to-end jobs behind the CLI: a video and a first-frame mask in, masks and an overlay out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write_json
from colortrack.io.masks import read_mask, write_mask
from colortrack.io.video import VideoReader, VideoWriter
from colortrack.overlay import overlay_masks
from colortrack.segmentation import propagate_mask
from colortrack.tracker import Propagator


@dataclass(frozen=True)
class TrackOutput:
    masks_dir: Path
    overlay: Path | None
    num_frames: int


def track_video(
    video_path: Path,
    mask_path: Path,
    out_dir: Path,
    propagator: Propagator,
    settings: dict,
    overlay: bool = True,
    progress: bool = True,
) -> TrackOutput:
    """Writes ``out_dir/masks/%05d.png`` at native size, ``out_dir/overlay.mp4`` and ``out_dir/config.json``."""
    reader = VideoReader(video_path)
    first_mask = read_mask(mask_path)
    _check_mask_size(first_mask, reader, mask_path)
    masks_dir = _prepare_output(out_dir) / "masks"
    masks_dir.mkdir(exist_ok=True)
    atomic_write_json(out_dir / "config.json", settings)
    current: list[np.ndarray] = []
    masks = propagate_mask(propagator, _remember_last(reader, current), first_mask)
    bar = tqdm(masks, total=reader.info.num_frames, desc="tracking", unit="frame", disable=not progress)
    overlay_path = out_dir / "overlay.mp4" if overlay else None
    with VideoWriter(overlay_path, reader.info.fps) if overlay_path else _NoWriter() as writer:
        for index, mask in enumerate(bar):
            write_mask(masks_dir / f"{index:05d}.png", mask)
            writer.write(overlay_masks(current[0], mask))
    return TrackOutput(masks_dir, overlay_path, reader.info.num_frames)


def _remember_last(frames: VideoReader, holder: list[np.ndarray]) -> Iterator[np.ndarray]:
    """Propagators run in lockstep (labels of frame i are yielded before frame i+1 is read), so the
    frame kept here is the one whose mask comes out next."""
    for frame in frames:
        holder[:] = [frame]
        yield frame


def _check_mask_size(mask: np.ndarray, reader: VideoReader, mask_path: Path) -> None:
    info = reader.info
    if mask.shape != (info.height, info.width):
        raise InputError(
            mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]} but the video is {info.width}x{info.height}"
        )


def _prepare_output(out_dir: Path) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "output path exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


class _NoWriter:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def write(self, frame: np.ndarray) -> None:
        return None
