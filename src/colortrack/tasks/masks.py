"""Object masks through any propagator: id masks in, id masks out, via a label-id <-> channel map;
and the job behind ``colortrack track --mask``: a video and a first-frame mask (or keyframes) in,
masks and an overlay out."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import numpy as np
from tqdm import tqdm

from colortrack.core.tracker import Propagator
from colortrack.errors import InputError
from colortrack.io.atomic import make_dirs
from colortrack.io.masks import LabelMap, read_mask, write_mask
from colortrack.io.overlay import overlay_masks
from colortrack.io.runs import RunFolder, input_fingerprint
from colortrack.io.streams import NoWriter, prefetched, remember_all, write_behind
from colortrack.io.video import VideoReader, VideoWriter
from colortrack.tasks.keyframes import OnehotLabels, check_keyframes, propagate_keyframe_masks, propagate_keyframes


# x264 preset of the overlay, a preview: on hockey (75 frames 480p) 6.3 ms/frame of CPU and 1.7 MB
# against veryfast's 9.2 ms and 1.2 MB (docs/benchmarks.md).
OVERLAY_SPEED = "superfast"


@dataclass(frozen=True)
class MaskFrame:
    """The objects of one frame, at the video's native size.

    index: 0-based frame number. mask: (H, W) uint8 object ids (0 background).
    probabilities: (L, H, W) float32 soft labels; channel l is object ``ids[l]`` (``ids[0]`` = 0,
    the background). ids: (L,) the object id of each channel.
    """

    index: int
    mask: np.ndarray
    probabilities: np.ndarray
    ids: tuple[int, ...]

    @property
    def confidence(self) -> np.ndarray:
        """(H, W) float32: the probability of the id chosen at each pixel."""
        return self.probabilities.max(axis=0)


def iter_mask_frames(
    propagator: Propagator, frames: Iterable[np.ndarray], keyframes: np.ndarray | Mapping[int, np.ndarray]
) -> Iterator[MaskFrame]:
    """frames: RGB (H, W, 3) uint8; keyframes: the (H, W) uint8 object ids of the first frame (255
    void: unknown; it comes back as given), or ``{frame index: ids}`` of one or more keyframes (:mod:`colortrack.tasks.keyframes`; frames are
    then held in memory). Yields a :class:`MaskFrame` for every frame in time order, one at a time
    (streamed from a first-frame mask)."""
    keyframes = keyframes if isinstance(keyframes, Mapping) else {0: keyframes}
    if list(keyframes) == [0]:
        label_map = LabelMap.from_mask(keyframes[0])
        stream = propagator.track(frames, label_map.to_onehot(keyframes[0]))
    else:
        frames = frames if isinstance(frames, Sequence) else list(frames)
        check_keyframes(keyframes, len(frames), frames[0].shape[:2])
        label_map = LabelMap.from_masks(keyframes.values())
        stream = propagate_keyframes(propagator, frames, OnehotLabels(label_map, keyframes))
    for index, probabilities in enumerate(stream):
        if index == 0 and list(keyframes) == [0]:  # the first mask as given, void kept
            yield MaskFrame(0, keyframes[0], probabilities, label_map.ids)
            continue
        # numpy's argmax over the first axis is ~6x faster than torch's on CPU (a strided reduction)
        yield MaskFrame(index, label_map.to_ids(np.argmax(probabilities, axis=0)), probabilities, label_map.ids)


def propagate_mask(
    propagator: Propagator, frames: Iterable[np.ndarray], first_mask: np.ndarray
) -> Iterator[np.ndarray]:
    """frames: RGB (H, W, 3) uint8; first_mask: (H, W) uint8 object ids of the first frame, 255
    void (unknown: no label is taught there). Yields (H, W) uint8 id masks for every frame, the
    first included (the first as given, void kept)."""
    return (frame.mask for frame in iter_mask_frames(propagator, frames, first_mask))


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
    """Writes ``out_dir/masks/<frame>.png`` at native size, ``out_dir/overlay.mp4`` and ``out_dir/config.json``.

    Masks are named after the source frames (``00001.jpg`` -> ``00001.png``) for a folder of
    frames, so that they line up with 1-based or sparse ground truth; ``%05d`` from 0 for a video.

    mask_paths: the first frame's mask, or ``{frame index: mask}`` of one or more keyframes
    (:mod:`colortrack.tasks.keyframes`; the video is then held in memory).
    Every file is written atomically. When ``out_dir`` already holds the complete outputs of an
    identical run (same ``config.json``: settings and inputs), nothing is redone; otherwise the
    earlier outputs are removed first, so that a re-run of an interrupted job starts clean.
    """
    reader = VideoReader(video_path)
    keyframe_paths = by_frame(mask_paths)
    keyframes = {index: _read_keyframe(path, index, reader) for index, path in keyframe_paths.items()}
    run = RunFolder.open(out_dir, {**settings, "inputs": {"video": input_fingerprint(reader), **keyframe_fingerprints(keyframe_paths, "mask")}})
    out_dir = run.path
    masks_dir = out_dir / "masks"
    num_frames = reader.info.num_frames
    overlay_path = out_dir / "overlay.mp4" if overlay else None
    mask_paths = [masks_dir / name for name in mask_names(reader)]
    if run.finished(mask_paths + [overlay_path] * overlay):
        return TrackOutput(masks_dir, overlay_path, num_frames, skipped=True)
    earlier = [p for p in masks_dir.glob("*.png") if _MASK_NAME.match(p.name)]
    stale = [out_dir / "overlay.mp4"] + sorted(set(earlier) | set(mask_paths))
    run.start_clean(stale)
    make_dirs(masks_dir)
    results = with_frames(
        reader,
        keyframes,
        lambda frames, mask: propagate_mask(propagator, frames, mask),
        lambda frames, masks: propagate_keyframe_masks(propagator, frames, masks),
    )
    bar = tqdm(results, total=num_frames, desc="tracking", unit="frame", disable=not progress)
    writer_cm = VideoWriter(overlay_path, reader.info.fps, speed=OVERLAY_SPEED) if overlay_path else NoWriter()
    with writer_cm as writer:
        write_behind(enumerate(bar), lambda item: _write_frame_outputs(mask_paths[item[0]], *item[1], writer))
    return TrackOutput(masks_dir, overlay_path, reader.info.num_frames)


def mask_names(reader: VideoReader) -> list[str]:
    """One output name per frame: the source frame's name with ``.png`` for a folder of frames
    whose names are distinct without their extensions, ``%05d.png`` from 0 otherwise."""
    numbered = [f"{index:05d}.png" for index in range(reader.info.num_frames)]
    if reader.frame_paths is None:
        return numbered
    names = [f"{Path(path).stem}.png" for path in reader.frame_paths]
    return names if len(set(names)) == len(names) else numbered


def with_frames(
    reader: VideoReader,
    keyframes: dict[int, Any],
    from_first: Callable[[Iterable[np.ndarray], Any], Iterable[Any]],
    from_keyframes: Callable[[np.ndarray, dict[int, Any]], Iterable[Any]],
) -> Iterator[tuple[np.ndarray, Any]]:
    """(frame, result) pairs in time order. With frame 0 as the only keyframe, the frames are
    streamed through ``from_first(frames, annotation)``; otherwise the video is read into memory
    for ``from_keyframes(frames (T, H, W, 3), keyframes)``."""
    if list(keyframes) == [0]:
        pending: deque[np.ndarray] = deque()
        for result in from_first(remember_all(prefetched(reader), pending), keyframes[0]):
            yield pending.popleft(), result
        return
    frames = reader.read_all()
    yield from zip(frames, from_keyframes(frames, keyframes))


def check_frame_index(path: Path, index: int, num_frames: int) -> None:
    if not 0 <= index < num_frames:
        raise InputError(path, f"frame index {index} is out of range: the video has frames 0..{num_frames - 1}")


def by_frame(paths: Path | Mapping[int, Path]) -> dict[int, Path]:
    """``{frame index: annotation file}`` in time order; a single file annotates frame 0."""
    return {0: paths} if isinstance(paths, Path) else dict(sorted(paths.items()))


def keyframe_fingerprints(keyframe_paths: dict[int, Path], single: str) -> dict:
    """What identifies the annotation files: ``{single: fingerprint}`` for frame 0 alone (as
    before keyframes existed), else ``{"keyframes": {index: fingerprint}}``."""
    if list(keyframe_paths) == [0]:
        return {single: input_fingerprint(keyframe_paths[0])}
    return {"keyframes": {str(index): input_fingerprint(path) for index, path in keyframe_paths.items()}}


def _read_keyframe(path: Path, index: int, reader: VideoReader) -> np.ndarray:
    mask = read_mask(path)
    _check_mask_size(mask, reader, path)
    check_frame_index(path, index, reader.info.num_frames)
    return mask


def _write_frame_outputs(mask_path: Path, frame: np.ndarray, mask: np.ndarray, writer) -> None:
    write_mask(mask_path, mask)
    writer.write(overlay_masks(frame, mask))


def _check_mask_size(mask: np.ndarray, reader: VideoReader, mask_path: Path) -> None:
    info = reader.info
    if mask.shape != (info.height, info.width):
        raise InputError(
            mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]} but the video is {info.width}x{info.height}"
        )
