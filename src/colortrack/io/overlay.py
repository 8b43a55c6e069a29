"""Visualisation: blend id masks onto frames and draw tracked points (RGB uint8 in and out)."""

from __future__ import annotations

import cv2
import numpy as np

from colortrack.io.masks import DAVIS_PALETTE


def mask_contours(ids: np.ndarray) -> np.ndarray:
    """``(H, W) bool``: non-background pixels with a 4-neighbour of another id (1 px inside)."""
    ids = np.asarray(ids)
    edge = np.zeros(ids.shape, bool)
    edge[1:, :] |= ids[1:, :] != ids[:-1, :]
    edge[:-1, :] |= ids[:-1, :] != ids[1:, :]
    edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    return edge & (ids != 0)


def overlay_masks(
    frame: np.ndarray, ids: np.ndarray, alpha: float = 0.5, palette: np.ndarray = DAVIS_PALETTE
) -> np.ndarray:
    """Blend ``palette`` ``(256, 3) uint8`` colours of ``ids`` ``(H, W) uint8`` onto ``frame``
    ``(H, W, 3) uint8``.

    Background (0) is left as is; each object gets a darker 1 px contour just inside its
    outline (2 px where two objects touch). Returns a new ``(H, W, 3) uint8`` frame.
    """
    frame = np.asarray(frame)
    ids = np.asarray(ids)
    if frame.shape[:2] != ids.shape or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame {frame.shape} and ids {ids.shape} do not match")
    ids = np.ascontiguousarray(ids, np.uint8)
    lut = np.asarray(palette, np.uint8).reshape(256, 1, 3)
    colors = cv2.LUT(cv2.merge([ids, ids, ids]), lut)  # 10x faster than indexing the palette
    blended = cv2.addWeighted(np.ascontiguousarray(frame, np.uint8), 1 - alpha, colors, alpha, 0.0)
    out = np.array(frame, np.uint8)
    np.copyto(out, blended, where=(ids != 0)[..., None])
    edge = mask_contours(ids)
    out[edge] = (colors[edge].astype(np.uint16) + 1) // 2
    return out


def point_color(index: int) -> tuple[int, int, int]:
    """A distinct RGB colour for point ``index`` (DAVIS palette, skipping black)."""
    return tuple(int(c) for c in DAVIS_PALETTE[1 + index % 254])


def draw_points(
    frame: np.ndarray,
    points: np.ndarray,
    visible: np.ndarray | None = None,
    edges: list[tuple[int, int]] | None = None,
    radius: int | None = None,
) -> np.ndarray:
    """Draw points ``(P, 2)`` xy (pixel centres) on a copy of ``frame`` ``(H, W, 3) uint8``.

    Points not ``visible`` ``(P,)`` (or not finite) are not drawn, nor are ``edges`` (pairs of
    point indices, e.g. a skeleton) touching them. Returns the new ``(H, W, 3) uint8`` frame.
    """
    out = np.ascontiguousarray(np.array(frame, dtype=np.uint8, copy=True))
    points = np.asarray(points, np.float64).reshape(-1, 2)
    shown = np.isfinite(points).all(axis=1)
    if visible is not None:
        shown &= np.asarray(visible, bool).reshape(-1)
    if radius is None:
        radius = max(2, round(min(out.shape[:2]) / 100))
    shift = 4  # sub-pixel precision: coordinates in 1/16 pixel
    fixed = np.where(shown[:, None], np.rint(points * (1 << shift)), 0).astype(np.int64)
    for i, j in edges or []:
        if shown[i] and shown[j]:
            p, q = (int(fixed[i, 0]), int(fixed[i, 1])), (int(fixed[j, 0]), int(fixed[j, 1]))
            cv2.line(out, p, q, (255, 255, 255), max(1, radius // 2), cv2.LINE_AA, shift)
    for k in np.flatnonzero(shown):
        centre = (int(fixed[k, 0]), int(fixed[k, 1]))
        cv2.circle(out, centre, radius << shift, point_color(int(k)), -1, cv2.LINE_AA, shift)
        cv2.circle(out, centre, radius << shift, (0, 0, 0), 1, cv2.LINE_AA, shift)
    return out
