"""Deterministic synthetic videos with exact ground truth, for tests and the demo (numpy only).

:func:`make_video` renders textured objects moving over a textured (optionally panning)
background, with id masks (nearer objects win) and tracked points with visibility.
:func:`translated_texture` renders a periodic block texture shifted by whole pixels per frame,
whose labels and points move exactly, for "exact propagation" tests.

Coordinates follow the pixel-centre convention: pixel ``(x, y)`` has its centre at ``x, y``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Visible points keep at least this many pixels away from nearer objects' outlines, so that
# rounding a point to its pixel never lands on an occluder.
OCCLUSION_MARGIN = 1.0
# Points are sampled within this fraction of their object's radius.
POINT_RADIUS = 0.7


@dataclass
class SyntheticVideo:
    """A synthetic clip and its ground truth.

    frames (T, H, W, 3) uint8 RGB; masks (T, H, W) uint8 ids (0 background, 1..K objects);
    points (T, P, 2) float32 xy in pixels; visible (T, P) bool; point_ids (P,) uint8 the
    object each point lies on; objects: the moving objects (empty for translated_texture).
    """

    frames: np.ndarray
    masks: np.ndarray
    points: np.ndarray
    visible: np.ndarray
    fps: float = 24.0
    point_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    objects: list[SyntheticObject] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class WaveTexture:
    """An RGB texture ``base + sum_k amp_k sin(fx_k x + fy_k y + phase_k)`` per channel.

    Parameter arrays are ``(3, K)`` (channel, wave). Evaluated exactly at any coordinates.
    """

    base: np.ndarray
    fx: np.ndarray
    fy: np.ndarray
    phase: np.ndarray
    amp: np.ndarray

    def render(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Texture on the grid ``ys (H,) x xs (W,)``, ``(H, W, 3) float32`` (unclipped).

        Uses sin(a + b) = sin a cos b + cos a sin b, so each channel is one matrix product.
        """
        ys, xs = np.asarray(ys, np.float64), np.asarray(xs, np.float64)
        arg_y = self.fy[:, None, :] * ys[None, :, None] + self.phase[:, None, :]  # (3, H, K)
        amp = self.amp[:, None, :]
        left = np.concatenate([amp * np.sin(arg_y), amp * np.cos(arg_y)], axis=2)  # (3, H, 2K)
        arg_x = self.fx[:, :, None] * xs[None, None, :]  # (3, K, W)
        right = np.concatenate([np.cos(arg_x), np.sin(arg_x)], axis=1)  # (3, 2K, W)
        out = np.matmul(left, right) + self.base[:, None, None]
        return out.transpose(1, 2, 0).astype(np.float32)


def _random_waves(
    rng: np.random.Generator, count: int, periods: tuple[float, float], amp: float
) -> tuple[np.ndarray, ...]:
    """``(fx, fy, phase, amp)`` each ``(3, count)``: random directions, periods in pixels."""
    theta = rng.uniform(0, 2 * np.pi, (3, count))
    freq = 2 * np.pi / rng.uniform(*periods, (3, count))
    phase = rng.uniform(0, 2 * np.pi, (3, count))
    amps = amp * rng.uniform(0.5, 1.0, (3, count))
    return freq * np.cos(theta), freq * np.sin(theta), phase, amps


def _texture(
    rng: np.random.Generator,
    base: np.ndarray,
    bands: list[tuple[int, tuple[float, float], float]],
) -> WaveTexture:
    """A WaveTexture summing several bands ``(count, (min_period, max_period), amplitude)``."""
    parts = [_random_waves(rng, *band) for band in bands]
    fx, fy, phase, amp = (np.concatenate([p[i] for p in parts], axis=1) for i in range(4))
    return WaveTexture(np.asarray(base, np.float64), fx, fy, phase, amp)


def _hue_color(hue: float, sat: float = 0.8, val: float = 0.85) -> np.ndarray:
    """RGB ``(3,)`` in 0..255 of an HSV colour (hue in [0, 1))."""
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    rgb = val - val * sat * np.clip(np.minimum(k, 4 - k), 0, 1)
    return 255 * rgb


@dataclass(frozen=True)
class SyntheticObject:
    """A textured ellipse or rectangle moving with constant velocity and linear scaling.

    Centre at time t: ``center0 + velocity * t`` (xy); scale ``1 + (scale_end - 1) t / (T-1)``.
    ``half_size`` = (a, b) semi-axes / half-widths in pixels at scale 1, along x and y.
    """

    obj_id: int
    shape: str
    half_size: tuple[float, float]
    center0: tuple[float, float]
    velocity: tuple[float, float]
    scale_end: float
    num_frames: int
    texture: WaveTexture

    def scale(self, t: float) -> float:
        """Scale factor at time ``t`` (1 at t=0)."""
        frac = t / (self.num_frames - 1) if self.num_frames > 1 else 0.0
        return 1.0 + (self.scale_end - 1.0) * frac

    def center(self, t: float) -> np.ndarray:
        """Centre ``(2,)`` xy at time ``t``."""
        return np.asarray(self.center0) + t * np.asarray(self.velocity)

    def move(self, points0: np.ndarray, t: float) -> np.ndarray:
        """Positions at time ``t`` of points ``(P, 2)`` xy given at time 0 (exact affine map)."""
        c0 = np.asarray(self.center0)
        return self.center(t) + self.scale(t) * (points0 - c0)

    def radius(self, dx: np.ndarray, dy: np.ndarray, t: float, margin: float = 0.0) -> np.ndarray:
        """Normalised shape radius (<= 1 inside) of offsets from the centre, in pixels.

        ``margin`` grows the shape by that many pixels (approximately for ellipses).
        """
        s = self.scale(t)
        a, b = self.half_size[0] * s + margin, self.half_size[1] * s + margin
        if self.shape == "ellipse":
            return np.sqrt((dx / a) ** 2 + (dy / b) ** 2)
        return np.maximum(np.abs(dx) / a, np.abs(dy) / b)

    def contains(self, xy: np.ndarray, t: float, margin: float = 0.0) -> np.ndarray:
        """Whether points ``(..., 2)`` xy are inside the (grown) shape at time ``t``."""
        d = np.asarray(xy, np.float64) - self.center(t)
        return self.radius(d[..., 0], d[..., 1], t, margin) <= 1.0

    def bbox(self, t: float, height: int, width: int) -> tuple[int, int, int, int] | None:
        """Integer pixel box ``(y0, y1, x0, x1)`` (exclusive ends) covering the shape, or None."""
        (cx, cy), s = self.center(t), self.scale(t)
        a, b = self.half_size[0] * s, self.half_size[1] * s
        x0, x1 = max(int(np.ceil(cx - a)), 0), min(int(np.floor(cx + a)) + 1, width)
        y0, y1 = max(int(np.ceil(cy - b)), 0), min(int(np.floor(cy + b)) + 1, height)
        return (y0, y1, x0, x1) if x0 < x1 and y0 < y1 else None

    def render(
        self, t: float, height: int, width: int
    ) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
        """``(box, inside (h, w) bool, colors (h, w, 3) float32)`` in the bbox, or None."""
        box = self.bbox(t, height, width)
        if box is None:
            return None
        y0, y1, x0, x1 = box
        (cx, cy), s = self.center(t), self.scale(t)
        dx, dy = np.arange(x0, x1) - cx, np.arange(y0, y1) - cy
        inside = self.radius(dx[None, :], dy[:, None], t) <= 1.0
        colors = self.texture.render(dy / s, dx / s)
        return box, inside, colors

    def silhouette(self, t: float, height: int, width: int) -> np.ndarray:
        """Full-frame ``(H, W) bool``: pixel centres inside the shape at time ``t``."""
        out = np.zeros((height, width), bool)
        rendered = self.render(t, height, width)
        if rendered is not None:
            (y0, y1, x0, x1), inside, _ = rendered
            out[y0:y1, x0:x1] = inside
        return out


def _make_objects(
    rng: np.random.Generator,
    num_objects: int,
    num_frames: int,
    height: int,
    width: int,
    scale_range: tuple[float, float],
    cross: bool,
) -> list[SyntheticObject]:
    """Random objects whose paths cross near the middle of the clip (when ``cross``)."""
    size = np.array([width, height], np.float64)
    meet = size * rng.uniform(0.45, 0.55, 2)
    hue0 = rng.uniform()
    objects = []
    for k in range(num_objects):
        half = np.maximum(rng.uniform(0.1, 0.2, 2) * min(height, width), 3.0)
        c0 = size * rng.uniform(0.25, 0.75, 2)
        if cross:
            end = 2 * (meet + rng.uniform(-0.6, 0.6, 2) * half) - c0
        else:
            end = size * rng.uniform(0.2, 0.8, 2)
        velocity = (end - c0) / max(num_frames - 1, 1)
        base = _hue_color((hue0 + k / max(num_objects, 1)) % 1.0)
        texture = _texture(rng, base, [(3, (5.0, 14.0), 22.0), (2, (2.5, 5.0), 10.0)])
        objects.append(
            SyntheticObject(
                obj_id=k + 1,
                shape=str(rng.choice(["ellipse", "rect"])),
                half_size=(float(half[0]), float(half[1])),
                center0=(float(c0[0]), float(c0[1])),
                velocity=(float(velocity[0]), float(velocity[1])),
                scale_end=float(rng.uniform(*scale_range)),
                num_frames=num_frames,
                texture=texture,
            )
        )
    return objects


def _sample_points(
    rng: np.random.Generator,
    obj: SyntheticObject,
    nearer: list[SyntheticObject],
    mask0: np.ndarray,
    count: int,
) -> np.ndarray:
    """``count`` xy points ``(count, 2)`` in ``obj``'s interior at t=0, visible if possible."""
    ys, xs = np.nonzero(mask0 == obj.obj_id)
    if len(xs) == 0:  # fully hidden at t=0: sample the shape's interior anyway
        ys, xs = np.nonzero(obj.silhouette(0, *mask0.shape))
    if len(xs) == 0:
        return np.repeat(obj.center(0)[None], count, axis=0)
    xy = np.stack([xs, ys], axis=1) + rng.uniform(-0.3, 0.3, (len(xs), 2))
    d = xy - obj.center(0)
    r = obj.radius(d[:, 0], d[:, 1], 0)
    interior = r <= POINT_RADIUS
    clear = interior.copy()
    for other in nearer:
        clear &= ~other.contains(xy, 0, OCCLUSION_MARGIN)
    pool = next(
        (p for p in (xy[clear], xy[interior]) if len(p) >= count), xy[np.argsort(r)[:count]]
    )
    pick = rng.choice(len(pool), size=count, replace=len(pool) < count)
    return pool[pick]


def pixel_of(points: np.ndarray) -> np.ndarray:
    """Centre of the pixel holding each xy point ``(..., 2)``: ``floor(p + 0.5)``."""
    return np.floor(np.asarray(points, np.float64) + 0.5)


def _point_visibility(
    points: np.ndarray,
    obj: SyntheticObject,
    nearer: list[SyntheticObject],
    t: int,
    height: int,
    width: int,
) -> np.ndarray:
    """``(P,) bool``: in frame, on the object's own shape, and clear of nearer objects."""
    x, y = points[:, 0], points[:, 1]
    vis = (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
    vis &= obj.contains(pixel_of(points), t)
    for other in nearer:
        vis &= ~other.contains(points, t, OCCLUSION_MARGIN)
    return vis


def make_video(
    num_frames: int = 24,
    height: int = 96,
    width: int = 128,
    num_objects: int = 2,
    seed: int = 0,
    scale_range: tuple[float, float] = (1.0, 1.0),
    pan: tuple[float, float] = (0.0, 0.0),
    points_per_object: int = 5,
    cross: bool = True,
    fps: float = 24.0,
) -> SyntheticVideo:
    """Textured objects over a textured background; deterministic in ``seed``.

    ``scale_range``: each object's scale at the last frame is drawn from it (1 at frame 0).
    ``pan``: background motion ``(dy, dx)`` in pixels per frame (sub-pixel allowed).
    ``cross``: objects' paths meet near the centre mid-clip, so they overlap and occlude.
    Object ids are 1..K; a higher id is nearer the camera (it wins where objects overlap).
    """
    if num_frames < 1 or height < 8 or width < 8 or num_objects < 0:
        raise ValueError("need num_frames >= 1, height and width >= 8, num_objects >= 0")
    rng = np.random.default_rng(seed)
    background = _texture(
        rng, rng.uniform(80, 175, 3), [(4, (24.0, 80.0), 30.0), (4, (5.0, 12.0), 14.0)]
    )
    objects = _make_objects(rng, num_objects, num_frames, height, width, scale_range, cross)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    masks = np.zeros((num_frames, height, width), np.uint8)
    ys, xs = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
    for t in range(num_frames):
        canvas = background.render(ys - pan[0] * t, xs - pan[1] * t)
        for obj in objects:  # far to near
            rendered = obj.render(t, height, width)
            if rendered is None:
                continue
            (y0, y1, x0, x1), inside, colors = rendered
            canvas[y0:y1, x0:x1][inside] = colors[inside]
            masks[t, y0:y1, x0:x1][inside] = obj.obj_id
        frames[t] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    points, visible, point_ids = _track_points(rng, objects, masks, points_per_object)
    return SyntheticVideo(frames, masks, points, visible, float(fps), point_ids, objects)


def _track_points(
    rng: np.random.Generator, objects: list[SyntheticObject], masks: np.ndarray, per_object: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample points on each object in ``masks[0]`` and move them over ``masks`` ``(T, H, W)``.

    Returns points ``(T, P, 2) float32``, visible ``(T, P) bool``, point_ids ``(P,) uint8``.
    """
    num_frames, height, width = masks.shape
    mask0 = masks[0]
    all_points, all_vis, ids = [], [], []
    for k, obj in enumerate(objects):
        nearer = objects[k + 1 :]
        p0 = _sample_points(rng, obj, nearer, mask0, per_object)
        track = np.stack([obj.move(p0, t) for t in range(num_frames)])
        vis = np.stack(
            [_point_visibility(track[t], obj, nearer, t, height, width) for t in range(num_frames)]
        )
        all_points.append(track)
        all_vis.append(vis)
        ids += [obj.obj_id] * per_object
    if not all_points:
        empty = np.zeros((num_frames, 0, 2), np.float32)
        return empty, np.zeros((num_frames, 0), bool), np.zeros(0, np.uint8)
    return (
        np.concatenate(all_points, axis=1).astype(np.float32),
        np.concatenate(all_vis, axis=1),
        np.asarray(ids, np.uint8),
    )


def block_texture(height: int, width: int, block: int = 8, seed: int = 0) -> np.ndarray:
    """Periodic texture ``(H, W, 3) uint8``: a random colour per ``block`` x ``block`` cell,
    smoothed slightly (3x3 box blur with wrap-around, so it stays periodic)."""
    rng = np.random.default_rng(seed)
    cells = rng.uniform(20, 235, (-(-height // block), -(-width // block), 3))
    tex = np.repeat(np.repeat(cells, block, axis=0), block, axis=1)[:height, :width]
    blurred = sum(np.roll(tex, (dy, dx), axis=(0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def translated_texture(
    num_frames: int = 8,
    height: int = 64,
    width: int = 64,
    shift: tuple[int, int] = (0, 8),
    seed: int = 0,
    block: int = 8,
    num_points: int = 4,
    fps: float = 24.0,
) -> SyntheticVideo:
    """The whole frame a periodic block texture rolled by ``shift`` = (dy, dx) pixels per frame.

    Object 1 is a block-aligned square (half the frame side) that moves (wraps) with the
    texture. With ``height``, ``width`` and ``shift`` multiples of ``block``, 8x8 feature
    cells move exactly. Points lie in the square and are always visible (coordinates wrap).
    """
    dy, dx = int(shift[0]), int(shift[1])
    tex = block_texture(height, width, block, seed)
    side_y = max(block, (height // 2) // block * block)
    side_x = max(block, (width // 2) // block * block)
    top, left = (height // 4) // block * block, (width // 4) // block * block
    mask0 = np.zeros((height, width), np.uint8)
    mask0[top : top + side_y, left : left + side_x] = 1
    frames = np.stack([np.roll(tex, (t * dy, t * dx), axis=(0, 1)) for t in range(num_frames)])
    masks = np.stack([np.roll(mask0, (t * dy, t * dx), axis=(0, 1)) for t in range(num_frames)])
    rng = np.random.default_rng(seed + 1)
    xs = rng.integers(left + 1, left + side_x - 1, num_points)
    ys = rng.integers(top + 1, top + side_y - 1, num_points)
    p0 = np.stack([xs, ys], axis=1).astype(np.float64)
    steps = np.arange(num_frames)[:, None, None] * np.array([dx, dy], np.float64)
    points = np.mod(p0[None] + steps, np.array([width, height], np.float64)).astype(np.float32)
    visible = np.ones((num_frames, num_points), bool)
    return SyntheticVideo(frames, masks, points, visible, float(fps), np.ones(num_points, np.uint8))
