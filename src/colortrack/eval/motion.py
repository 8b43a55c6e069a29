"""How much of an object's own motion a propagator carries, measured on the demo scene.

Pixel coordinates travel as labels through the propagator's one affinity (or flow): each pixel of a
reference frame carries its own x and y, each as a two-label distribution (``u, 1 - u`` with ``u``
the coordinate over the frame's side), so that every propagator treats them as it treats masks and
points. What a target pixel receives is the mean position it draws from in the reference: a
backward map (target -> reference) with sub-cell precision.

The scene's motion is known exactly (:class:`colortrack.demo.scene.Cutout`), so the map is compared
with the truth on every pixel of each object that is in view in both frames. The object's own motion
(turning, scaling, bending) is what is left after its centre's displacement; ``carried`` is the
median over the object's pixels of the share of it that the propagator reproduces (1: all of it,
0: the object is carried as if it only translated; only meaningful for a propagator that carries
the translation, which ``error`` tells). A point is decoded from labels moved by the same affinity,
so a propagator that carries a third of a turn leaves its points lagging two thirds of it each frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from colortrack.core.tracker import Propagator
from colortrack.demo.scene import Cutout, Scene


@dataclass(frozen=True)
class CarriedMotion:
    """One object's one-step measure over the frame pairs (t - gap, t) of a scene.

    carried: median share of the object's own motion (relative to its centre) that the propagator
    reproduces, over its pixels that move at least half the mean; own_motion: mean length of that
    motion in native pixels; error: median distance in native pixels between the carried and the
    true source of the object's pixels; pixels: how many (pixel, pair) samples there are."""

    name: str
    gap: int
    carried: float
    own_motion: float
    error: float
    pixels: int

    def to_dict(self) -> dict:
        return asdict(self)


def coordinate_labels(height: int, width: int) -> np.ndarray:
    """(4, H, W) float32: x then y of every pixel centre, each as a two-label distribution
    ``(u, 1 - u)`` over the frame's side, scaled by 1/2 so that the four channels sum to 1."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = (xs + 0.5) / width, (ys + 0.5) / height
    return (np.stack([u, 1.0 - u, v, 1.0 - v]) / 2.0).astype(np.float32)


def carried_positions(propagator: Propagator, reference: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(2, H, W) float64: the reference xy (pixel centres) that each pixel of ``target`` draws its
    labels from. reference, target: RGB (H, W, 3) uint8 of one size."""
    height, width = reference.shape[:2]
    labels = list(propagator.track(iter([reference, target]), coordinate_labels(height, width)))[1].astype(np.float64)
    u = labels[0] / np.maximum(labels[0] + labels[1], 1e-12)
    v = labels[2] / np.maximum(labels[2] + labels[3], 1e-12)
    return np.stack([u * width - 0.5, v * height - 0.5])


def carried_motion(propagator: Propagator, scene: Scene, gap: int = 1, step: int = 1) -> list[CarriedMotion]:
    """The measure of every object of ``scene`` over the pairs (t - gap, t), t = gap, gap + step, ..."""
    video = scene.video
    pairs = range(gap, video.num_frames, step)
    sources = {t: carried_positions(propagator, video.frames[t - gap], video.frames[t]) for t in pairs}
    results = []
    for obj in scene.objects:
        samples = [_samples(scene, obj, t, gap, sources[t]) for t in pairs]
        true_own, got_own, errors = (np.concatenate(parts) for parts in zip(*samples))
        results.append(_summary(obj.name, gap, true_own, got_own, errors))
    return results


def _samples(scene: Scene, obj: Cutout, t: int, gap: int, carried: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The object's pixels of frame t whose true source in frame t - gap shows the object too:
    their true and carried own motions (N, 2) and the distances (N,) between the carried and the
    true source. carried: (2, H, W) from :func:`carried_positions`."""
    video = scene.video
    size = video.frames[0].shape[:2]
    now, before = (index / (video.num_frames - 1) for index in (t, t - gap))  # the scene's times
    rows, cols = np.nonzero(video.masks[t] == obj.obj_id)
    xy = np.stack([cols, rows], axis=1).astype(np.float64)
    source = obj.forward(obj.backward(xy, now, size), before, size)
    pixel = np.rint(source).astype(np.int64)
    inside = (pixel >= 0).all(axis=1) & (pixel[:, 0] < size[1]) & (pixel[:, 1] < size[0])
    seen = np.zeros(len(xy), bool)
    seen[inside] = video.masks[t - gap][pixel[inside, 1], pixel[inside, 0]] == obj.obj_id
    got = carried[:, rows[seen], cols[seen]].T
    shift = obj.path.center(now, size) - obj.path.center(before, size)
    return xy[seen] - source[seen] - shift, xy[seen] - got - shift, np.linalg.norm(got - source[seen], axis=1)


def _summary(name: str, gap: int, true_own: np.ndarray, got_own: np.ndarray, errors: np.ndarray) -> CarriedMotion:
    """true_own, got_own: (N, 2) own motions; errors: (N,) distances."""
    length = np.linalg.norm(true_own, axis=1)
    moving = length > 0.5 * length.mean() if len(length) else length > 0
    if not moving.any():
        return CarriedMotion(name, gap, float("nan"), float("nan"), float("nan"), 0)
    share = (got_own[moving] * true_own[moving]).sum(axis=1) / length[moving] ** 2
    carried, own = float(np.median(share)), float(length.mean())
    return CarriedMotion(name, gap, carried, own, float(np.median(errors)), int(len(errors)))


__all__ = ["CarriedMotion", "carried_motion", "carried_positions", "coordinate_labels"]
