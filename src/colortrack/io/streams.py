"""Frame streams between a decoder, a propagator and the writers of a job."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from queue import Queue
from threading import Thread
from typing import TypeVar

import numpy as np

T = TypeVar("T")


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


def write_behind(items: Iterable[T], write: Callable[[T], None]) -> int:
    """Calls ``write(item)`` for every item in a side thread while the next item is computed,
    one item in flight (memory stays flat; a write error surfaces at the next item). Returns
    the number of items."""
    count, job = 0, None
    with ThreadPoolExecutor(max_workers=1) as writer:
        for item in items:
            if job is not None:
                job.result()
            job = writer.submit(write, item)
            count += 1
        if job is not None:
            job.result()
    return count


class NoWriter:
    """A video writer that writes nothing: the job's code stays the same without an overlay."""

    def __enter__(self) -> NoWriter:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def write(self, frame: np.ndarray) -> None:
        return None
