"""The demo scene: photographs shipped with scikit-image composited into a video with exact ground truth.

A far layer (the DSCOVR launch photo) pans slowly and a near layer (the wooden table of the
coffee photo) pans fast in front of everything (parallax). Three photographic cut-outs with
binary alpha move between them: the astronaut Eileen Collins (an ellipse), a fundus photograph
(a disc: the "ball") and Chelsea the cat (an ellipse), far to near in that order. They turn,
scale, bend smoothly (a non-rigid warp), occlude each other, pass behind the table, and the ball
leaves the frame partly and comes back. Every photograph is public domain or CC0 (see
``ATTRIBUTION``). Nothing is random: the scene is a pure function of its size and length.

Each object is drawn by backward mapping: a frame pixel ``p`` is mapped to texture coordinates
``u`` with ``p = c + s R(a) (u + bend(u))`` (inverted by fixed-point iteration, the bend being a
contraction), its colour sampled bilinearly from the photograph (extended beyond the cut-out so
no outside colour bleeds in) and its alpha taken from the nearest texture pixel, so the object
mask is exactly the set of pixels that carry the object's colours. Keypoints are texture
corners mapped forward with the same map; a point is visible in a frame when its pixel and that
pixel's four neighbours belong to its object in the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage

from colortrack.defaults import DEMO_FRAMES, DEMO_HEIGHT
from colortrack.demo.synthetic import SyntheticVideo


def scene_size(height: int) -> tuple[int, int]:
    """(H, W) of 16:9 frames ``height`` pixels high (W even)."""
    return height, 2 * round(8 * height / 9)


SCENE_SIZE = scene_size(DEMO_HEIGHT)  # (H, W)
SCENE_FRAMES = DEMO_FRAMES
SCENE_FPS = 20.0
POINTS_PER_OBJECT = 5
BEND_ITERATIONS = 12
OBJECT_NAMES = ("astronaut", "ball", "cat")
ATTRIBUTION = (
    "Photographs shipped with scikit-image 0.26 (skimage.data): rocket (DSCOVR launch, SpaceX, public domain), "
    "coffee (Rachel Michetti, courtesy of Pikolo Espresso Bar, CC0), astronaut (Eileen Collins, NASA, public domain), "
    "retina (Mikael Häggström, CC0) and chelsea (Stefan van der Walt, CC0)."
)


@dataclass(frozen=True)
class ObjectPath:
    """Pose over normalised time ``s`` in [0, 1], in units of the frame (x by W, y by H).

    centre: ``start + (end - start) s + arc sin(pi s)``; angle (degrees): ``spin s + wobble
    sin(2 pi s)``; scale: ``1 + (scale_end - 1) s``; bend (pixels of texture) ``bend sin(2 pi s)``
    with wavelength ``bend_period`` texture pixels.
    """

    start: tuple[float, float]
    end: tuple[float, float]
    arc: tuple[float, float] = (0.0, 0.0)
    spin: float = 0.0
    wobble: float = 0.0
    scale_end: float = 1.0
    bend: float = 0.0
    bend_period: float = 120.0

    def center(self, s: float, size: tuple[int, int]) -> np.ndarray:
        frame = np.array([size[1], size[0]], np.float64)
        start, end, arc = (np.asarray(v) * frame for v in (self.start, self.end, self.arc))
        return start + (end - start) * s + arc * np.sin(np.pi * s)

    def rotation(self, s: float) -> np.ndarray:
        angle = np.deg2rad(self.spin * s + self.wobble * np.sin(2 * np.pi * s))
        return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def scale(self, s: float) -> float:
        return 1.0 + (self.scale_end - 1.0) * s

    def bend_offset(self, uv: np.ndarray, s: float) -> np.ndarray:
        """``(N, 2)`` displacement of texture coordinates ``uv (N, 2)``: x bends with y and y with x."""
        amp = self.bend * np.sin(2 * np.pi * s)
        phase = 2 * np.pi * uv / self.bend_period
        return amp * np.stack([np.sin(phase[:, 1]), np.sin(phase[:, 0])], axis=1)


@dataclass(frozen=True)
class Cutout:
    """A photograph cut out with a binary alpha, moving along ``path``.

    texture (h, w, 3) float32 RGB, extended past the cut-out by its nearest inside colour;
    alpha (h, w) bool. Texture coordinates are pixels relative to the texture's centre.
    """

    obj_id: int
    name: str
    texture: np.ndarray
    alpha: np.ndarray
    path: ObjectPath

    @property
    def origin(self) -> np.ndarray:
        h, w = self.alpha.shape
        return np.array([(w - 1) / 2, (h - 1) / 2])

    def forward(self, uv: np.ndarray, s: float, size: tuple[int, int]) -> np.ndarray:
        """Frame xy ``(N, 2)`` of texture coordinates ``uv (N, 2)`` at time ``s``."""
        bent = uv + self.path.bend_offset(uv, s)
        return self.path.center(s, size) + self.path.scale(s) * bent @ self.path.rotation(s).T

    def backward(self, xy: np.ndarray, s: float, size: tuple[int, int]) -> np.ndarray:
        """Texture coordinates ``(N, 2)`` of frame points ``xy (N, 2)`` (inverse of :meth:`forward`)."""
        straight = (xy - self.path.center(s, size)) @ self.path.rotation(s) / self.path.scale(s)
        uv = straight.copy()
        for _ in range(BEND_ITERATIONS):
            uv = straight - self.path.bend_offset(uv, s)
        return uv

    def box(self, s: float, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """``(y0, y1, x0, x1)`` frame pixels that may hold the object (exclusive ends), or None."""
        h, w = self.alpha.shape
        corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64) - self.origin
        xy = self.forward(corners, s, size)
        margin = self.path.scale(s) * abs(self.path.bend) + 2
        x0, y0 = np.floor(xy.min(axis=0) - margin).astype(int)
        x1, y1 = np.ceil(xy.max(axis=0) + margin).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size[1]), min(y1, size[0])
        return (y0, y1, x0, x1) if x0 < x1 and y0 < y1 else None

    def render(self, s: float, size: tuple[int, int]):
        """``(box, inside (h, w) bool, colours (h, w, 3) float32)`` over :meth:`box`, or None."""
        box = self.box(s, size)
        if box is None:
            return None
        y0, y1, x0, x1 = box
        ys, xs = np.mgrid[y0:y1, x0:x1]
        xy = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
        col_row = (self.backward(xy, s, size) + self.origin).reshape(y1 - y0, x1 - x0, 2).astype(np.float32)
        colors = cv2.remap(self.texture, col_row[..., 0], col_row[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        nearest = np.rint(col_row).astype(np.int64)
        h, w = self.alpha.shape
        inside = (nearest[..., 0] >= 0) & (nearest[..., 0] < w) & (nearest[..., 1] >= 0) & (nearest[..., 1] < h)
        inside[inside] = self.alpha[nearest[..., 1][inside], nearest[..., 0][inside]]
        return box, inside, colors


@dataclass(frozen=True)
class Layer:
    """A background photograph panning by ``velocity`` (frame widths per clip) from ``offset``;
    ``top`` (fractions of H at the left and right edges) is where the layer starts (0: everywhere)."""

    image: np.ndarray
    velocity: float
    top: tuple[float, float] = (0.0, 0.0)

    def render(self, s: float, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``(colours (H, W, 3) float32, covered (H, W) bool)`` at time ``s``."""
        height, width = size
        shift = self.velocity * width * s
        matrix = np.array([[1, 0, shift], [0, 1, 0]], np.float64)
        colors = cv2.warpAffine(self.image, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
        edge = height * np.linspace(self.top[0], self.top[1], width)
        covered = np.arange(height)[:, None] >= edge[None, :]
        return colors, covered


@dataclass
class Scene:
    """The demo scene and its ground truth: ``video`` (frames, masks (T, H, W) ids 1..3 in
    ``OBJECT_NAMES`` order, points (T, P, 2) xy, visible (T, P), point_ids (P,)), ``names`` (P,)
    of the points, the ``objects`` and the ``layers`` (far, near)."""

    video: SyntheticVideo
    names: tuple[str, ...]
    objects: list[Cutout]
    layers: list[Layer]


def _skimage_data():
    from skimage import data

    return data


def _resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    interpolation = cv2.INTER_AREA if width < image.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(image.astype(np.float32), (max(width, 1), max(height, 1)), interpolation=interpolation)


def _ellipse_alpha(height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    return ((xs - cx) / (width / 2)) ** 2 + ((ys - cy) / (height / 2)) ** 2 <= 1.0


def _extend(texture: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Fill the texture outside ``alpha`` with the nearest inside colour (no bleeding at the edge)."""
    _, (rows, cols) = ndimage.distance_transform_edt(~alpha, return_indices=True)
    return np.ascontiguousarray(texture[rows, cols])


def _cutout(obj_id: int, name: str, photo: np.ndarray, crop: tuple[int, int, int, int], alpha_of, height: int, path: ObjectPath) -> Cutout:
    """``crop`` (y0, y1, x0, x1) of ``photo`` resized to ``height`` pixels, alpha by ``alpha_of``."""
    y0, y1, x0, x1 = crop
    part = photo[y0:y1, x0:x1, :3]
    width = int(round(height * part.shape[1] / part.shape[0]))
    texture = _resized(part, width, height)
    alpha = alpha_of(texture)
    return Cutout(obj_id, name, _extend(texture, alpha), alpha, path)


def _fundus_alpha(texture: np.ndarray) -> np.ndarray:
    """The fundus disc: bright pixels, holes filled, the largest component, opened to a clean outline."""
    bright = texture.mean(axis=2) > 25
    labels, count = ndimage.label(bright)
    if count > 1:
        sizes = ndimage.sum(bright, labels, range(1, count + 1))
        bright = labels == 1 + int(np.argmax(sizes))
    return ndimage.binary_opening(ndimage.binary_fill_holes(bright), iterations=2)


@lru_cache(maxsize=4)
def _photos() -> dict[str, np.ndarray]:
    data = _skimage_data()
    return {name: getattr(data, name)() for name in ("rocket", "coffee", "astronaut", "retina", "chelsea")}


def make_objects(size: tuple[int, int] = SCENE_SIZE) -> list[Cutout]:
    """The three cut-outs, far to near, sized relative to the frame height."""
    photos = _photos()
    height = size[0]
    ellipse = lambda texture: _ellipse_alpha(*texture.shape[:2])  # noqa: E731
    return [
        _cutout(
            1, "astronaut", photos["astronaut"], (20, 380, 70, 330), ellipse, int(0.5 * height),
            ObjectPath(start=(0.27, 0.45), end=(0.6, 0.42), arc=(0.0, -0.05), wobble=6, scale_end=1.15, bend=4, bend_period=140),
        ),
        _cutout(
            2, "ball", photos["retina"], (0, 1411, 0, 1411), _fundus_alpha, int(0.3 * height),
            ObjectPath(start=(0.9, 0.22), end=(0.45, 0.8), arc=(0.28, -0.05), spin=-150, scale_end=0.9),
        ),
        _cutout(
            3, "cat", photos["chelsea"], (20, 290, 95, 410), ellipse, int(0.4 * height),
            ObjectPath(start=(0.72, 0.58), end=(0.2, 0.5), arc=(0.0, -0.08), wobble=-8, scale_end=0.9, bend=5, bend_period=110),
        ),
    ]


def make_layers(size: tuple[int, int] = SCENE_SIZE) -> list[Layer]:
    """Far (the launch photo, slow) and near (a wooden table from the coffee photo, fast) layers."""
    photos = _photos()
    height, width = size
    far_speed, near_speed = 0.06, 0.2
    rocket = photos["rocket"]
    far_width = int(np.ceil(width * (1 + far_speed))) + 2
    far_height = int(round(far_width * rocket.shape[0] / rocket.shape[1]))
    far = _resized(rocket, far_width, far_height)
    top = max((far_height - height) // 2, 0)
    far = np.ascontiguousarray(far[top : top + height])
    wood = np.ascontiguousarray(np.rot90(photos["coffee"][:, 495:, :3]))  # the table right of the saucer
    near_width = int(np.ceil(width * (1 + near_speed))) + 2
    near_height = int(round(near_width * wood.shape[0] / wood.shape[1]))
    near = np.zeros((height, near_width, 3), np.float32)
    band = _resized(wood, near_width, near_height)[: height // 3]
    near[height - len(band) :] = band
    return [Layer(far, far_speed), Layer(near, near_speed, top=(0.8, 0.74))]


def _keypoints(obj: Cutout, count: int) -> np.ndarray:
    """``(count, 2)`` texture coordinates of the strongest corners inside the cut-out, away from its edge."""
    gray = cv2.cvtColor(obj.texture.astype(np.float32), cv2.COLOR_RGB2GRAY)
    margin = max(3, int(0.12 * min(obj.alpha.shape)))
    allowed = ndimage.binary_erosion(obj.alpha, iterations=margin).astype(np.uint8)
    spacing = max(4.0, 0.15 * min(obj.alpha.shape))
    corners = cv2.goodFeaturesToTrack(gray, count, 0.01, spacing, mask=allowed, blockSize=5)
    xy = corners.reshape(-1, 2).astype(np.float64)
    return xy - obj.origin


def _visible(points: np.ndarray, masks_t: np.ndarray, obj_id: int) -> np.ndarray:
    """``(P,) bool``: the point's pixel and its 4-neighbours are in the frame and on the object."""
    height, width = masks_t.shape
    pixel = np.floor(points + 0.5).astype(np.int64)
    visible = np.ones(len(points), bool)
    for dx, dy in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
        x, y = pixel[:, 0] + dx, pixel[:, 1] + dy
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        visible &= inside
        visible[inside] &= masks_t[y[inside], x[inside]] == obj_id
    return visible


def render_scene(size: tuple[int, int] = SCENE_SIZE, num_frames: int = SCENE_FRAMES, fps: float = SCENE_FPS) -> Scene:
    """The scene at ``size`` (H, W) over ``num_frames`` frames (the same motion at any length)."""
    if num_frames < 2 or min(size) < 32:
        raise ValueError("the demo scene needs at least 2 frames of at least 32x32 pixels")
    objects, layers = make_objects(size), make_layers(size)
    frames = np.empty((num_frames, *size, 3), np.uint8)
    masks = np.zeros((num_frames, *size), np.uint8)
    times = np.linspace(0.0, 1.0, num_frames)
    for t, s in enumerate(times):
        canvas, _ = layers[0].render(s, size)
        for obj in objects:
            rendered = obj.render(s, size)
            if rendered is None:
                continue
            (y0, y1, x0, x1), inside, colors = rendered
            canvas[y0:y1, x0:x1][inside] = colors[inside]
            masks[t, y0:y1, x0:x1][inside] = obj.obj_id
        near, covered = layers[1].render(s, size)
        canvas[covered] = near[covered]
        masks[t][covered] = 0
        frames[t] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    texture_points = [_keypoints(obj, POINTS_PER_OBJECT) for obj in objects]
    points = np.stack(
        [np.concatenate([obj.forward(uv, s, size) for obj, uv in zip(objects, texture_points)]) for s in times]
    )
    point_ids = np.concatenate([np.full(len(uv), obj.obj_id, np.uint8) for obj, uv in zip(objects, texture_points)])
    visible = np.stack(
        [np.concatenate([_visible(points[t][point_ids == obj.obj_id], masks[t], obj.obj_id) for obj in objects]) for t in range(num_frames)]
    )
    names = tuple(f"{obj.name}-{k + 1}" for obj, uv in zip(objects, texture_points) for k in range(len(uv)))
    video = SyntheticVideo(frames, masks, points.astype(np.float32), visible, float(fps), point_ids)
    return Scene(video, names, objects, layers)
