"""Training data of the refiner: our own warping of unlabelled colour video, computed once.

Each segment of ``segment_frames`` consecutive cached frames (see :mod:`colortrack.train.data`)
is coloured from its first frame (the reference) by one of our methods; the warped ab and the
confidence of every frame, on the feature grid, go to ``RUN_DIR/warps/<segment>.npz`` (float16).
A finished segment is never recomputed. L and the true ab come from the frame cache itself.

A training sample is a pure function of (seed, index): three consecutive frames t-2, t-1, t of a
segment (t >= 2), the same random crop and flip for all, and with probability ``perfect`` the
warped ab of t-1 and t replaced by their true ab at confidence 1 (so that G learns to keep
correct colours). The refined ab of frame t-2 that starts the two-step unroll is its warped ab,
or its true ab when it is the reference.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from colortrack.colorize import Colorizer, chrominance, lightness, predict_ab
from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write, make_dirs
from colortrack.lab import rgb_to_lab
from colortrack.train.data import CachedVideo, _open

WARPS = "warps"
UNROLL = 3  # frames per sample: t-2 (start), t-1, t


@dataclass(frozen=True)
class WarpSegment:
    """Frames [start, start + num_frames) of the cached video ``frames``; warps in ``file``."""

    frames: str
    start: int
    num_frames: int
    file: str


def segment_starts(num_frames: int, length: int, count: int) -> list[int]:
    """Up to ``count`` evenly spaced starts of ``length``-frame segments (none when too short)."""
    if num_frames < length:
        return []
    return sorted({int(round(s)) for s in np.linspace(0, num_frames - length, count)})


def prepare_warps(
    videos: Sequence[CachedVideo],
    run_dir: str | os.PathLike,
    colorizer: Colorizer,
    length: int,
    per_video: int,
    progress: bool = False,
) -> list[WarpSegment]:
    """Warp every segment not warped yet; returns all segments, in ``videos`` order."""
    folder = make_dirs(Path(run_dir) / WARPS)
    wanted = [(v, start) for v in videos for start in segment_starts(v.num_frames, length, per_video)]
    if not wanted:
        raise InputError(str(run_dir), f"no video has {length} cached frames for a warp segment")
    segments = []
    for video, start in tqdm(wanted, desc="warping", unit="segment", disable=not progress):
        file = folder / f"{Path(video.file).stem}-{start:05d}-{length}.npz"
        if not file.is_file():
            _warp_segment(colorizer, _open(video.file)[start : start + length], file)
        segments.append(WarpSegment(video.file, start, length, str(file)))
    return segments


@torch.no_grad()
def _warp_segment(colorizer: Colorizer, frames: np.ndarray, file: Path) -> None:
    """frames (T, H, W, 3) uint8 -> ``file`` holding warped (T, 2, h, w) and confidence (T, h, w)."""
    device = colorizer.device
    embeddings = [colorizer.embed(lightness(frame, device)) for frame in frames]
    grid = tuple(embeddings[0].shape[-2:])
    reference = F.adaptive_avg_pool2d(chrominance(frames[0], device), grid)
    confidence: list = []
    warped = predict_ab(embeddings, {0: reference}, colorizer.config, confidence=confidence)
    arrays = {
        "warped": torch.stack(warped).half().cpu().numpy(),
        "confidence": torch.stack(confidence).half().cpu().numpy(),
    }
    with atomic_write(file) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


class RefineDataset(Dataset):
    """Sample ``index`` -> dict of (3, C, S, S) float32 tensors, frames t-2, t-1, t:
    light (C=1, L), ab (C=2, true), warped (C=2, upsampled), confidence (C=1, upsampled)."""

    def __init__(self, segments: Sequence[WarpSegment], crop_size: int, hflip: bool, perfect: float, seed: int):
        self.segments = [s for s in segments if s.num_frames >= UNROLL]
        if not self.segments:
            raise ValueError(f"every segment is shorter than {UNROLL} frames")
        self.crop_size, self.hflip, self.perfect, self.seed = crop_size, hflip, perfect, seed

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, index])
        segment = self.segments[int(rng.integers(len(self.segments)))]
        t = int(rng.integers(UNROLL - 1, segment.num_frames))
        first = segment.start + t - (UNROLL - 1)
        rgb = torch.from_numpy(np.array(_open(segment.frames)[first : first + UNROLL])).permute(0, 3, 1, 2)
        lab = rgb_to_lab(rgb.float() / 255.0)
        warped, confidence = _load_warps(segment.file, t - (UNROLL - 1), lab.shape[-2:])
        sample = {"light": lab[:, :1], "ab": lab[:, 1:], "warped": warped, "confidence": confidence}
        sample = _crop(sample, self.crop_size, rng)
        if t == UNROLL - 1:  # frame t-2 is the reference: its refined ab is its own
            sample["warped"][0] = sample["ab"][0]
        if rng.random() < self.perfect:
            sample["warped"][1:] = sample["ab"][1:]
            sample["confidence"][1:] = 1.0
        if self.hflip and rng.integers(2):
            sample = {key: value.flip(-1) for key, value in sample.items()}
        return {key: value.contiguous() for key, value in sample.items()}


def _crop(sample: dict[str, Tensor], size: int, rng: np.random.Generator) -> dict[str, Tensor]:
    """The same random size x size window of every (..., H, W) tensor of the sample."""
    height, width = sample["light"].shape[-2:]
    if height < size or width < size:
        raise ValueError(f"frames {height}x{width} are smaller than the crop {size}")
    top, left = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))
    return {key: value[..., top : top + size, left : left + size].clone() for key, value in sample.items()}


def _load_warps(file: str, first: int, size) -> tuple[Tensor, Tensor]:
    """(3, 2, H, W) warped ab and (3, 1, H, W) confidence of frames first.. first+2, upsampled."""
    with np.load(file) as arrays:
        warped = torch.from_numpy(arrays["warped"][first : first + UNROLL].astype(np.float32))
        confidence = torch.from_numpy(arrays["confidence"][first : first + UNROLL].astype(np.float32))
    up = F.interpolate(torch.cat([warped, confidence[:, None]], 1), size=tuple(size), mode="bilinear", align_corners=False)
    return up[:, :2], up[:, 2:]
