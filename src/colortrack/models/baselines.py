"""Training-free reference methods: repeat the first frame, and optical flow warping."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

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

    def backward_flow(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """(gray target, gray previous) -> (H, W, 2) float32: where each target pixel was."""
        estimator = cv2.DISOpticalFlow_create(self.preset)
        return lambda gray, previous: estimator.calc(gray, previous, None)

    def track(self, frames: Iterable[np.ndarray], first_labels: np.ndarray, pinned: Pinned = ()) -> Iterator[np.ndarray]:
        flow_of = self.backward_flow()
        first, stream = split_first(frames)
        previous_gray = _gray(first)
        labels = first_labels.astype(np.float32, copy=False)
        yield labels
        for frame in stream:
            gray = _gray(frame)
            labels = warp(labels, flow_of(gray, previous_gray))
            previous_gray = gray
            yield labels


class FarnebackPropagator(FlowPropagator):
    """:class:`FlowPropagator` along OpenCV's Farneback flow: the classic coarse-to-fine method
    (a 5-level pyramid, each level refining the flow of the coarser one), as the "coarse-to-fine
    optical flow" baseline of Vondrick et al., Table 1."""

    def __init__(self, levels: int = 5, window: int = 15, iterations: int = 3):
        self.levels, self.window, self.iterations = levels, window, iterations

    def backward_flow(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        return lambda gray, previous: cv2.calcOpticalFlowFarneback(
            gray, previous, None, 0.5, self.levels, self.window, self.iterations, 5, 1.1, 0
        )


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
