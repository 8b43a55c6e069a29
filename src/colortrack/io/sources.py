"""What the library accepts as a video, an image or a mask: a path, a numpy array, or (videos)
an iterable of frames. Every form becomes RGB ``(H, W, 3) uint8`` frames (ids ``(H, W) uint8``
for masks); anything else is an :class:`colortrack.errors.InputError` naming the argument."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sized
from pathlib import Path

import numpy as np

from colortrack.errors import InputError

PathLike = str | os.PathLike


class Frames:
    """The frames of a video given as a path (file or folder of frames), a ``(T, H, W, 3)`` or
    ``(T, H, W)`` uint8 array, a sequence of frames, or any iterable of frames (read once).

    ``reader`` is the :class:`colortrack.io.video.VideoReader` of a path (None otherwise);
    ``rereadable``: iterating again gives the same frames (a path, an array, a sequence, a
    VideoReader: anything whose ``iter()`` is a new iterator);
    ``num_frames`` and ``size`` (H, W) are known up front except for a one-pass iterable.
    Each frame is checked as it is read: uint8, (H, W, 3) RGB or (H, W) gray, one size throughout.
    """

    def __init__(self, video: PathLike | np.ndarray | Iterable[np.ndarray], name: str = "video"):
        self.name = name
        self.reader = None
        if isinstance(video, (str, os.PathLike)):
            from colortrack.io.video import VideoReader

            self.reader = VideoReader(video)
            self.name = str(video)
            self.source, self.rereadable = self.reader, True
            self.num_frames, self.size = self.reader.info.num_frames, (self.reader.info.height, self.reader.info.width)
        elif isinstance(video, np.ndarray):
            if video.ndim not in (3, 4) or len(video) == 0:
                raise InputError(name, f"an array video must be (T, H, W, 3) or (T, H, W) with T > 0, got {video.shape}")
            self.source, self.rereadable = video, True
            self.num_frames, self.size = len(video), tuple(video.shape[1:3])
        elif isinstance(video, Iterable):
            self.source, self.rereadable = video, iter(video) is not video  # a generator is read once
            self.num_frames = len(video) if isinstance(video, Sized) else None
            self.size = None
        else:
            raise InputError(name, f"expected a path, an array or an iterable of frames, got {type(video).__name__}")

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.reader is not None:
            return iter(self.reader)
        return self._checked()

    def _checked(self) -> Iterator[np.ndarray]:
        size = self.size
        for index, frame in enumerate(self.source):
            frame = rgb_frame(frame, f"{self.name} frame {index}")
            if size is None:
                size = frame.shape[:2]
            elif frame.shape[:2] != size:
                raise InputError(self.name, f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, frame 0 is {size[1]}x{size[0]}")
            yield frame


def rgb_frame(frame: object, name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an (H, W, 3) or (H, W) uint8 array; InputError naming ``name`` otherwise."""
    array = np.asarray(frame)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise InputError(name, f"expected an (H, W, 3) RGB or (H, W) gray uint8 image, got {array.dtype} {array.shape}")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    return array


def read_rgb(image: PathLike | np.ndarray, name: str) -> np.ndarray:
    """An image file or array -> (H, W, 3) uint8 RGB."""
    if isinstance(image, (str, os.PathLike)):
        from colortrack.io.video import read_image

        return read_image(image)
    return rgb_frame(image, name)


def read_ids(mask: PathLike | np.ndarray, name: str = "mask", size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask file (any DAVIS-style PNG, see :func:`colortrack.io.masks.read_mask`) or an
    (H, W) integer array of object ids in 0..255 (255: void) -> (H, W) uint8, checked against
    ``size`` (H, W) when given."""
    if isinstance(mask, (str, os.PathLike)):
        from colortrack.io.masks import read_mask

        ids, name = read_mask(mask), str(mask)
    else:
        array = np.asarray(mask)
        if array.ndim != 2 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
            raise InputError(name, f"expected an (H, W) integer array of object ids, got {array.dtype} {array.shape}")
        if array.size and (array.min() < 0 or array.max() > 255):
            raise InputError(name, f"object ids must be in 0..255 (255: void), got {array.min()}..{array.max()}")
        ids = array.astype(np.uint8)
    if size is not None and ids.shape != tuple(size):
        raise InputError(name, f"mask is {ids.shape[1]}x{ids.shape[0]} but the video is {size[1]}x{size[0]}")
    return ids


def open_frames(video: PathLike | np.ndarray | Iterable[np.ndarray], name: str = "video") -> tuple[Frames, Iterable[np.ndarray], tuple[int, int]]:
    """The video as :class:`Frames`, its frames to read (the Frames themselves when re-readable,
    else a one-pass iterator whose first frame was read to learn the size) and its (H, W)."""
    frames = Frames(video, name)
    if frames.size is not None:
        return frames, frames, frames.size
    stream = iter(frames)
    try:
        first = next(stream)
    except StopIteration:
        raise InputError(frames.name, "has no frames") from None
    if frames.rereadable:
        return frames, frames, first.shape[:2]
    return frames, itertools.chain([first], stream), first.shape[:2]


def parse_reference(text: str) -> tuple[Path, int]:
    """``FILE[@FRAME_INDEX]`` (a reference image, a mask, points) -> (path, index); no index means frame 0."""
    path, sep, index = text.rpartition("@")
    if sep and index.isdigit() and path:
        return Path(path), int(index)
    if sep and path and not Path(text).exists():
        raise InputError(text, f"frame index '{index}' after '@' is not a whole number")
    return Path(text), 0
