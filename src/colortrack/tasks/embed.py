"""``colortrack embed``: a video of an embedder's features, PCA-projected to RGB beside the frames.

Two passes over the video, constant memory in its length:

1. every frame is embedded and a random sample of its feature cells is kept; one PCA to 3
   components is fitted on the pooled samples of all frames, with per-component robust bounds
   (the ``low`` and ``high`` percentiles of the sampled projections);
2. every frame is embedded again, each cell projected with that one PCA, scaled to [0, 1] by
   the fixed bounds (so one embedding gets one colour in every frame: colours are stable over
   time), upsampled to the frame size and written next to the frame, H.264.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from colortrack.errors import InputError
from colortrack.models.registry import SHIPPED_MODEL, is_packaged, load_model


@dataclass(frozen=True)
class PCAProjection:
    """``rgb = clip((x - mean) @ components.T - low) / (high - low), 0, 1)`` per cell."""

    mean: np.ndarray  # (C,)
    components: np.ndarray  # (3, C), rows orthonormal
    low: np.ndarray  # (3,)
    high: np.ndarray  # (3,)

    @classmethod
    def fit(cls, samples: np.ndarray, low: float = 1.0, high: float = 99.0) -> PCAProjection:
        """samples: (N, C) embeddings. Fewer than 3 channels are padded with zero components.
        Each component's sign is fixed (largest-magnitude loading positive): deterministic."""
        samples = np.asarray(samples, np.float64)
        if samples.ndim != 2 or len(samples) < 2:
            raise ValueError(f"need (N >= 2, C) samples, got {samples.shape}")
        mean = samples.mean(axis=0)
        _, _, vt = np.linalg.svd(samples - mean, full_matrices=False)
        components = np.zeros((3, samples.shape[1]))
        k = min(3, len(vt))
        components[:k] = vt[:k]
        for row in components:
            pivot = np.argmax(np.abs(row))
            if row[pivot] < 0:
                row *= -1
        projected = (samples - mean) @ components.T
        lo, hi = np.percentile(projected, low, axis=0), np.percentile(projected, high, axis=0)
        hi = np.where(hi - lo > 1e-12, hi, lo + 1.0)  # a flat component maps to 0
        return cls(mean, components, lo, hi)

    def project(self, embedding: np.ndarray) -> np.ndarray:
        """embedding: (C, h, w). Returns (h, w, 3) uint8 RGB."""
        c, h, w = embedding.shape
        cells = np.asarray(embedding, np.float64).reshape(c, -1).T
        scaled = ((cells - self.mean) @ self.components.T - self.low) / (self.high - self.low)
        return np.rint(np.clip(scaled, 0, 1) * 255).astype(np.uint8).reshape(h, w, 3)


def make_embedder(spec: str, device: torch.device):
    """``model`` (the shipped weights), ``color`` (Lab patches), ``gray`` (luminance patches) or a
    checkpoint (file or run folder)."""
    if spec == "color":
        from colortrack.models.embedders.color import LabPatchEmbedder

        return LabPatchEmbedder()
    if spec == "gray":
        from colortrack.models.embedders.gray import LuminancePatchEmbedder

        return LuminancePatchEmbedder()
    if not is_packaged(spec) and not Path(spec).exists():
        raise InputError("--method", f"unknown method '{spec}': choose model, image-colorization, color, gray or a checkpoint path")
    return load_model(spec, device)


def side_by_side(frame: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """frame (H, W, 3) and cell colours (h, w, 3) -> (H, 2W, 3): the colours upsampled (nearest
    cell: the feature grid stays visible) to the right of the frame."""
    height, width = frame.shape[:2]
    big = cv2.resize(colors, (width, height), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([frame, big], axis=1)


def embedding_tracker(method: str = SHIPPED_MODEL, short_side: int | None = None, device: torch.device | None = None):
    """The :class:`colortrack.core.tracker.LabelTracker` whose ``embed`` gives a frame's feature cells
    (the model's embedding: without the first stage's fine features)."""
    from colortrack.core.tracker import PRESETS, LabelTracker, pick_device

    if short_side is not None and short_side < 1:
        raise InputError("--short-side", f"must be positive, got {short_side}")
    device = device or pick_device()
    return LabelTracker(make_embedder(method, device), replace(PRESETS["default"], short_side=short_side, fine_weight=0.0), device)


def fit_projection(tracker, frames: Iterable[np.ndarray], per_frame: int, seed: int = 0) -> PCAProjection:
    """Pass 1: the PCA of ``per_frame`` random feature cells of every frame (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    samples = []
    with torch.no_grad():
        for frame in frames:
            cells = tracker.embed(frame).float().cpu().numpy()
            flat = cells.reshape(cells.shape[0], -1).T
            pick = rng.choice(len(flat), size=min(per_frame, len(flat)), replace=False)
            samples.append(flat[pick])
    return PCAProjection.fit(np.concatenate(samples))


def project_frames(tracker, projection: PCAProjection, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Pass 2: each frame (H, W, 3) with its PCA colours to its right, (H, 2W, 3) uint8."""
    with torch.no_grad():
        for frame in frames:
            yield side_by_side(frame, projection.project(tracker.embed(frame).float().cpu().numpy()))


def embed_video(
    video: str | os.PathLike,
    out: str | os.PathLike,
    method: str = SHIPPED_MODEL,
    short_side: int | None = None,
    samples_per_frame: int = 512,
    max_samples: int = 100_000,
    device: torch.device | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[int, PCAProjection]:
    """Write ``out`` (H.264, frames | PCA colours); returns (frames written, the projection)."""
    from tqdm import tqdm

    from colortrack.io.video import VideoReader, VideoWriter

    tracker = embedding_tracker(method, short_side, device)
    reader = VideoReader(video)
    info = reader.info
    per_frame = max(1, min(samples_per_frame, max_samples // max(info.num_frames, 1)))
    fitting = tqdm(reader, total=info.num_frames, desc="fit PCA", unit="frame", disable=not progress)
    projection = fit_projection(tracker, fitting, per_frame, seed)
    count = 0
    with VideoWriter(out, info.fps) as writer:
        rendering = tqdm(reader, total=info.num_frames, desc="render", unit="frame", disable=not progress)
        for frame in project_frames(tracker, projection, rendering):
            writer.write(frame)
            count += 1
    return count, projection
