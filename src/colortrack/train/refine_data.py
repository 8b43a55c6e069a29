"""Training data of the refiner: our own warping of unlabelled colour video, computed once.

Each segment of ``segment_frames`` consecutive cached frames (see :mod:`colortrack.train.data`)
is coloured from its first frame (the reference) by one of our methods; the warped ab and the
confidence of every frame, on the feature grid, go to ``RUN_DIR/warps/<segment>.npz`` (float16).
A finished segment is never recomputed. L and the true ab come from the frame cache itself.

A training sample is a pure function of (seed, index): three consecutive frames t-2, t-1, t of a
segment (t >= 2), the same random cell-aligned crop and flip for all. The refined ab of frame t-2
that starts the two-step unroll is its warped ab (upsampled), or its true ab when it is the
reference.
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

from colortrack.tasks.colorize import Colorizer, chrominance, lightness, predict_ab
from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write, make_dirs
from colortrack.core.lab import rgb_to_lab
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
    """Sample ``index`` -> dict of float32 tensors for frames t-2, t-1, t at S x S pixels, c x c
    cells (S = c x the cell size): light (3, 1, S, S) L, ab (3, 2, S, S) true ab, start (2, S, S)
    the refined ab that starts the unroll, warped (2, 2, c, c) and confidence (2, 1, c, c) of
    frames t-1 and t. Frames are resized to ``cell`` pixels per cell of the grid (the embedder's
    stride: the size at which they were embedded), and the crop is cell-aligned."""

    def __init__(self, segments: Sequence[WarpSegment], crop_size: int, hflip: bool, seed: int, cell: int):
        self.segments = [s for s in segments if s.num_frames >= UNROLL]
        if not self.segments:
            raise ValueError(f"every segment is shorter than {UNROLL} frames")
        if crop_size % cell:
            raise ValueError(f"crop_size {crop_size} is not a multiple of the cell size {cell}")
        self.crop_size, self.hflip, self.seed, self.cell = crop_size, hflip, seed, cell

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, index])
        segment = self.segments[int(rng.integers(len(self.segments)))]
        t = int(rng.integers(UNROLL - 1, segment.num_frames))
        first = segment.start + t - (UNROLL - 1)
        rgb = torch.from_numpy(np.array(_open(segment.frames)[first : first + UNROLL])).permute(0, 3, 1, 2)
        warped, confidence = _load_warps(segment.file, t - (UNROLL - 1))
        cell = self.cell
        lab = F.interpolate(rgb_to_lab(rgb.float() / 255.0), size=tuple(cell * n for n in warped.shape[-2:]),
                            mode="bilinear", align_corners=False)
        sample = _crop(lab, warped, confidence, self.crop_size // cell, cell, rng)
        ab, warped = sample["ab"], sample["warped"]
        coarse_start = F.interpolate(warped[:1], size=ab.shape[-2:], mode="bilinear", align_corners=False)[0]
        sample["start"] = ab[0].clone() if t == UNROLL - 1 else coarse_start  # the reference keeps its own ab
        sample["warped"], sample["confidence"] = warped[1:], sample["confidence"][1:]
        if self.hflip and rng.integers(2):
            sample = {key: value.flip(-1) for key, value in sample.items()}
        return {key: value.contiguous() for key, value in sample.items()}


def _crop(lab: Tensor, warped: Tensor, confidence: Tensor, cells: int, cell: int, rng) -> dict[str, Tensor]:
    """A random window of ``cells`` x ``cells`` cells of the grids and the same pixels of lab."""
    height, width = warped.shape[-2:]
    if height < cells or width < cells:
        raise ValueError(f"a {height}x{width} cell grid is smaller than the crop of {cells} cells")
    top, left = int(rng.integers(height - cells + 1)), int(rng.integers(width - cells + 1))
    pixels = lab[..., top * cell : (top + cells) * cell, left * cell : (left + cells) * cell]
    return {
        "light": pixels[:, :1].clone(),
        "ab": pixels[:, 1:].clone(),
        "warped": warped[..., top : top + cells, left : left + cells].clone(),
        "confidence": confidence[..., top : top + cells, left : left + cells].clone(),
    }


def _load_warps(file: str, first: int) -> tuple[Tensor, Tensor]:
    """(3, 2, h, w) warped ab and (3, 1, h, w) confidence of frames first .. first + 2."""
    with np.load(file) as arrays:
        warped = torch.from_numpy(arrays["warped"][first : first + UNROLL].astype(np.float32))
        confidence = torch.from_numpy(arrays["confidence"][first : first + UNROLL].astype(np.float32))
    return warped, confidence[:, None]
