"""The app's one door to the library: the facade (``colortrack.Tracker`` / ``colortrack.Colorizer``)
and keyframe propagation (a :class:`colortrack.tasks.keyframes.KeyframeSession` per project)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from colortrack.errors import InputError
from colortrack.tasks.keyframes import FrameUpdate, KeyframeSession

TRAINING_FREE = ("color", "identity", "flow")


class Engine:
    """Holds the tracker and colorizer of one method (loaded on first use) and the keyframe
    session of each project (its frames decoded into memory on its first propagation)."""

    def __init__(self, method: str = "model", device: str = "auto"):
        self.method = method
        self.device = device
        self._propagator = None
        self._colorizer = None
        self._sessions: dict[str, KeyframeSession] = {}

    @property
    def propagator(self):
        if self._propagator is None:
            from colortrack import Tracker

            self._propagator = Tracker.pretrained(self.method, device=self.device).propagator
        return self._propagator

    def propagate(self, key: str, frames: Iterable[np.ndarray], keyframes: Mapping[int, np.ndarray]) -> Iterator[FrameUpdate]:
        """Re-computes the frames that ``keyframes`` (frame index -> (H, W) uint8 ids, the user's
        current ones) change since the last call for ``key``: all of them the first time. frames:
        the video's RGB (H, W, 3) uint8 frames, read once per key."""
        if not keyframes:
            raise InputError("keyframes", "paint a mask on at least one frame first")
        if key not in self._sessions:
            self._sessions[key] = KeyframeSession(self.propagator, np.stack(list(frames)))
        session = self._sessions[key]
        _sync(session, keyframes)
        return session.propagate()

    def colorize(self, frames: Iterable[np.ndarray], references: dict[int, np.ndarray]) -> Iterator[np.ndarray]:
        """frames: a VideoReader (iterated twice); references: frame index -> its colour image
        (H, W, 3) uint8. Yields the colourized frames (H, W, 3) uint8."""
        if not references:
            raise InputError("references", "give the colour image of at least one frame first")
        return (frame.rgb for frame in self.colorizer.colorize(frames, references))

    @property
    def colorizer(self):
        """``colortrack colorize``'s defaults with this method's embedder (the training-free gray
        one for the training-free methods)."""
        if self._colorizer is None:
            from colortrack import Colorizer

            self._colorizer = Colorizer.pretrained("gray" if self.method in TRAINING_FREE else self.method, device=self.device)
        return self._colorizer


def _sync(session: KeyframeSession, keyframes: Mapping[int, np.ndarray]) -> None:
    """Makes the session's keyframes those of ``keyframes`` (marking what changed stale)."""
    current = session.keyframes
    for index in current.keys() - keyframes.keys():
        session.remove_keyframe(index)
    for index, mask in keyframes.items():
        if index not in current or not np.array_equal(current[index], mask):
            session.set_keyframe(index, mask)
