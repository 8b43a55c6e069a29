"""Frame streams between a decoder, a propagator and the writers of a job."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from queue import Queue
from threading import Thread

import numpy as np


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


def remember_all(frames: Iterable[np.ndarray], pending: deque[np.ndarray]) -> Iterator[np.ndarray]:
    """``frames``, each also appended to ``pending``: a consumer of the propagator's results pops
    the frame that goes with each result (in order)."""
    for frame in frames:
        pending.append(frame)
        yield frame


class NoWriter:
    """A video writer that writes nothing: the job's code stays the same without an overlay."""

    def __enter__(self) -> NoWriter:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def write(self, frame: np.ndarray) -> None:
        return None
