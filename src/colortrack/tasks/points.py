"""Keypoints through any propagator: each point becomes a soft label channel, decoded back to xy.

Points travel through the same engine as masks (:class:`colortrack.core.tracker.Propagator`). Frame 0
is encoded as one Gaussian map per point plus a background channel, so that the channels form a
distribution at every pixel (all point maps are scaled by one factor if they sum to more than 1
anywhere; the background is what is left).

The Gaussian is sized in feature cells, the grid on which a tracker carries labels: ``sigma_cells``
(half a cell) times the cell's side in native pixels (:func:`feature_cell`: the native size over the
embedder's grid, which depends on the input size and stride, so 4 native pixels at 240p and 18 at
1080p for the shipped model's 240-pixel short side). Sized in native pixels instead, a point would be
smaller than the cell it is averaged into at high resolutions, and the round trip through the grid
would move it and wash its mass out. It is never less than ``sigma_fraction`` of the frame's shorter
side (1/120: half a cell of that 240 grid), so that a finer grid (``--short-side 480``) does not
shrink it in the image: spread over a few more cells as it travels, a smaller point would lose most
of its mass from its window and be read as occluded. A propagator without cells (flow, identity)
gets ``DEFAULT_SIGMA`` native pixels. Each propagated frame is decoded point by point:

* location: the mean position of the pixels within ``window`` sigmas of the map's maximum
  (a window symmetric about it, cut short by the frame's borders), weighted by how much they
  exceed ``peak_fraction`` of that maximum (sub-pixel, at native resolution);
* confidence: the mass of the map in that window divided by the mass the point had in frame 0.
  The peak *value* is not used because it depends on how a propagator resamples labels: averaging
  a half-cell Gaussian into cells and back lowers its peak to 0.36-0.67 with perfect tracking,
  depending on where the point falls in its cell, while the mass under the peak is kept. About 1
  while the point's map stays whole, it falls as the map fades or spreads out;
* a point whose confidence is below ``lost_below``, or has dropped below ``fade_below`` of its
  recent level (occlusion, leaving the frame: :class:`FadeDetector`), is reported lost: ``visible``
  False and NaN coordinates, never a made-up position. Its map keeps travelling, and the first
  frame stays in a tracker's context, so it is reported again once its mass comes back.

Coordinates follow the pixel-centre convention of :mod:`colortrack.demo.synthetic`: pixel (x, y) has
its centre at x, y, so a frame of width W covers x in [-0.5, W - 0.5].
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from colortrack.core.tracker import Propagator, split_first
from colortrack.errors import InputError
from colortrack.tasks.keyframes import propagate_keyframes

DEFAULT_SIGMA = 4.0  # native pixels, for propagators without feature cells


@dataclass(frozen=True)
class Keypoints:
    """Named points of one frame. xy: (P, 2) float32 pixel-centre xy; edges: pairs of point indices."""

    names: tuple[str, ...]
    xy: np.ndarray
    edges: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "xy", np.asarray(self.xy, np.float32).reshape(-1, 2))
        object.__setattr__(self, "edges", tuple((int(i), int(j)) for i, j in self.edges))
        if len(self.names) != len(self.xy):
            raise ValueError(f"{len(self.names)} names for {len(self.xy)} points")
        for i, j in self.edges:
            if not (0 <= i < len(self.names) and 0 <= j < len(self.names)):
                raise ValueError(f"edge ({i}, {j}) refers to a point that does not exist")

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class KeypointTrack:
    """Points through a video. xy (T, P, 2) float32 (NaN where lost), confidence (T, P) float32,
    visible (T, P) bool."""

    names: tuple[str, ...]
    xy: np.ndarray
    confidence: np.ndarray
    visible: np.ndarray
    edges: tuple[tuple[int, int], ...] = ()

    @property
    def num_frames(self) -> int:
        return int(self.xy.shape[0])

    def to_json(self) -> list[list[dict]]:
        """One list per frame of ``{name, x, y, confidence, visible}``; x and y are None where lost."""
        frames = []
        for xy, confidence, visible in zip(self.xy, self.confidence, self.visible):
            frames.append(
                [
                    {
                        "name": name,
                        "x": float(point[0]) if shown else None,
                        "y": float(point[1]) if shown else None,
                        "confidence": round(float(score), 4),
                        "visible": bool(shown),
                    }
                    for name, point, score, shown in zip(self.names, xy, confidence, visible)
                ]
            )
        return frames


@dataclass(frozen=True)
class PointFrame:
    """Decoded points of one frame: xy (P, 2) (NaN where lost), confidence (P,), visible (P,)."""

    xy: np.ndarray
    confidence: np.ndarray
    visible: np.ndarray


@dataclass(frozen=True)
class PointConfig:
    """How points are encoded into label maps and decoded back.

    sigma: Gaussian standard deviation in native pixels; None: ``sigma_cells`` feature cells, at
    least ``sigma_fraction`` of the frame's shorter side (see :func:`point_sigma`). peak_fraction:
    pixels above this fraction of a map's maximum take part in its location. window: half-size, in
    sigmas, of the square around the maximum used for the location and the confidence. lost_below:
    confidence under which a point is reported lost. fade_below, fade_memory: a point is also lost
    while its confidence is under ``fade_below`` times its highest over its last ``fade_memory``
    visible frames (see :class:`FadeDetector`; 0 turns this off).
    """

    sigma: float | None = None
    sigma_cells: float = 0.5
    sigma_fraction: float = 1 / 120
    peak_fraction: float = 0.1
    window: float = 3.0
    lost_below: float = 0.01
    fade_below: float = 0.2
    fade_memory: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


class FadeDetector:
    """Tells a point whose evidence has faded from one that is only followed loosely.

    Soft attention spreads a point's map as it goes, so confidence drifts down on real video
    (the shipped model: median 0.3-0.6 on the JHMDB and BADJA bear clips) and no single threshold
    separates a point followed loosely from one that is gone. What marks occlusion or leaving the
    frame is a *drop*: the map loses most of its mass within a few frames, while a point covered
    by another surface, or out of view, is otherwise dragged along with it. A point is lost while
    its confidence is under ``fade_below`` times the highest it had over its last ``memory``
    visible frames (frame 0, which is exact by construction, does not count); that level is
    frozen while the point is lost, so it is found again when its first-frame map, kept in the
    context, brings its mass back.

    The default 0.2 reports no joint of the JHMDB sample clip lost with ``model-v1``; a trained
    checkpoint may carry its own (``point_defaults`` in its ``checkpoint.json``: the shipped model's
    is 0.1, set by the same rule, :func:`colortrack.models.registry.model_point_config`); a point covered by an occluder
    or gone out of view drops lower (tests/test_keypoints.py). 0.4 flags such points a frame or two
    sooner but also many points in view on real video (docs/benchmarks.md, BADJA); neither tells
    an animal's far legs hidden behind its body, which look like the near ones.
    """

    def __init__(self, num_points: int, fade_below: float, memory: int):
        self.fade_below = fade_below
        self._history = [deque(maxlen=max(memory, 1)) for _ in range(num_points)]

    def not_faded(self, confidence: np.ndarray) -> np.ndarray:
        """(P,) bool: which points keep enough of their recent confidence (P,)."""
        level = np.array([max(history, default=0.0) for history in self._history], np.float32)
        return confidence >= self.fade_below * level

    def remember(self, confidence: np.ndarray, visible: np.ndarray) -> None:
        for k in np.flatnonzero(visible):
            self._history[k].append(float(confidence[k]))


def feature_cell(propagator: Propagator, native_size: tuple[int, int]) -> float | None:
    """Side in native pixels of the cells a propagator carries labels on, for frames of
    ``native_size`` (H, W) (the geometric mean of the two axes, which rounding to the stride
    makes differ slightly); None for a propagator without cells."""
    stride = getattr(getattr(propagator, "embedder", None), "stride", None)
    if not stride or not hasattr(propagator, "input_size"):
        return None
    rows, columns = (side / stride for side in propagator.input_size(native_size))
    return math.sqrt(native_size[0] / rows * native_size[1] / columns)


def point_sigma(propagator: Propagator, native_size: tuple[int, int], config: PointConfig = PointConfig()) -> float:
    """The Gaussian of each point in native pixels: ``config.sigma`` when given, else
    ``config.sigma_cells`` feature cells but at least ``config.sigma_fraction`` of the shorter side
    of ``native_size`` (H, W), else (no cells) DEFAULT_SIGMA."""
    if config.sigma:
        return float(config.sigma)
    cell = feature_cell(propagator, native_size)
    if cell is None:
        return DEFAULT_SIGMA
    return max(config.sigma_cells * cell, config.sigma_fraction * min(native_size))


def point_maps(xy: np.ndarray, height: int, width: int, sigma: float) -> np.ndarray:
    """Label maps (P + 1, H, W) float32 of points xy (P, 2): one Gaussian per point, then the
    background channel 1 - sum.

    Where points are closer than a few sigmas their Gaussians would sum to more than 1; all point
    maps are then scaled by the same factor (peak of the sum = 1) instead of pixel by pixel, so that
    every map keeps its shape and its centre (propagation and decoding are linear in the maps)."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    gx = np.exp(-0.5 * ((xs[None, :] - xy[:, :1]) / sigma) ** 2)  # (P, W)
    gy = np.exp(-0.5 * ((ys[None, :] - xy[:, 1:]) / sigma) ** 2)  # (P, H)
    points = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)
    points /= max(1.0, float(points.sum(axis=0).max(initial=0.0)))
    background = np.clip(1.0 - points.sum(axis=0), 0.0, 1.0)
    return np.concatenate([points, background[None]], axis=0)


def decode_maps(
    maps: np.ndarray, sigma: float, config: PointConfig = PointConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel locations (P, 2) and window masses (P,) of point maps (P, H, W) (background excluded).

    Each point is sought in the window (``window`` sigmas each side) that holds the most of its
    map, not at the map's highest pixel: when an ambiguous match tears a map in two, the bulk wins
    over a stray spike elsewhere. Within that window, the highest pixel centres the location window."""
    num_points, height, width = maps.shape
    half = max(1, int(math.ceil(config.window * sigma)))
    xy = np.full((num_points, 2), np.nan, np.float32)
    mass = np.zeros(num_points, np.float32)
    for k in range(num_points):
        positive = np.clip(maps[k], 0.0, None).astype(np.float32)
        window_mass = cv2.boxFilter(positive, -1, (2 * half + 1, 2 * half + 1), normalize=False, borderType=cv2.BORDER_CONSTANT)
        py, px = _peak_in_window(positive, window_mass, half)
        mass[k] = float(window_mass[py, px])
        if not mass[k] > 0.0:
            continue
        xy[k] = _centroid(positive, py, px, half, config.peak_fraction)
    return xy, mass


def _peak_in_window(map_: np.ndarray, window_mass: np.ndarray, half: int) -> tuple[int, int]:
    """(row, column) of the highest pixel of ``map_`` within the window of most mass."""
    height, width = map_.shape
    cy, cx = np.unravel_index(int(window_mass.argmax()), window_mass.shape)
    y0, x0 = max(int(cy) - half, 0), max(int(cx) - half, 0)
    patch = map_[y0 : min(int(cy) + half + 1, height), x0 : min(int(cx) + half + 1, width)]
    py, px = np.unravel_index(int(patch.argmax()), patch.shape)
    return y0 + int(py), x0 + int(px)


def _centroid(map_: np.ndarray, py: int, px: int, half: int, peak_fraction: float) -> tuple[float, float]:
    """xy of the mean of ``map_`` (H, W) about (px, py), weighted by how much it exceeds
    ``peak_fraction`` of its maximum there. The window is symmetric about (px, py), so that a frame
    border does not pull the point inwards (it shrinks to that row / column on the border)."""
    height, width = map_.shape
    hy, hx = min(half, py, height - 1 - py), min(half, px, width - 1 - px)
    y0, x0 = py - hy, px - hx
    patch = map_[y0 : py + hy + 1, x0 : px + hx + 1].astype(np.float64)
    peak = patch.max()
    weights = np.clip(patch - peak_fraction * peak, 0.0, None)
    total = weights.sum()
    if total <= 0.0:  # a flat plateau: every pixel is the maximum
        weights = (patch >= peak).astype(np.float64)
        total = float(weights.sum())
    x = x0 + float((weights.sum(axis=0) * np.arange(patch.shape[1])).sum() / total)
    y = y0 + float((weights.sum(axis=1) * np.arange(patch.shape[0])).sum() / total)
    return x, y


def iter_points(
    propagator: Propagator,
    frames: Iterable[np.ndarray],
    keypoints: Keypoints,
    config: PointConfig = PointConfig(),
) -> Iterator[PointFrame]:
    """Decoded points for every frame, streamed (frame 0 gives the annotated points back).

    frames: RGB (H, W, 3) uint8. Points must lie in the first frame; one label map per point is
    held at a time besides what the propagator keeps.
    """
    first, stream = split_first(frames)
    height, width = first.shape[:2]
    sigma = point_sigma(propagator, (height, width), config)
    first_maps = point_maps(keypoints.xy, height, width, sigma)
    _, reference = decode_maps(first_maps[:-1], sigma, config)
    reference = np.maximum(reference, 1e-12)

    def replay() -> Iterator[np.ndarray]:
        yield first
        yield from stream

    fading = FadeDetector(len(keypoints), config.fade_below, config.fade_memory)
    for index, maps in enumerate(propagator.track(replay(), first_maps)):
        yield _given(keypoints) if index == 0 else _decoded(maps, reference, sigma, config, fading)


def iter_keyframe_points(
    propagator: Propagator,
    frames: Sequence[np.ndarray],
    keyframes: Mapping[int, Keypoints],
    config: PointConfig = PointConfig(),
) -> Iterator[PointFrame]:
    """Decoded points for every frame from points given on several keyframes, through
    :func:`colortrack.tasks.keyframes.propagate_keyframes` (frames between two keyframes from
    both). frames: RGB (H, W, 3) uint8 of the whole video, by index; keyframes: ``{frame index:
    Keypoints}``, the same names in each. A keyframe gives its points back; confidences are
    relative to the masses of the earliest keyframe's maps."""
    height, width = frames[0].shape[:2]
    sigma = point_sigma(propagator, (height, width), config)
    first = keyframes[min(keyframes)]
    for index, points in keyframes.items():
        if points.names != first.names:
            raise InputError(f"points of frame {index}", f"name other points than frame {min(keyframes)}'s: {', '.join(first.names)}")
    maps = {index: point_maps(points.xy, height, width, sigma) for index, points in keyframes.items()}
    reference = np.maximum(decode_maps(maps[min(keyframes)][:-1], sigma, config)[1], 1e-12)
    fading = FadeDetector(len(first), config.fade_below, config.fade_memory)
    for index, predicted in enumerate(propagate_keyframes(propagator, frames, maps)):
        yield _given(keyframes[index]) if index in keyframes else _decoded(predicted, reference, sigma, config, fading)


def _given(keypoints: Keypoints) -> PointFrame:
    count = len(keypoints)
    return PointFrame(keypoints.xy.copy(), np.ones(count, np.float32), np.ones(count, bool))


def _decoded(
    maps: np.ndarray, reference: np.ndarray, sigma: float, config: PointConfig, fading: FadeDetector
) -> PointFrame:
    """maps: (P + 1, H, W) propagated point maps; reference: (P,) masses of the annotated maps."""
    xy, mass = decode_maps(maps[: len(reference)], sigma, config)
    confidence = (mass / reference).astype(np.float32)
    visible = (confidence >= config.lost_below) & np.isfinite(xy).all(axis=1) & fading.not_faded(confidence)
    fading.remember(confidence, visible)
    xy[~visible] = np.nan
    return PointFrame(xy, confidence, visible)


def propagate_points(
    propagator: Propagator,
    frames: Iterable[np.ndarray],
    keypoints: Keypoints,
    config: PointConfig = PointConfig(),
) -> KeypointTrack:
    """Track ``keypoints`` (given on the first of ``frames``) through every frame."""
    decoded = list(iter_points(propagator, frames, keypoints, config))
    return collect(keypoints, decoded)


def collect(keypoints: Keypoints, decoded: Sequence[PointFrame]) -> KeypointTrack:
    """Stack per-frame decoded points into a KeypointTrack."""
    num_points = len(keypoints)
    if not decoded:
        empty = np.zeros((0, num_points), np.float32)
        return KeypointTrack(keypoints.names, np.zeros((0, num_points, 2), np.float32), empty, empty.astype(bool), keypoints.edges)
    return KeypointTrack(
        names=keypoints.names,
        xy=np.stack([frame.xy for frame in decoded]).astype(np.float32),
        confidence=np.stack([frame.confidence for frame in decoded]).astype(np.float32),
        visible=np.stack([frame.visible for frame in decoded]),
        edges=keypoints.edges,
    )


def clamp_to_frame(keypoints: Keypoints, height: int, width: int) -> tuple[Keypoints, np.ndarray]:
    """Points moved onto the nearest pixel centre inside the frame, and which ones moved (P,)."""
    low = np.zeros(2, np.float32)
    high = np.array([width - 1, height - 1], np.float32)
    clamped = np.clip(keypoints.xy, low, high)
    moved = (clamped != keypoints.xy).any(axis=1)
    return Keypoints(keypoints.names, clamped, keypoints.edges), moved


__all__ = [
    "DEFAULT_SIGMA",
    "FadeDetector",
    "KeypointTrack",
    "Keypoints",
    "PointConfig",
    "PointFrame",
    "clamp_to_frame",
    "collect",
    "decode_maps",
    "feature_cell",
    "iter_keyframe_points",
    "iter_points",
    "point_maps",
    "point_sigma",
    "propagate_points",
]
