"""The app's one door to the library: propagation from the user's keyframes and colorization.

Every keyframe restarts the tracker with its own mask; frames before the first keyframe are
tracked backward from it. Re-propagating from a corrected frame recomputes only the frames from
the keyframe at or before it onwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice

import numpy as np

from colortrack.core.tracker import PRESETS, pick_device
from colortrack.errors import InputError
from colortrack.models.registry import make_propagator, resolve_preset
from colortrack.tasks.masks import propagate_mask_with_confidence

TRAINING_FREE = ("color", "identity", "flow")


@dataclass(frozen=True)
class FrameResult:
    """ids: (H, W) uint8 object ids of frame ``index``; confidence: the tracker's, in [0, 1]."""

    index: int
    ids: np.ndarray
    confidence: float


def first_computed(keyframes: Iterable[int], start: int) -> int:
    """The first frame a propagation from ``start`` recomputes: ``start`` itself before the first
    keyframe (tracked backward), else the keyframe at or before it."""
    marks = sorted(keyframes)
    if not marks:
        raise InputError("keyframes", "paint a mask on at least one frame first")
    return start if start < marks[0] else max(k for k in marks if k <= start)


class Engine:
    """Holds the propagator and colorizer of one method, loaded on first use."""

    def __init__(self, method: str = "model", device: str = "auto"):
        self.method = method
        self.device = pick_device(device)
        self._propagator = None
        self._colorizer = None

    @property
    def propagator(self):
        if self._propagator is None:
            self._propagator = make_propagator(self.method, resolve_preset(None, self.method), self.device)
        return self._propagator

    def propagate(self, frames: Iterable[np.ndarray], keyframes: dict[int, np.ndarray], start: int = 0) -> Iterator[FrameResult]:
        """frames: every frame of the video, RGB (H, W, 3) uint8, in order; keyframes: frame index
        -> (H, W) uint8 ids. Yields the results from :func:`first_computed` on (backward frames
        first, in decreasing order), keyframes included."""
        begin = first_computed(keyframes, start)
        marks = sorted(keyframes)
        stream = iter(frames)
        if begin < marks[0]:
            head = list(islice(stream, marks[0] + 1))
            backward = self._segment(head[begin:][::-1], keyframes[marks[0]], marks[0], -1)
            yield from islice(backward, 1, None)
            stream = chain(head[marks[0] :], stream)
            begin = marks[0]
        else:
            stream = islice(stream, begin, None)
        starts = [k for k in marks if k >= begin]
        for k, end in zip(starts, [*starts[1:], None]):
            yield from self._segment(islice(stream, None if end is None else end - k), keyframes[k], k, 1)

    def _segment(self, frames: Iterable[np.ndarray], mask: np.ndarray, index: int, step: int) -> Iterator[FrameResult]:
        for offset, prediction in enumerate(propagate_mask_with_confidence(self.propagator, frames, mask)):
            yield FrameResult(index + step * offset, prediction.ids, prediction.confidence)

    def colorize(self, frames: Iterable[np.ndarray], references: dict[int, np.ndarray]) -> Iterator[np.ndarray]:
        """frames: a VideoReader (iterated twice); references: frame index -> its colour image
        (H, W, 3) uint8. Yields the colourized frames (H, W, 3) uint8."""
        if not references:
            raise InputError("references", "give the colour image of at least one frame first")
        return self.colorizer.colorize(frames, references)

    @property
    def colorizer(self):
        if self._colorizer is None:
            from colortrack.models.refiner import SHIPPED, load_refiner
            from colortrack.tasks.colorize import ColorizeConfig, Colorizer, embedder_temperature, make_embedder

            spec = "gray" if self.method in TRAINING_FREE else self.method
            height = None if spec == "gray" else PRESETS["default"].input_height
            config = ColorizeConfig.for_method("propagate", input_height=height, temperature=embedder_temperature(spec))
            embedder = make_embedder(spec, self.device)
            self._colorizer = Colorizer(embedder, config, self.device, load_refiner(SHIPPED, self.device))
        return self._colorizer
