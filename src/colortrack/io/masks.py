"""Object-id masks: read any DAVIS-style mask PNG, write palette PNGs, map ids <-> channels.

An id mask is ``(H, W) uint8``: 0 is background, 1..254 are objects, 255 (``VOID_ID``) is
"void": unknown, ignored by evaluation and carrying no label when tracking.

Grey masks (modes L, LA, 1) hold either a matte or ids, told apart by their values:

* only 0 and 255: a DAVIS-2016 matte, 255 is object 1;
* any value in 128..254: an anti-aliased matte, values >= 128 are object 1, the rest background;
* otherwise (values 0..127, and 255): object ids, 255 is void (a palette mask saved as grey).

So a grey mask cannot hold ids above 127 (save those as palette PNGs). The masks of one sequence
(:func:`read_masks`) share one reading: when any of them holds ids, a 0/255 one is void, not
object 1; ids in one file and an anti-aliased matte in another is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write
from colortrack.io.errors import PIL_ERRORS, one_line

VOID_ID = 255


def make_davis_palette() -> np.ndarray:
    """The 256-colour PASCAL VOC / DAVIS palette, ``(256, 3) uint8``.

    Bits 0, 1, 2 of the index go to the highest bit of R, G, B; bits 3, 4, 5 to the next
    bit down, and so on.
    """
    index = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.int64)
    for level in range(8):
        for channel in range(3):
            bit = (index >> (3 * level + channel)) & 1
            palette[:, channel] |= bit << (7 - level)
    return palette.astype(np.uint8)


DAVIS_PALETTE: np.ndarray = make_davis_palette()
DAVIS_PALETTE.setflags(write=False)


def _rgb_codes(rgb: np.ndarray) -> np.ndarray:
    """Pack ``(..., 3) uint8`` colours into ``(...) int64`` codes ``r<<16 | g<<8 | b``."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


_PALETTE_CODES = _rgb_codes(DAVIS_PALETTE)
_PALETTE_ORDER = np.argsort(_PALETTE_CODES)
_SORTED_CODES = _PALETTE_CODES[_PALETTE_ORDER]


def rgb_to_ids(rgb: np.ndarray, path: str | os.PathLike = "<mask>") -> np.ndarray:
    """Map an RGB mask ``(H, W, 3) uint8`` to palette indices ``(H, W) uint8``.

    InputError(path, ...) naming the first colour that is not in DAVIS_PALETTE.
    """
    codes = _rgb_codes(rgb)
    pos = np.clip(np.searchsorted(_SORTED_CODES, codes), 0, 255)
    found = _SORTED_CODES[pos] == codes
    if not found.all():
        y, x = np.argwhere(~found)[0]
        r, g, b = (int(v) for v in rgb[y, x])
        raise InputError(path, f"color ({r},{g},{b}) at x={x}, y={y} is not in the DAVIS palette")
    return _PALETTE_ORDER[pos].astype(np.uint8)


GREY_READINGS = ("auto", "matte", "ids")
_MATTE_LEVEL = 128


def grey_kind(grey: np.ndarray) -> str:
    """What a grey mask ``(H, W) uint8`` looks like: ``binary`` (only 0 and 255), ``matte``
    (a value in 128..254: anti-aliased) or ``ids`` (see the module docstring)."""
    present = np.flatnonzero(np.bincount(grey.ravel(), minlength=256))
    between = present[(present > 0) & (present < VOID_ID)]
    if between.size == 0:
        return "binary"
    return "matte" if between.max() >= _MATTE_LEVEL else "ids"


def grey_to_ids(grey: np.ndarray, reading: str = "auto") -> np.ndarray:
    """Object ids ``(H, W) uint8`` of a grey mask read as a ``matte`` (>= 128 is object 1), as
    ``ids`` (255 void) or, with ``auto``, as its :func:`grey_kind` says (binary is a matte)."""
    if reading not in GREY_READINGS:
        raise ValueError(f"reading must be one of {GREY_READINGS}, not {reading!r}")
    if reading == "auto":
        reading = "ids" if grey_kind(grey) == "ids" else "matte"
    if reading == "matte":
        return (grey >= _MATTE_LEVEL).astype(np.uint8)
    return grey.astype(np.uint8)


def _wide_to_ids(values: np.ndarray, path: Path) -> np.ndarray:
    """Modes I, I;16, F: values are ids, which must be whole numbers in 0..255."""
    if values.size and (values.min() < 0 or values.max() > 255):
        lo, hi = values.min(), values.max()
        raise InputError(path, f"mask ids above 255 or negative (range {lo}..{hi})")
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        raise InputError(path, "mask has non-integer values")
    return values.astype(np.uint8)


def _image_to_ids(im: Image.Image, path: Path) -> tuple[np.ndarray, bool]:
    """A loaded PIL image of any supported mode as ``(H, W) uint8`` ids, or grey levels still to
    be read (:func:`grey_to_ids`); the flag says which."""
    mode = im.mode
    if mode in ("P", "PA"):
        return (np.asarray(im)[..., 0] if mode == "PA" else np.asarray(im, dtype=np.uint8)), False
    if mode == "1":
        return np.asarray(im.convert("L")), True
    if mode in ("L", "LA"):
        grey = np.asarray(im)
        return (grey[..., 0] if mode == "LA" else grey), True
    return _colour_to_ids(im, path), False


def _colour_to_ids(im: Image.Image, path: Path) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return rgb_to_ids(np.asarray(im), path)
    if mode == "RGBA":  # as annotation tools export: fully transparent pixels are background
        rgba = np.asarray(im)
        return rgb_to_ids(np.where(rgba[..., 3:] == 0, 0, rgba[..., :3]).astype(np.uint8), path)
    if mode in ("I", "F") or mode.startswith("I;"):
        return _wide_to_ids(np.asarray(im), path)
    raise InputError(path, f"unsupported mask image mode '{mode}'")


def read_mask(path: str | os.PathLike, size: tuple[int, int] | None = None, grey: str = "auto") -> np.ndarray:
    """Read a mask image as object ids ``(H, W) uint8`` (0 background, 255 void).

    Accepts palette PNGs (index = id), grey masks (mattes or ids, see the module docstring;
    ``grey`` = ``matte`` or ``ids`` overrides the rule), grey+alpha (first channel), RGB in
    DAVIS palette colours, RGBA the same with fully transparent pixels as background, and
    16/32-bit ids <= 255. ``size`` = expected ``(H, W)``; a mismatch
    is an InputError.
    """
    values, is_grey = _load(Path(path), size)
    return grey_to_ids(values, grey) if is_grey else values


def read_masks(paths: Sequence[str | os.PathLike], size: tuple[int, int] | None = None) -> np.ndarray:
    """The masks of one sequence as ids ``(T, H, W) uint8``, grey ones all read the same way (see
    the module docstring); InputError when one holds ids and another an anti-aliased matte."""
    loaded = [_load(Path(path), size) for path in paths]
    kinds = {Path(path): grey_kind(values) for path, (values, is_grey) in zip(paths, loaded) if is_grey}
    with_ids = [path for path, kind in kinds.items() if kind == "ids"]
    mattes = [path for path, kind in kinds.items() if kind == "matte"]
    if with_ids and mattes:
        raise InputError(mattes[0], f"anti-aliased grey matte, but {with_ids[0].name} holds object ids")
    reading = "ids" if with_ids else "matte"
    return np.stack([grey_to_ids(values, reading) if is_grey else values for values, is_grey in loaded])


def _load(path: Path, size: tuple[int, int] | None) -> tuple[np.ndarray, bool]:
    """A mask file's ids, or its grey levels (flag True); InputError if unreadable or not ``size``."""
    if not path.is_file():
        raise InputError(path, "no such mask file")
    try:
        with Image.open(path) as im:
            im.load()
            values, is_grey = _image_to_ids(im, path)
    except PIL_ERRORS as err:
        raise InputError(path, f"corrupt or unreadable mask ({one_line(err)})") from err
    if size is not None and values.shape != tuple(size):
        raise InputError(
            path, f"mask is {values.shape[1]}x{values.shape[0]}, expected {size[1]}x{size[0]}"
        )
    return np.ascontiguousarray(values), is_grey


def write_mask(path: str | os.PathLike, ids: np.ndarray) -> Path:
    """Write ids ``(H, W)`` (values 0..255) as a palette PNG with DAVIS_PALETTE, atomically."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"ids must be (H, W), got shape {ids.shape}")
    if ids.dtype != np.uint8:
        if ids.dtype.kind not in "iub" or (ids.size and (ids.min() < 0 or ids.max() > 255)):
            raise ValueError(f"ids must be integers in 0..255, got {ids.dtype}")
        ids = ids.astype(np.uint8)
    with atomic_write(path) as tmp:
        mask_image(ids).save(tmp, format="PNG", compress_level=1)  # 2x faster than the default 6, ~2x larger
    return Path(path)


def mask_image(ids: np.ndarray) -> Image.Image:
    """ids ``(H, W) uint8`` as a palette image with DAVIS_PALETTE (index = id)."""
    im = Image.fromarray(np.ascontiguousarray(ids))
    im.putpalette(DAVIS_PALETTE.tobytes())
    return im


@dataclass(frozen=True)
class LabelMap:
    """Channel <-> object id map fixed by the first-frame mask.

    ``ids[c]`` is the object id of channel ``c``; channel 0 is always background (id 0).
    Void pixels (255) are unknown: all their channels are 0 in one-hot encodings, so they give no
    weight to any label when tracking.
    """

    ids: tuple[int, ...]

    def __post_init__(self) -> None:
        ids = tuple(int(i) for i in self.ids)
        if not ids or ids[0] != 0 or len(set(ids)) != len(ids):
            raise ValueError(f"ids must start with 0 and be unique, got {ids}")
        if any(not 0 < i < VOID_ID for i in ids[1:]):
            raise ValueError(f"object ids must be in 1..254, got {ids}")
        object.__setattr__(self, "ids", ids)

    @classmethod
    def from_mask(cls, ids_mask: np.ndarray) -> LabelMap:
        """Channels ``[0] + sorted object ids present`` in ``ids_mask`` ``(H, W)``."""
        present = np.unique(np.asarray(ids_mask))
        objects = [int(i) for i in present if i not in (0, VOID_ID)]
        return cls((0, *objects))

    @classmethod
    def from_masks(cls, ids_masks: Iterable[np.ndarray]) -> LabelMap:
        """Channels ``[0] + sorted object ids present`` in any of ``ids_masks`` (each (H, W))."""
        present = set().union(*(cls.from_mask(mask).object_ids for mask in ids_masks))
        return cls((0, *sorted(present)))

    @property
    def num_channels(self) -> int:
        """Number of channels L (background included)."""
        return len(self.ids)

    @property
    def object_ids(self) -> tuple[int, ...]:
        """The object ids, without background."""
        return self.ids[1:]

    def _lookup(self) -> np.ndarray:
        """``(256,) int64`` id -> channel, -1 for ids unknown to the map; void -> 0."""
        lut = np.full(256, -1, dtype=np.int64)
        lut[list(self.ids)] = np.arange(self.num_channels)
        lut[VOID_ID] = 0
        return lut

    def unknown_ids(self, ids_mask: np.ndarray) -> list[int]:
        """Ids in ``ids_mask`` that are neither in the map nor void."""
        present = np.unique(np.asarray(ids_mask))
        lut = self._lookup()
        return [int(i) for i in present if not 0 <= int(i) <= 255 or lut[int(i)] < 0]

    def check(self, ids_mask: np.ndarray, path: str | os.PathLike = "<mask>") -> None:
        """InputError(path, ...) if ``ids_mask`` holds ids not in the map (void is fine)."""
        unknown = self.unknown_ids(ids_mask)
        if unknown:
            known = ", ".join(str(i) for i in self.object_ids) or "none"
            problem = f"object ids {unknown} not in the first-frame mask (known: {known})"
            raise InputError(path, problem)

    def to_channels(self, ids_mask: np.ndarray) -> np.ndarray:
        """Channel index of every pixel, ``(H, W) int64``; void -> 0. ValueError if unknown."""
        ids_mask = np.asarray(ids_mask)
        unknown = self.unknown_ids(ids_mask)
        if unknown:
            raise ValueError(f"ids {unknown} are not in the label map {self.ids}")
        return self._lookup()[ids_mask.astype(np.int64)]

    def to_onehot(self, ids_mask: np.ndarray) -> np.ndarray:
        """One-hot ``(L, H, W) float32`` of ``ids_mask`` ``(H, W)``; void pixels are 0 in every
        channel."""
        channels = self.to_channels(ids_mask)
        onehot = np.arange(self.num_channels)[:, None, None] == channels[None]
        onehot &= np.asarray(ids_mask) != VOID_ID
        return onehot.astype(np.float32)

    def to_ids(self, channel_map: np.ndarray) -> np.ndarray:
        """Object ids ``(H, W) uint8`` of a channel index map ``(H, W) int``."""
        channel_map = np.asarray(channel_map)
        if channel_map.size and (channel_map.min() < 0 or channel_map.max() >= self.num_channels):
            raise ValueError(f"channel indices must be in 0..{self.num_channels - 1}")
        return np.asarray(self.ids, dtype=np.uint8)[channel_map]

