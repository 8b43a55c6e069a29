"""Which frames a target frame attends to: the first frame, pinned keyframes and the last n predictions."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch
from torch import Tensor

from colortrack.errors import InputError


@dataclass(frozen=True)
class MemoryConfig:
    """keep_first: the annotated first frame stays in context for the whole video.
    recent: how many of the most recent frames are kept besides it.
    global_anchors: the annotated frames (the first, pinned keyframes) are searched over the whole
    frame, not only within the affinity's radius, so that what reappears far from where it was
    annotated is found again (see :func:`colortrack.core.affinity.attend`, ``anchors``)."""

    keep_first: bool = True
    recent: int = 3
    global_anchors: bool = False


class ContextMemory:
    """Holds (embedding, labels) pairs of context frames. Embeddings are stored once, never recomputed.

    Besides the first frame and the recent ones, any number of frames can be pinned (annotated
    keyframes): they stay in the context for good, whatever ``config`` says.
    """

    def __init__(self, config: MemoryConfig):
        if config.recent < 1 and not config.keep_first:
            raise InputError("memory", "must keep the first frame or at least one recent frame")
        self.config = config
        self._first: tuple[Tensor, Tensor] | None = None
        self._pinned: list[tuple[Tensor, Tensor]] = []
        self._recent: deque[tuple[Tensor, Tensor]] = deque(maxlen=max(config.recent, 0) or None)

    def add(self, key: Tensor, value: Tensor) -> None:
        """key: (C, h, w) embedding; value: (L, h, w) labels of one frame, in time order."""
        if self._first is None and self.config.keep_first:
            self._first = (key, value)
        elif self.config.recent > 0:
            self._recent.append((key, value))

    def pin(self, key: Tensor, value: Tensor) -> None:
        """key: (C, h, w); value: (L, h, w) labels of an annotated frame kept for the whole video."""
        self._pinned.append((key, value))

    @property
    def num_anchors(self) -> int:
        """How many of the context's frames, first in :meth:`context`, are annotated ones."""
        return (self._first is not None) + len(self._pinned)

    def context(self) -> tuple[Tensor, Tensor]:
        """Returns keys (N, C, h, w) and values (N, L, h, w): the first frame, the pinned ones,
        then the recent ones, oldest first."""
        frames = ([self._first] if self._first is not None else []) + self._pinned + list(self._recent)
        if not frames:
            raise RuntimeError("memory is empty: add the first frame before asking for context")
        keys, values = zip(*frames)
        return torch.stack(keys), torch.stack(values)
