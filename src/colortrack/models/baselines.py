"""Training-free reference methods: repeat the first frame, and optical flow warping."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from colortrack.core.tracker import Pinned, split_first


class IdentityPropagator:
    """Predicts the first frame's labels for every frame (``pinned`` frames are not used)."""

    def track(self, frames: Iterable[np.ndarray], first_labels: np.ndarray, pinned: Pinned = ()) -> Iterator[np.ndarray]:
        _, rest = split_first(frames)
        labels = first_labels.astype(np.float32, copy=False)
        yield labels
        for _ in rest:
            yield labels


class FlowPropagator:
    """Warps soft labels frame to frame along backward DIS optical flow (target -> previous).
    Only adjacent frames are compared, so ``pinned`` frames are not used."""

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM):
        self.preset = preset

    def track(self, frames: Iterable[np.ndarray], first_labels: np.ndarray, pinned: Pinned = ()) -> Iterator[np.ndarray]:
        flow_estimator = cv2.DISOpticalFlow_create(self.preset)
        first, stream = split_first(frames)
        previous_gray = _gray(first)
        labels = first_labels.astype(np.float32, copy=False)
        yield labels
        for frame in stream:
            gray = _gray(frame)
            flow = flow_estimator.calc(gray, previous_gray, None)  # (H, W, 2): where each pixel was
            labels = warp(labels, flow)
            previous_gray = gray
            yield labels


def warp(labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """labels: (L, H, W) of the previous frame; flow: (H, W, 2) backward displacement in pixels.
    Returns (L, H, W): labels sampled at each pixel's previous position (bilinear, border clamp)."""
    _, height, width = labels.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    grid_x = (xs + flow[..., 0]) * 2.0 / max(width - 1, 1) - 1.0
    grid_y = (ys + flow[..., 1]) * 2.0 / max(height - 1, 1) - 1.0
    grid = torch.from_numpy(np.stack([grid_x, grid_y], axis=-1))[None]
    warped = F.grid_sample(torch.from_numpy(labels)[None], grid, align_corners=True, padding_mode="border")
    return warped[0].numpy()


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
