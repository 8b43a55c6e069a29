"""Read videos (files or folders of frames) and write H.264 mp4, frames as RGB uint8 arrays.

Frames are returned upright: a video file's display matrix (the rotation and mirroring that phones
record instead of turning the pixels) and an image's EXIF orientation are applied, in quarter turns,
and sizes are those of the upright frames.

Every bad input (missing path, unsupported extension, corrupt file or frame, zero frames,
frames of differing sizes) raises :class:`colortrack.errors.InputError`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from PIL import Image, ImageOps

from colortrack.errors import InputError, OutputError
from colortrack.io.atomic import atomic_write, is_write_error, make_dirs, write_problem
from colortrack.io.errors import PIL_ERRORS, one_line

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
WRITABLE_VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv")
DEFAULT_FOLDER_FPS = 24.0

# What PyAV raises on bad files. av.FFmpegError covers InvalidDataError and friends.
_AV_ERRORS = (av.FFmpegError, OSError, ValueError, RuntimeError, EOFError, IndexError)


@dataclass(frozen=True)
class VideoInfo:
    """What a video is: its path, exact frame count, frame rate and upright frame size in pixels."""

    path: Path
    num_frames: int
    fps: float
    height: int
    width: int


_EXIF_ORIENTATION = 0x0112
_EXIF_QUARTER_TURNS = (5, 6, 7, 8)  # orientations that swap width and height


@dataclass(frozen=True)
class Orientation:
    """How a decoded frame is turned upright: transposed, then its rows and/or columns reversed.
    Covers the eight quarter-turn rotations and mirrorings; other angles snap to the nearest."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @classmethod
    def of_frame(cls, frame: av.VideoFrame) -> Orientation:
        """The orientation that the frame's display matrix (FFmpeg's DISPLAYMATRIX side data,
        where MP4/MOV rotation and the legacy ``rotate`` tag end up) asks for."""
        matrix = _display_matrix(frame)
        if matrix is None:
            return cls()
        # FFmpeg maps source (x, y) to display (a*x + c*y, b*x + d*y), y pointing down.
        a, b, c, d = matrix
        if abs(a) >= abs(b):
            return cls(False, flip_rows=d < 0, flip_cols=a < 0)
        return cls(True, flip_rows=b < 0, flip_cols=c < 0)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` ``(H, W, ...)`` turned upright (``image`` itself when nothing changes)."""
        if self.transpose:
            image = image.swapaxes(0, 1)
        if self.flip_rows:
            image = image[::-1]
        if self.flip_cols:
            image = image[:, ::-1]
        return np.ascontiguousarray(image)


def _display_matrix(frame: av.VideoFrame) -> tuple[int, int, int, int] | None:
    """The ``(a, b, c, d)`` entries (16.16 fixed point) of the frame's display matrix, if any."""
    for side_data in frame.side_data:
        if side_data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            m = np.frombuffer(bytes(side_data), dtype="<i4")
            return int(m[0]), int(m[1]), int(m[3]), int(m[4])
    return None


def natural_key(name: str) -> list[str | int]:
    """Sort key that orders ``frame2`` before ``frame10`` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (by extension, hidden files skipped) in ``folder``, sorted naturally."""
    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image, reading only its header. InputError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if im.format == "PNG" and not _png_complete(path):
                raise InputError(path, "truncated PNG (no IEND chunk at the end of the file)")
            if im.getexif().get(_EXIF_ORIENTATION) in _EXIF_QUARTER_TURNS:
                width, height = height, width
    except PIL_ERRORS as err:
        raise InputError(path, f"unreadable image ({one_line(err)})") from err
    return height, width


def _png_complete(path: Path) -> bool:
    """Whether a PNG file ends with its IEND chunk (a cheap test for a cut-off file; a few
    trailing bytes after IEND are tolerated)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64))
        return b"IEND" in handle.read()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB, upright (EXIF orientation applied). Returns ``(H, W, 3) uint8``.
    InputError if missing/corrupt."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        with Image.open(path) as im:
            im.load()
            rgb = ImageOps.exif_transpose(im).convert("RGB")
    except PIL_ERRORS as err:
        raise InputError(path, f"corrupt or unreadable image ({one_line(err)})") from err
    return np.asarray(rgb, dtype=np.uint8)


def _check_frame_sizes(files: list[Path]) -> tuple[int, int]:
    """``(H, W)`` shared by all ``files`` (headers only); InputError naming the first misfit."""
    height, width = image_size(files[0])
    for path in files[1:]:
        h, w = image_size(path)
        if (h, w) != (height, width):
            raise InputError(
                path, f"frame size {w}x{h} differs from {width}x{height} of {files[0].name}"
            )
    return height, width


class VideoReader:
    """Stream the frames of a video file (PyAV) or a folder of images as RGB ``(H, W, 3) uint8``.

    The input is validated on construction; ``info.num_frames`` is exact. For a file, the
    container's frame count is used when it has one that the file could hold (no more frames than
    bytes: a damaged header can claim millions) and corrected if decoding disagrees.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None):
        self.path = Path(path)
        self._fps_override = fps
        self._files: list[Path] | None = None
        if not self.path.exists():
            raise InputError(self.path, "no such file or folder")
        if self.path.is_dir():
            self._open_folder()
        else:
            self._open_file()

    # -- construction -------------------------------------------------------------------
    def _open_folder(self) -> None:
        """List and size-check the folder's frames."""
        try:
            files = list_images(self.path)
        except OSError as err:
            raise InputError(self.path, f"cannot list folder ({one_line(err)})") from err
        if not files:
            exts = ", ".join(IMAGE_EXTENSIONS)
            raise InputError(self.path, f"folder has no image files ({exts})")
        self._files = files
        self._height, self._width = _check_frame_sizes(files)
        self._num_frames = len(files)
        self._fps = float(self._fps_override or DEFAULT_FOLDER_FPS)

    def _open_file(self) -> None:
        """Probe the video file: stream, first frame, frame rate and frame count."""
        suffix = self.path.suffix.lower()
        if suffix in IMAGE_EXTENSIONS:
            raise InputError(self.path, "is an image, not a video (pass the folder of frames)")
        if suffix not in VIDEO_EXTENSIONS:
            raise InputError(
                self.path, f"unsupported extension '{suffix}' (use {', '.join(VIDEO_EXTENSIONS)})"
            )
        with self._open_container() as container:
            stream = container.streams.video[0]
            claimed = int(stream.frames or 0)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            frames = self._decode(container)
            first = next(frames, None)
            frames.close()
        if first is None:
            raise InputError(self.path, "video has zero frames")
        self._orientation = self._first_orientation
        self._height, self._width = first.shape[:2]
        self._fps = float(self._fps_override or (rate if rate else DEFAULT_FOLDER_FPS))
        plausible = 0 < claimed <= self.path.stat().st_size  # a coded frame takes at least a byte
        self._num_frames = claimed if plausible else sum(1 for _ in self._iter_file())

    def _open_container(self) -> av.container.InputContainer:
        """Open the file with PyAV; InputError if it is not a readable video."""
        try:
            container = av.open(str(self.path), mode="r")
        except _AV_ERRORS as err:
            raise InputError(self.path, f"unreadable or corrupt video ({one_line(err)})") from err
        if not container.streams.video:
            container.close()
            raise InputError(self.path, "file has no video stream")
        return container

    # -- decoding -------------------------------------------------------------------------
    def _decode(self, container: av.container.InputContainer) -> Iterator[np.ndarray]:
        """Decode packet by packet so a decoding error can name the frame index."""
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    yield self._to_rgb(frame, index)
                    index += 1
        except _AV_ERRORS as err:
            raise InputError(
                self.path, f"corrupt video: cannot decode frame {index} ({one_line(err)})"
            ) from err

    def _to_rgb(self, frame: av.VideoFrame, index: int) -> np.ndarray:
        """Convert a decoded frame to upright ``(H, W, 3) uint8`` RGB, checking its size."""
        orientation = getattr(self, "_orientation", None)
        if orientation is None:  # probing the first frame
            orientation = self._first_orientation = Orientation.of_frame(frame)
        rgb = orientation.apply(frame.to_ndarray(format="rgb24"))
        expected = getattr(self, "_height", None), getattr(self, "_width", None)
        if expected[0] is not None and rgb.shape[:2] != expected:
            raise InputError(
                self.path,
                f"frame {index} is {rgb.shape[1]}x{rgb.shape[0]}, "
                f"expected {expected[1]}x{expected[0]}",
            )
        return rgb

    def _iter_file(self) -> Iterator[np.ndarray]:
        """Yield the file's frames; record the true count once fully decoded."""
        count = 0
        with self._open_container() as container:
            for rgb in self._decode(container):
                count += 1
                yield rgb
        if count == 0:
            raise InputError(self.path, "video has zero frames")
        self._num_frames = count

    def _iter_folder(self) -> Iterator[np.ndarray]:
        """Yield the folder's frames, each checked against the common size."""
        assert self._files is not None
        for path in self._files:
            rgb = read_image(path)
            if rgb.shape[:2] != (self._height, self._width):
                raise InputError(path, f"frame size {rgb.shape[1]}x{rgb.shape[0]} differs")
            yield rgb

    # -- public API -----------------------------------------------------------------------
    @property
    def info(self) -> VideoInfo:
        """Path, frame count, fps and frame size. The count is exact (see class doc)."""
        return VideoInfo(self.path, self._num_frames, self._fps, self._height, self._width)

    @property
    def frame_paths(self) -> list[Path] | None:
        """The frame files of a folder input, in reading order; None for a video file."""
        return None if self._files is None else list(self._files)

    def __len__(self) -> int:
        return self._num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield frames one at a time, RGB ``(H, W, 3) uint8`` (constant memory)."""
        return self._iter_folder() if self._files is not None else self._iter_file()

    def read_all(self) -> np.ndarray:
        """All frames as one array ``(T, H, W, 3) uint8``."""
        out = np.empty((self._num_frames, self._height, self._width, 3), dtype=np.uint8)
        extra: list[np.ndarray] = []
        count = 0
        for count, rgb in enumerate(self, start=1):
            if count <= len(out):
                out[count - 1] = rgb
            else:
                extra.append(rgb)
        if extra:
            return np.concatenate([out, np.stack(extra)])
        return out[:count]

    def __repr__(self) -> str:
        i = self.info
        size = f"{i.width}x{i.height}"
        return f"VideoReader({str(i.path)!r}, frames={i.num_frames}, {size}, fps={i.fps:g})"


def _even_pad(frame: np.ndarray) -> np.ndarray:
    """Pad ``(H, W, 3)`` to even H and W by repeating the last row/column."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


class VideoWriter:
    """Write RGB ``(H, W, 3) uint8`` frames to an H.264 (libx264, yuv420p) video, atomically.

    Frames go to a temporary file beside ``path``, moved onto ``path`` only by a successful
    :meth:`close` (or leaving the ``with`` block normally); on error the temporary file is
    removed. Odd frame sizes are padded to even by edge replication. ``speed`` is the x264
    preset (ultrafast .. veryslow): faster presets make larger files at the same ``crf``.
    """

    def __init__(self, path: str | os.PathLike, fps: float, crf: int = 18, speed: str = "medium"):
        self.path = Path(path)
        if self.path.suffix.lower() not in WRITABLE_VIDEO_EXTENSIONS:
            exts = ", ".join(WRITABLE_VIDEO_EXTENSIONS)
            raise InputError(self.path, f"cannot write '{self.path.suffix}' video (use {exts})")
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf}")
        self.fps = float(fps)
        self.crf = int(crf)
        self.speed = speed
        self._rate = Fraction(self.fps).limit_denominator(1001)
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_write(self.path))
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._size: tuple[int, int] | None = None
        self._count = 0
        self._closed = False

    def _start(self, height: int, width: int) -> None:
        """Open the temporary container once the frame size is known."""
        mp4_like = self.path.suffix.lower() in (".mp4", ".m4v", ".mov")
        options = {"movflags": "+faststart"} if mp4_like else {}  # index first: streamable
        self._container = av.open(str(self._tmp), mode="w", options=options)
        stream = self._container.add_stream("libx264", rate=self._rate)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.speed}
        self._stream = stream
        self._size = (height, width)

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame ``(H, W, 3) uint8``; all frames must have the same size."""
        if self._closed:
            raise ValueError("VideoWriter is closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        if self._size is None:
            try:
                self._start(*frame.shape[:2])
            except OSError as err:
                self._fail(err)
        elif frame.shape[:2] != self._size:
            raise ValueError(f"frame {self._count} is {frame.shape[:2]}, expected {self._size}")
        assert self._container is not None and self._stream is not None
        av_frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(_even_pad(frame)), format="rgb24"
        )
        av_frame.pts = self._count
        av_frame.time_base = 1 / self._rate
        try:
            for packet in self._stream.encode(av_frame):
                self._container.mux(packet)
        except OSError as err:
            self._fail(err)
        self._count += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        """Append every frame of ``frames`` (an iterable of ``(H, W, 3)`` or a ``(T, H, W, 3)``)."""
        for frame in frames:
            self.write(frame)

    def close(self) -> None:
        """Flush the encoder and move the finished file onto ``path``."""
        if self._closed:
            return
        try:
            if self._container is None or self._stream is None:
                raise ValueError(f"{self.path}: no frames were written")
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except BaseException as err:
            self.abort(err)
            if is_write_error(err):
                raise OutputError(self.path, write_problem(err)) from err
            raise
        self._closed = True
        self._stack.close()

    def _fail(self, err: OSError) -> None:
        """Discard the temporary file and re-raise ``err`` (an OutputError when the disk is full,
        read-only or forbidden)."""
        self.abort(err)
        if is_write_error(err):
            raise OutputError(self.path, write_problem(err)) from err
        raise err

    def abort(self, err: BaseException | None = None) -> None:
        """Discard the temporary file; ``path`` is left untouched."""
        if self._closed:
            return
        self._closed = True
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
        err = err or RuntimeError("aborted")
        with contextlib.suppress(BaseException):
            self._stack.__exit__(type(err), err, err.__traceback__)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)


def write_video(
    path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, crf: int = 18
) -> Path:
    """Write ``frames`` (``(T, H, W, 3) uint8`` or an iterable of frames) to ``path``."""
    with VideoWriter(path, fps, crf) as writer:
        writer.write_all(frames)
    return Path(path)


def write_frames_png(
    folder: str | os.PathLike, frames: Iterable[np.ndarray], start_index: int = 0
) -> list[Path]:
    """Write frames as ``%05d.png`` in ``folder`` (created if needed), each atomically."""
    folder = make_dirs(folder)
    paths = []
    for offset, frame in enumerate(frames):
        path = folder / f"{start_index + offset:05d}.png"
        with atomic_write(path) as tmp:
            Image.fromarray(np.ascontiguousarray(frame)).save(tmp, format="PNG")
        paths.append(path)
    return paths
