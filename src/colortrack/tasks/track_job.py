"""End-to-end jobs behind the CLI: a video and a first-frame mask (or keyframes) in, masks and an overlay out."""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from queue import Queue
from threading import Thread
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from colortrack.errors import InputError, OutputError
from colortrack.io.atomic import atomic_write_json, is_write_error, make_dirs
from colortrack.io.masks import read_mask, write_mask
from colortrack.io.video import VideoReader, VideoWriter
from colortrack.io.overlay import overlay_masks
from colortrack.tasks.keyframes import propagate_keyframe_masks
from colortrack.tasks.masks import propagate_mask
from colortrack.core.tracker import Propagator

_MASK_NAME = re.compile(r"^\d{5}\.png$")


@dataclass(frozen=True)
class TrackOutput:
    masks_dir: Path
    overlay: Path | None
    num_frames: int
    skipped: bool = False  # an identical earlier run had already written every output


def track_video(
    video_path: Path,
    mask_paths: Path | Mapping[int, Path],
    out_dir: Path,
    propagator: Propagator,
    settings: dict,
    overlay: bool = True,
    progress: bool = True,
) -> TrackOutput:
    """Writes ``out_dir/masks/%05d.png`` at native size, ``out_dir/overlay.mp4`` and ``out_dir/config.json``.

    mask_paths: the first frame's mask, or ``{frame index: mask}`` of one or more keyframes
    (:mod:`colortrack.tasks.keyframes`; the video is then held in memory).
    Every file is written atomically. When ``out_dir`` already holds the complete outputs of an
    identical run (same ``config.json``: settings and inputs), nothing is redone; otherwise the
    earlier outputs are removed first, so that a re-run of an interrupted job starts clean.
    """
    reader = VideoReader(video_path)
    keyframe_paths = {0: mask_paths} if isinstance(mask_paths, Path) else dict(sorted(mask_paths.items()))
    keyframes = {index: _read_keyframe(path, index, reader) for index, path in keyframe_paths.items()}
    out_dir = _prepare_output(out_dir)
    masks_dir = out_dir / "masks"
    num_frames = reader.info.num_frames
    overlay_path = out_dir / "overlay.mp4" if overlay else None
    settings = {**settings, "inputs": {"video": input_fingerprint(reader), **_mask_fingerprints(keyframe_paths)}}
    expected = [masks_dir / f"{index:05d}.png" for index in range(num_frames)] + [overlay_path] * overlay
    if finished_run(out_dir, settings, expected):
        return TrackOutput(masks_dir, overlay_path, num_frames, skipped=True)
    stale = [out_dir / "overlay.mp4"] + [p for p in masks_dir.glob("*.png") if _MASK_NAME.match(p.name)]
    start_run(out_dir, settings, stale)
    make_dirs(masks_dir)
    results = _frames_and_masks(reader, keyframes, propagator)
    bar = tqdm(results, total=num_frames, desc="tracking", unit="frame", disable=not progress)
    writer_cm = VideoWriter(overlay_path, reader.info.fps, speed="veryfast") if overlay_path else _NoWriter()
    with writer_cm as writer, ThreadPoolExecutor(max_workers=1) as io:
        job = None
        for index, (frame, mask) in enumerate(bar):
            if job is not None:
                job.result()  # one frame in flight: memory stays flat, errors surface at once
            job = io.submit(_write_frame_outputs, masks_dir / f"{index:05d}.png", mask, frame, writer)
        if job is not None:
            job.result()
    return TrackOutput(masks_dir, overlay_path, reader.info.num_frames)


def _frames_and_masks(
    reader: VideoReader, keyframes: dict[int, np.ndarray], propagator: Propagator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame, mask) pairs in time order: streamed from a first-frame mask, else from the video in memory."""
    if list(keyframes) == [0]:
        pending: deque[np.ndarray] = deque()
        for mask in propagate_mask(propagator, _remember_all(prefetched(reader), pending), keyframes[0]):
            yield pending.popleft(), mask
        return
    frames = reader.read_all()
    yield from zip(frames, propagate_keyframe_masks(propagator, frames, keyframes))


def _read_keyframe(path: Path, index: int, reader: VideoReader) -> np.ndarray:
    mask = read_mask(path)
    _check_mask_size(mask, reader, path)
    num_frames = reader.info.num_frames
    if not 0 <= index < num_frames:
        raise InputError(path, f"frame index {index} is out of range: the video has frames 0..{num_frames - 1}")
    return mask


def _mask_fingerprints(keyframe_paths: dict[int, Path]) -> dict:
    if list(keyframe_paths) == [0]:
        return {"mask": input_fingerprint(keyframe_paths[0])}
    return {"keyframes": {str(index): input_fingerprint(path) for index, path in keyframe_paths.items()}}


def _write_frame_outputs(mask_path: Path, mask: np.ndarray, frame: np.ndarray, writer) -> None:
    write_mask(mask_path, mask)
    writer.write(overlay_masks(frame, mask))


def prefetched(frames: Iterable[np.ndarray], depth: int = 2) -> Iterator[np.ndarray]:
    """``frames``, decoded up to ``depth`` ahead in a thread (the decoder releases the GIL) while
    the caller computes. An error while decoding is raised here, in the caller's thread."""
    queue: Queue = Queue(maxsize=depth)
    end = object()

    def decode() -> None:
        try:
            for frame in frames:
                queue.put(frame)
            queue.put(end)
        except BaseException as err:  # handed to the consumer, which raises it
            queue.put(_Failure(err))

    Thread(target=decode, daemon=True).start()
    while (item := queue.get()) is not end:
        if isinstance(item, _Failure):
            raise item.error
        yield item


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def _remember_all(frames: Iterable[np.ndarray], pending: deque[np.ndarray]) -> Iterator[np.ndarray]:
    """Keeps every frame handed to the propagator until its mask has come out (in order)."""
    for frame in frames:
        pending.append(frame)
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
    return make_dirs(out_dir)


def input_fingerprint(source: VideoReader | Path) -> dict:
    """What identifies an input file (or a folder of frames) for :func:`finished_run`: its
    absolute path, number of files, total size and latest modification time."""
    if isinstance(source, VideoReader):
        path, files = source.path, source.frame_paths or [source.path]
    else:
        path, files = Path(source), [Path(source)]
    stats = [file.stat() for file in files]
    return {
        "path": str(path.resolve()),
        "files": len(files),
        "bytes": sum(stat.st_size for stat in stats),
        "mtime_ns": max(stat.st_mtime_ns for stat in stats),
    }


def finished_run(out_dir: Path, settings: dict, outputs: list[Path]) -> bool:
    """Whether ``out_dir/config.json`` equals ``settings`` and every one of ``outputs`` exists
    (each output is written atomically, so one that exists is complete)."""
    try:
        previous = json.loads((out_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return previous == json.loads(json.dumps(settings)) and all(path.is_file() for path in outputs)


def start_run(out_dir: Path, settings: dict, stale: list[Path]) -> None:
    """Forget an earlier run in ``out_dir``: remove its config.json, then its ``stale`` outputs,
    then write ``settings`` as the new config.json (a run killed part-way is redone in full)."""
    for path in [out_dir / "config.json", *stale]:
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            if is_write_error(err):
                raise OutputError(path, f"cannot remove an earlier output ({err.strerror})") from err
            raise
    atomic_write_json(out_dir / "config.json", settings)


class _NoWriter:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def write(self, frame: np.ndarray) -> None:
        return None
