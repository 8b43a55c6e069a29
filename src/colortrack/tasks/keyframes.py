"""Propagation from several annotated frames (keyframes), and a session that re-propagates only
what a new or corrected keyframe can change.

The keyframes cut the video into segments. Frames between two keyframes ``a < b`` are predicted
from both sides, forward from ``a`` and backward from ``b``, each pass keeping both keyframes in
its context for good (:meth:`colortrack.core.memory.ContextMemory.pin`), and the two predictions
are blended by temporal distance: frame t takes ``(b - t) / (b - a)`` of the forward one. Frames
before the first keyframe are propagated backward from it, frames after the last forward from it.
A segment depends on its two bounding keyframes only, so changing keyframe k re-computes the
frames between the keyframes before and after k, and nothing else.

A keyframe is a complete annotation of its frame: an object missing from it is absent there.
The id <-> channel map covers the union of the keyframes' ids, so an object may first appear in a
later keyframe: between an earlier keyframe without it and that one, it is carried backward from
where it was annotated and fades out with the blend weights towards the earlier keyframe.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from colortrack.core.tracker import Propagator
from colortrack.errors import InputError
from colortrack.io.masks import VOID_ID, LabelMap


@dataclass(frozen=True)
class Segment:
    """Frames ``first .. last`` (inclusive) between keyframe ``before`` and keyframe ``after``;
    None where the video has no keyframe on that side."""

    before: int | None
    after: int | None
    first: int
    last: int

    @property
    def frames(self) -> range:
        return range(self.first, self.last + 1)


def split_segments(keyframes: Sequence[int], num_frames: int) -> list[Segment]:
    """The segments of a video of ``num_frames`` frames between the ``keyframes`` indices, in
    time order (keyframes themselves belong to none)."""
    bounds = [None, *sorted(keyframes), None]
    segments = []
    for before, after in zip(bounds[:-1], bounds[1:]):
        first = 0 if before is None else before + 1
        last = num_frames - 1 if after is None else after - 1
        if first <= last and bounds != [None, None]:
            segments.append(Segment(before, after, first, last))
    return segments


def affected_frames(keyframes: Sequence[int], index: int, num_frames: int) -> range:
    """The frames whose prediction depends on keyframe ``index`` (itself included), i.e. those
    between the keyframes before and after it among ``keyframes``."""
    earlier = [k for k in keyframes if k < index]
    later = [k for k in keyframes if k > index]
    start = max(earlier) + 1 if earlier else 0
    stop = min(later) if later else num_frames
    return range(start, stop)


def predict_segment(
    propagator: Propagator, frames: Sequence[np.ndarray], segment: Segment, labels: Mapping[int, np.ndarray]
) -> Iterator[tuple[int, np.ndarray]]:
    """Yields ``(t, (L, H, W) float32 probabilities)`` for the segment's frames in time order.

    frames: RGB (H, W, 3) uint8 of the whole video, by index; labels: (L, H, W) float32 of (at
    least) the segment's keyframes. The backward pass is held in memory (float16) until the
    forward pass meets it: memory grows with the segment's length.
    """
    before, after = segment.before, segment.after
    backward = _backward_pass(propagator, frames, segment, labels) if after is not None else None
    if before is None:
        yield from zip(segment.frames, backward)
        return
    pinned = [(frames[after], labels[after])] if after is not None else []
    forward = propagator.track((frames[t] for t in range(before, segment.last + 1)), labels[before], pinned)
    next(forward)  # the keyframe itself
    for t, predicted in zip(segment.frames, forward):
        if backward is None:
            yield t, predicted
        else:
            weight = (after - t) / (after - before)
            yield t, weight * predicted + (1.0 - weight) * backward[t - segment.first].astype(np.float32)


def _backward_pass(
    propagator: Propagator, frames: Sequence[np.ndarray], segment: Segment, labels: Mapping[int, np.ndarray]
) -> list[np.ndarray]:
    """The segment's predictions propagated backward from its later keyframe, in time order."""
    pinned = [(frames[segment.before], labels[segment.before])] if segment.before is not None else []
    order = range(segment.after, segment.first - 1, -1)
    stream = propagator.track((frames[t] for t in order), labels[segment.after], pinned)
    next(stream)  # the keyframe itself
    predictions = [predicted.astype(np.float16) for predicted in stream]
    return predictions[::-1]


def propagate_keyframes(
    propagator: Propagator, frames: Sequence[np.ndarray], labels: Mapping[int, np.ndarray]
) -> Iterator[np.ndarray]:
    """frames: RGB (H, W, 3) uint8 of the whole video, by index; labels: ``{frame index: (L, H, W)
    float32}`` of the keyframes (at least one). Yields (L, H, W) float32 probabilities for every
    frame in time order, a keyframe's own labels at a keyframe."""
    segments = split_segments(list(labels), len(frames))
    for keyframe in [None, *sorted(labels)]:
        if keyframe is not None:
            yield labels[keyframe].astype(np.float32, copy=False)
        for segment in segments:
            if segment.before == keyframe:
                yield from (predicted for _, predicted in predict_segment(propagator, frames, segment, labels))


def propagate_keyframe_masks(
    propagator: Propagator, frames: Sequence[np.ndarray], keyframes: Mapping[int, np.ndarray]
) -> Iterator[np.ndarray]:
    """frames: RGB (H, W, 3) uint8 of the whole video, by index; keyframes: ``{frame index: (H, W)
    uint8 object ids}``. Yields (H, W) uint8 id masks for every frame in time order."""
    check_keyframes(keyframes, len(frames), frames[0].shape[:2])
    label_map = LabelMap.from_masks(keyframes.values())
    for probabilities in propagate_keyframes(propagator, frames, OnehotLabels(label_map, keyframes)):
        yield label_map.to_ids(np.argmax(probabilities, axis=0))


def propagate_first_appearances(
    propagator: Propagator, frames: Sequence[np.ndarray], annotations: Mapping[int, np.ndarray]
) -> Iterator[np.ndarray]:
    """The semi-supervised protocol of layouts whose objects enter later (DAVIS, YouTube-VOS):
    each object is given only where it first appears, and nothing is propagated backward.

    frames: RGB (H, W, 3) uint8 of the whole video, by index; annotations: ``{frame index: (H, W)
    uint8 ids}``, the first one a whole frame, each later one holding the objects new on its frame
    and void (255) elsewhere. One forward pass: at an annotated frame, the new objects' pixels
    replace the prediction, and the frame joins the context for good. Yields (H, W) uint8 ids for
    every frame in time order, background before the first annotated frame.
    """
    check_keyframes(annotations, len(frames), frames[0].shape[:2])
    label_map = LabelMap.from_masks(annotations.values())
    starts = sorted(annotations)
    for _ in range(starts[0]):
        yield np.zeros(frames[0].shape[:2], np.uint8)
    labels, pinned = label_map.to_onehot(annotations[starts[0]]), []
    for start, end in zip(starts, [*starts[1:], None]):
        last = len(frames) - 1 if end is None else end
        stream = propagator.track((frames[t] for t in range(start, last + 1)), labels, pinned)
        for t, predicted in zip(range(start, last + 1), stream):
            if t == end:
                pinned.append((frames[start], labels))
                labels = _with_annotation(predicted, annotations[end], label_map)
            else:
                yield label_map.to_ids(np.argmax(predicted, axis=0))


def _with_annotation(predicted: np.ndarray, annotation: np.ndarray, label_map: LabelMap) -> np.ndarray:
    """predicted (L, H, W) with the annotated (non-void) pixels of ``annotation`` (H, W) one-hot."""
    known = annotation != VOID_ID
    merged = predicted.copy()
    merged[:, known] = label_map.to_onehot(annotation)[:, known]
    return merged


def check_keyframes(keyframes: Mapping[int, np.ndarray], num_frames: int, size: tuple[int, int]) -> None:
    """InputError naming the first keyframe outside the video or of another size than ``size``."""
    if not keyframes:
        raise InputError("keyframes", "need at least one annotated frame")
    for index, mask in keyframes.items():
        check_keyframe(index, mask, num_frames, size)


def check_keyframe(index: int, mask: np.ndarray, num_frames: int, size: tuple[int, int]) -> None:
    if not 0 <= index < num_frames:
        raise InputError(f"keyframe {index}", f"frame index out of range: the video has frames 0..{num_frames - 1}")
    if mask.shape != tuple(size):
        raise InputError(
            f"keyframe {index}", f"mask is {mask.shape[1]}x{mask.shape[0]} but the video is {size[1]}x{size[0]}"
        )


def frame_confidence(probabilities: np.ndarray) -> float:
    """How sure a prediction is, in [0, 1]: the mean winning probability over the pixels that an
    object wins or holds at least 10% of; 1 when there are none. probabilities: (L, H, W), channel
    0 background."""
    contested = (np.argmax(probabilities, axis=0) > 0) | (probabilities[1:].max(axis=0, initial=0.0) >= 0.1)
    if not contested.any():
        return 1.0
    return float(probabilities.max(axis=0)[contested].mean())


@dataclass(frozen=True)
class FrameUpdate:
    """One frame re-computed by :meth:`KeyframeSession.propagate`: its (H, W) uint8 ids, its
    confidence (:func:`frame_confidence`), and how far the run is (``done`` of ``total`` frames)."""

    index: int
    mask: np.ndarray
    confidence: float
    done: int
    total: int


class KeyframeSession:
    """The masks of a whole video from keyframes that can be added, corrected and removed.

    ``set_keyframe`` / ``remove_keyframe`` mark the frames the change can affect as stale;
    ``propagate`` re-computes exactly those, streaming :class:`FrameUpdate` s. ``masks[t]`` is
    the latest (H, W) uint8 ids of frame t (None before its first computation) and
    ``confidence[t]`` its confidence (NaN until computed; 1 at keyframes).
    frames: RGB (H, W, 3) uint8 of the whole video, by index (a list or a (T, H, W, 3) array).
    """

    def __init__(self, propagator: Propagator, frames: Sequence[np.ndarray]):
        if len(frames) == 0:
            raise InputError("video", "has no frames")
        self.propagator = propagator
        self.frames = frames
        self.size = tuple(frames[0].shape[:2])
        self.masks: list[np.ndarray | None] = [None] * len(frames)
        self.confidence = np.full(len(frames), np.nan)
        self._keyframes: dict[int, np.ndarray] = {}
        self._stale: set[int] = set()

    @property
    def keyframes(self) -> dict[int, np.ndarray]:
        return dict(sorted(self._keyframes.items()))

    @property
    def stale(self) -> list[int]:
        """The frames the next :meth:`propagate` will re-compute, in order."""
        return sorted(self._stale)

    def set_keyframe(self, index: int, mask: np.ndarray) -> range:
        """Adds or replaces the annotation of frame ``index``: (H, W) uint8 ids (255 void).
        Returns the frames it makes stale."""
        check_keyframe(index, mask, len(self.frames), self.size)
        self._keyframes[index] = np.array(mask, dtype=np.uint8)
        self._stale.discard(index)
        self.masks[index] = np.where(mask == VOID_ID, 0, mask).astype(np.uint8)
        self.confidence[index] = 1.0
        return self._mark_stale(index)

    def remove_keyframe(self, index: int) -> range:
        """Forgets the annotation of frame ``index``; returns the frames it makes stale."""
        if index not in self._keyframes:
            raise InputError(f"keyframe {index}", "is not a keyframe")
        affected = self._mark_stale(index)
        del self._keyframes[index]
        self._stale.add(index)
        return affected

    def _mark_stale(self, index: int) -> range:
        affected = affected_frames(list(self._keyframes), index, len(self.frames))
        self._stale.update(t for t in affected if t not in self._keyframes)
        return affected

    def propagate(self) -> Iterator[FrameUpdate]:
        """Re-computes the stale frames, segment by segment in time order, yielding each one."""
        if not self._keyframes:
            return
        label_map = LabelMap.from_masks(self._keyframes.values())
        labels = OnehotLabels(label_map, self._keyframes)
        segments = [s for s in split_segments(list(self._keyframes), len(self.frames)) if self._stale & set(s.frames)]
        total = sum(len(s.frames) for s in segments)
        done = 0
        for segment in segments:
            for index, probabilities in predict_segment(self.propagator, self.frames, segment, labels):
                self.masks[index] = label_map.to_ids(np.argmax(probabilities, axis=0))
                self.confidence[index] = frame_confidence(probabilities)
                self._stale.discard(index)
                done += 1
                yield FrameUpdate(index, self.masks[index], float(self.confidence[index]), done, total)

    def least_confident(self, count: int = 5) -> list[int]:
        """Up to ``count`` computed frames, least confident first (keyframes excluded)."""
        candidates = [t for t in range(len(self.frames)) if t not in self._keyframes and not np.isnan(self.confidence[t])]
        return sorted(candidates, key=lambda t: self.confidence[t])[:count]


class OnehotLabels(Mapping):
    """``{keyframe index: (L, H, W) one-hot}``, each built when first asked for."""

    def __init__(self, label_map: LabelMap, masks: Mapping[int, np.ndarray]):
        self.label_map, self.masks, self.cache = label_map, masks, {}

    def __getitem__(self, index: int) -> np.ndarray:
        if index not in self.cache:
            self.cache[index] = self.label_map.to_onehot(self.masks[index])
        return self.cache[index]

    def __iter__(self):
        return iter(self.masks)

    def __len__(self) -> int:
        return len(self.masks)
