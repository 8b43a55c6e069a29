"""The library's front door: :class:`Tracker` and :class:`Colorizer`, with the command line's defaults.

    import colortrack
    tracker = colortrack.Tracker.pretrained()                         # the shipped model, its preset
    masks = colortrack.collect_masks(tracker.track_masks("video.mp4", "first.png"))   # (T, H, W) ids

    colorizer = colortrack.Colorizer.pretrained()                     # refined, as `colortrack colorize`
    frames = colortrack.collect_colors(colorizer.colorize("gray.mp4", {0: "frame0.png"}))

Videos are a path (file or folder of frames), a ``(T, H, W, 3)`` uint8 array or any iterable of
RGB frames (read once, in one pass); results stream frame by frame at the video's native size.
The command line is a thin layer on these classes, so both give the same results for the same
inputs. Problems the user can fix raise :class:`colortrack.errors.InputError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from colortrack.defaults import (
    DEFAULT_COLORIZE_METHOD,
    DEFAULT_METHOD,
    REFINE_BY_DEFAULT,
    SHIPPED_MODEL,
    SHIPPED_REFINER,
    default_preset,
)
from colortrack.errors import InputError
from colortrack.io.sources import PathLike, open_frames, read_ids

POINT_OVERRIDES = ("sigma", "lost_below", "fade_below")
COLORIZE_OVERRIDES = ("temperature", "topk", "radius", "recent", "short_side")


@dataclass(frozen=True)
class PointFrame:
    """The points of one frame: index (0-based frame number), names (P,), xy (P, 2) float32
    pixel-centre coordinates at native size (NaN where lost), confidence (P,) float32 (about 1
    while a point's map stays whole), visible (P,) bool (False: lost)."""

    index: int
    names: tuple[str, ...]
    xy: np.ndarray
    confidence: np.ndarray
    visible: np.ndarray


@dataclass(frozen=True)
class ColorFrame:
    """One colourized frame: index (0-based frame number), rgb (H, W, 3) uint8 at native size."""

    index: int
    rgb: np.ndarray


class Tracker:
    """Propagates object masks or points from an annotated frame through a video.

    ``propagator`` does the work; ``config`` (:class:`colortrack.core.tracker.TrackConfig`) and
    ``points`` (:class:`colortrack.tasks.points.PointConfig`) are the settings; ``settings()``
    is what the command line records in ``config.json``.
    """

    def __init__(self, propagator, config, points, method: str, preset: str):
        self.propagator = propagator
        self.config = config
        self.points = points
        self.method = method
        self.preset = preset

    @classmethod
    def pretrained(
        cls, name: str = DEFAULT_METHOD, device: str = "auto", preset: str | None = None, **overrides
    ) -> Tracker:
        """name: ``model`` (the shipped weights), ``color``, ``flow``, ``identity`` or a checkpoint
        path; preset: ``default``, ``color`` or ``paper`` (None: the method's tuned one); device:
        ``auto`` (CUDA when present), ``cpu``, ``cuda:1``, ... overrides: the ``colortrack track``
        options, None meaning not given: temperature, topk (0: all), radius (0: global), recent,
        first_frame ("keep"/"drop"), anchors ("global"/"window"), short_side (0: native), precision, flip (True/False), extra_short_sides
        (test-time fusion), fine_weight (0: a model's embedding alone), embed_dims (0: every direction), sigma,
        lost_below, fade_below."""
        from colortrack.core.tracker import pick_device
        from colortrack.models.registry import make_propagator, model_point_config, track_config

        name = str(name)
        preset = preset or default_preset(name)
        points = {key: overrides.pop(key) for key in POINT_OVERRIDES if key in overrides}
        config = track_config(preset, name, **overrides)
        propagator = make_propagator(name, config, pick_device(device))
        return cls(propagator, config, point_config(**points, base=model_point_config(name)), name, preset)

    def for_points(self) -> Tracker:
        """This tracker as it tracks points (:meth:`colortrack.core.tracker.TrackConfig.for_points`:
        every direction of the embedding); itself where that changes nothing."""
        from colortrack.core.tracker import LabelTracker

        config = self.config.for_points()
        if config == self.config or not isinstance(self.propagator, LabelTracker):
            return self
        propagator = LabelTracker(self.propagator.embedder, config, self.propagator.device)
        return Tracker(propagator, config, self.points, self.method, self.preset)

    def settings(self) -> dict:
        """The method, preset and tracking configuration (JSON-ready)."""
        return {"method": self.method, "preset": self.preset, "track": self.config.to_dict()}

    def track_masks(self, video: PathLike | np.ndarray | Iterable[np.ndarray], mask) -> Iterator:
        """Object masks of every frame, streamed as :class:`colortrack.tasks.masks.MaskFrame`
        (index, mask (H, W) uint8 ids, probabilities (L, H, W), confidence (H, W)).

        mask: the first frame's object ids, a mask PNG (palette ids or 0/255 grey) or an (H, W)
        integer array (0 background, 255 void); or ``{frame index: mask}`` of one or more keyframes
        (frames between two are predicted from both, see :mod:`colortrack.tasks.keyframes`; the
        video is then held in memory)."""
        from colortrack.tasks.masks import iter_mask_frames

        _, frames, size = open_frames(video)
        keyframes = mask if isinstance(mask, Mapping) else {0: mask}
        ids = {_frame_index(index, "mask"): read_ids(ids, _name(ids, f"mask@{index}"), size) for index, ids in keyframes.items()}
        return iter_mask_frames(self.propagator, frames, ids)

    def track_points(self, video: PathLike | np.ndarray | Iterable[np.ndarray], points) -> Iterator[PointFrame]:
        """Points of every frame, streamed as :class:`PointFrame`. points (on the first frame): a
        file (JSON, CSV ``name,x,y`` or JHMDB ``joint_positions.mat``), a
        :class:`colortrack.tasks.points.Keypoints`, ``{name: (x, y)}`` or a (P, 2) xy array; or a
        ``{frame index: points}`` of one or more keyframes with the same names (the video is then
        held in memory, see :func:`colortrack.tasks.points.iter_keyframe_points`)."""
        from colortrack.io.keypoints import check_inside
        from colortrack.tasks.points import iter_keyframe_points, iter_points

        _, frames, size = open_frames(video)
        keyed = isinstance(points, Mapping) and points and all(isinstance(key, (int, np.integer)) for key in points)
        given = points if keyed else {0: points}
        keyframes = {_frame_index(index, "points"): read_keypoints(value) for index, value in given.items()}
        for index, value in given.items():
            check_inside(keyframes[index], *size, _name(value, f"points@{index}"))
        propagator = self.for_points().propagator
        if list(keyframes) == [0]:
            decoded = iter_points(propagator, frames, keyframes[0], self.points)
        else:
            frames = list(frames)
            if max(keyframes) >= len(frames):
                raise InputError(f"points@{max(keyframes)}", f"frame index out of range: the video has frames 0..{len(frames) - 1}")
            decoded = iter_keyframe_points(propagator, frames, dict(sorted(keyframes.items())), self.points)
        names = keyframes[min(keyframes)].names
        return (PointFrame(t, names, p.xy, p.confidence, p.visible) for t, p in enumerate(decoded))


class Colorizer:
    """Colourizes a (grayscale or colour) video from colour reference frames.

    ``engine`` (:class:`colortrack.tasks.colorize.Colorizer`) does the work with its ``config``;
    ``settings()`` is what ``colortrack colorize`` records next to its output.
    """

    def __init__(self, engine, embedder: str, refiner: str | None):
        self.engine = engine
        self.embedder = embedder
        self.refiner = refiner

    @property
    def config(self):
        return self.engine.config

    @classmethod
    def pretrained(
        cls,
        name: str = SHIPPED_MODEL,
        method: str = DEFAULT_COLORIZE_METHOD,
        refine: bool = REFINE_BY_DEFAULT,
        refiner: str = SHIPPED_REFINER,
        device: str = "auto",
        **overrides,
    ) -> Colorizer:
        """name: the embedder, ``model`` (the shipped weights), ``gray`` (training-free) or a
        checkpoint path; method: ``propagate``, ``reference`` or ``spatiotemporal``; refine: refine
        the warped colours with ``refiner`` (the shipped weights, a train-refiner run or weights
        file). overrides: the ``colortrack colorize`` options, None meaning not given: temperature,
        topk (0: all), radius (0: global), recent, short_side (0: native)."""
        from colortrack.core.tracker import pick_device
        from colortrack.models.refiner import load_refiner
        from colortrack.tasks.colorize import Colorizer as Engine
        from colortrack.tasks.colorize import colorize_config, make_embedder

        name = str(name)
        unknown = sorted(set(overrides) - set(COLORIZE_OVERRIDES))
        if unknown:
            raise InputError(unknown[0], f"unknown colorization setting: choose {', '.join(COLORIZE_OVERRIDES)}")
        config = colorize_config(method, name, **overrides)
        torch_device = pick_device(device)
        refiner = str(refiner) if refine else None
        loaded = None if refiner is None else load_refiner(refiner, torch_device)
        engine = Engine(make_embedder(name, torch_device), config, torch_device, loaded)
        return cls(engine, name, refiner)

    def settings(self) -> dict:
        """The embedder, refiner and colourization configuration (JSON-ready)."""
        return {"embedder": self.embedder, "refiner": self.refiner, "colorize": self.config.to_dict()}

    def colorize(
        self, video: PathLike | np.ndarray | Iterable[np.ndarray], refs, instances=None, progress: bool = False
    ) -> Iterator[ColorFrame]:
        """Colourized frames, streamed as :class:`ColorFrame`; every frame keeps its own lightness.

        refs: ``{frame index: colour image}``, one image (of frame 0) or a list of
        ``IMAGE[@FRAME]`` strings; images are paths or (H, W, 3) uint8 arrays of the video's size.
        instances: optional object ids that colours stay within: ``MASK[@FRAME]``, an (H, W) array
        (of frame 0), ``(frame index, mask)`` or ``{frame index: mask}``."""
        from colortrack.tasks.colorize import load_instances, load_references

        source, frames, size = open_frames(video)
        references = load_references(refs, size, source.num_frames)
        instance = load_instances(instances, size, source.num_frames)
        colorized = self.engine.colorize(frames, references, instance, progress)
        return (ColorFrame(index, rgb) for index, rgb in enumerate(colorized))


def point_config(sigma: float | None = None, lost_below: float | None = None, fade_below: float | None = None, base=None):
    """Point encoding and decoding: ``base`` (default :class:`colortrack.tasks.points.PointConfig`)
    with overrides (None: not given; sigma None: sized per video in feature cells, see
    :func:`colortrack.tasks.points.point_sigma`)."""
    from dataclasses import replace

    from colortrack.tasks.points import PointConfig

    config = base or PointConfig()
    if sigma is not None and not sigma > 0:
        raise InputError("--sigma", f"must be positive, got {sigma}")
    lost_below = config.lost_below if lost_below is None else lost_below
    fade_below = config.fade_below if fade_below is None else fade_below
    return replace(config, sigma=sigma, lost_below=lost_below, fade_below=fade_below)


def read_keypoints(points):
    """A points file, a Keypoints, ``{name: (x, y)}`` or a (P, 2) xy array -> Keypoints."""
    from colortrack.tasks.points import Keypoints

    if isinstance(points, Keypoints):
        return points
    if isinstance(points, (str, os.PathLike)):
        from colortrack.io.keypoints import read_points

        return read_points(points)
    if isinstance(points, Mapping):
        names, xy = [str(name) for name in points], list(points.values())
    else:
        xy = points
        names = [str(index) for index in range(len(np.asarray(points).reshape(-1, 2)))]
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or not len(xy) or not np.isfinite(xy).all():
        raise InputError("points", f"expected finite (P, 2) xy coordinates with P > 0, got shape {xy.shape}")
    return Keypoints(tuple(names), xy)


def collect_masks(frames: Iterable) -> np.ndarray:
    """(T, H, W) uint8 ids of streamed :class:`colortrack.tasks.masks.MaskFrame`."""
    return np.stack([frame.mask for frame in frames])


def collect_points(frames: Iterable[PointFrame]):
    """A :class:`colortrack.tasks.points.KeypointTrack` (xy (T, P, 2), confidence, visible) of
    streamed :class:`PointFrame`."""
    from colortrack.tasks.points import KeypointTrack

    frames = list(frames)
    if not frames:
        raise InputError("points", "no frames to collect")
    return KeypointTrack(
        names=frames[0].names,
        xy=np.stack([frame.xy for frame in frames]).astype(np.float32),
        confidence=np.stack([frame.confidence for frame in frames]).astype(np.float32),
        visible=np.stack([frame.visible for frame in frames]),
    )


def collect_colors(frames: Iterable[ColorFrame]) -> np.ndarray:
    """(T, H, W, 3) uint8 of streamed :class:`ColorFrame`."""
    return np.stack([frame.rgb for frame in frames])


def _frame_index(index, name: str) -> int:
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
        raise InputError(name, f"frame indices must be whole numbers >= 0, got {index!r}")
    return int(index)


def _name(value, default: str) -> str:
    return str(value) if isinstance(value, (str, os.PathLike)) else default
