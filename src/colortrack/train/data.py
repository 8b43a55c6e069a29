"""Training data: a decoded frame cache of unlabelled colour videos and random 4-frame clips.

Every video (a file, or a folder of frames) is decoded once: resized so that its short side is
``short_side`` pixels, subsampled to ``fps`` frames per second by timestamp, and stored as one
(T, H, W, 3) uint8 ``.npy`` file that later runs reuse and training reads through a memory map.

A clip is a pure function of (seed, sample index): which video, which frames, the crop, the flip
and the channel dropout all come from ``np.random.default_rng([seed, index])``, so that a resumed
run sees exactly the clips an uninterrupted one would, whatever the number of loader workers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Sampler
from tqdm import tqdm

from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write, atomic_write_json, make_dirs
from colortrack.io.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VideoReader, read_image
from colortrack.core.lab import rgb_to_lab
from colortrack.models.network import lab_to_input
from colortrack.train.quantize import quantize

MANIFEST = "manifest.json"
CACHE_VERSION = 2
# A video's ``file`` -> its frames, sliceable like a (T, H, W, 3) uint8 array: the memory-mapped
# cache (``_open``) or a chunk of a sharded corpus (:class:`colortrack.train.shards.ShardReader`).
FramesOf = Callable[[str], Any]


@dataclass(frozen=True)
class CachedVideo:
    """One decoded video: ``file`` holds (num_frames, height, width, 3) uint8."""

    source: str
    file: str
    num_frames: int
    height: int
    width: int


@dataclass(frozen=True)
class ClipConfig:
    """How a training clip is cut from the cache.

    crop_size: side of the square crop fed to the network (paper: 256).
    scale_jitter: the crop covers crop_size * s source pixels, s uniform in this range, then is
    resized to crop_size (clamped to the frame). (1, 1) disables it.
    hflip: mirror half of the clips (all frames alike).
    stride: the network's stride; targets are given per feature cell.
    channel_dropout: for "lab" input, the probability that a clip has its ab channels (or its L
    channel) zeroed in the input, as in CorrFlow; ``ab_dropout_share`` of those lose ab (0.5: equal
    chance), the rest lose L.
    max_gap: the clip's frames are ``g`` cached frames apart, ``g`` uniform in [1, max_gap] per
    clip (shrunk to fit the video): longer, more varied motion between references and target.
    input_jitter: strength ``j`` of a per-clip photometric change of the *input* only (L scaled by
    a contrast in [1 - j, 1 + j] about its mean and shifted by up to 50 j, ab scaled by a
    saturation in [1 - j, 1 + j]); the colour targets are those of the unchanged frames, so the
    embedding must match through lighting changes. 0 disables it.
    rotation: synthetic in-plane spin: a clip turns at a rate drawn uniformly in [-rotation,
    rotation] degrees per frame about its crop centre (frame t by t x rate), input and colour
    targets alike, so that the embedding must follow objects that rotate in the image plane,
    which upright training video rarely shows. 0 disables it (no draw from the clip's rng).
    """

    crop_size: int = 256
    clip_frames: int = 4
    scale_jitter: tuple[float, float] = (1.0, 1.0)
    hflip: bool = True
    input_mode: str = "gray"
    stride: int = 8
    channel_dropout: float = 0.0
    max_gap: int = 1
    input_jitter: float = 0.0
    rotation: float = 0.0
    ab_dropout_share: float = 0.5


# ----------------------------------------------------------------------------------- discovery
def find_videos(folders: Sequence[str | os.PathLike]) -> list[Path]:
    """Video files and frame folders (folders holding images) found recursively, sorted.

    A path given directly may itself be a video file or a frame folder. Hidden entries are skipped.
    """
    found: set[Path] = set()
    for folder in map(Path, folders):
        if not folder.exists():
            raise InputError(folder, "no such file or folder")
        if folder.is_file():
            found.add(folder)
            continue
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            visible = [f for f in files if not f.startswith(".")]
            found.update(Path(root, f) for f in visible if f.lower().endswith(VIDEO_EXTENSIONS))
            if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in visible):
                found.add(Path(root))
    return sorted(found)


# ----------------------------------------------------------------------------------- caching
def prepare_cache(
    sources: Sequence[Path], cache_dir: str | os.PathLike, short_side: int, fps: float, min_frames: int,
    primary: bool = True, progress: bool = False,
) -> list[CachedVideo]:
    """Decode every source not cached yet; returns the usable videos in ``sources`` order.

    Videos that cannot be read, or have fewer than ``min_frames`` frames after subsampling, are
    skipped with a warning line naming them (remembered in the manifest until the file changes).
    Only the ``primary`` process (rank 0) warns and writes the manifest; the others call this
    after it and find everything cached. Raises InputError when no video is usable.
    A cached file is found by its name (which holds the key) even when a killed run did not get
    to write the manifest.
    """
    cache_dir = Path(cache_dir)
    make_dirs(cache_dir)
    manifest = _read_manifest(cache_dir)
    videos = []
    for source in tqdm(sources, desc="cache", unit="video", disable=not (primary and progress), leave=False):
        key = _cache_key(source, short_side, fps)
        entry = manifest[key] = manifest.get(key) or _cache_entry(source, cache_dir, key, short_side, fps)
        problem = entry.get("problem") or _too_short(entry, min_frames)
        if problem:
            if primary:
                tqdm.write(f"warning: {source}: {problem}; skipped", file=sys.stderr)
            continue
        videos.append(CachedVideo(str(source), str(cache_dir / entry["file"]), *entry["shape"][:3]))
    if primary:
        atomic_write_json(cache_dir / MANIFEST, {"version": CACHE_VERSION, "videos": manifest})
    if not videos:
        where = ", ".join(str(s) for s in sources[:3]) or "the data folders"
        raise InputError(where, f"no usable training video (need at least {min_frames} frames at {fps:g} fps)")
    return videos


def subsample_indices(num_frames: int, source_fps: float, fps: float) -> list[int]:
    """Indices of the frames nearest to the times 0, 1/fps, 2/fps, ... (all when fps >= source)."""
    return [index for index in range(num_frames) if _kept(index, source_fps, fps)]


def _kept(index: int, source_fps: float, fps: float) -> bool:
    """Whether frame ``index`` is the one nearest to some time k / fps (ties to the later frame)."""
    if fps <= 0 or fps >= source_fps:
        return True
    step = source_fps / fps
    nearest = math.floor(math.floor(index / step + 0.5) * step + 0.5)
    return nearest == index


def _read_manifest(cache_dir: Path) -> dict:
    path = cache_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("version") != CACHE_VERSION:
        return {}
    return {key: entry for key, entry in data["videos"].items() if _entry_present(cache_dir, entry)}


def _entry_present(cache_dir: Path, entry: dict) -> bool:
    return "problem" in entry or (cache_dir / entry["file"]).is_file()


def _cache_key(source: Path, short_side: int, fps: float) -> str:
    """Changes when the source (path, size, modification time) or the cache settings change."""
    stat = source.stat()
    size = sum(1 for _ in source.iterdir()) if source.is_dir() else stat.st_size
    text = f"{source.resolve()}|{size}|{stat.st_mtime_ns}|{short_side}|{fps}|{CACHE_VERSION}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _cache_entry(source: Path, cache_dir: Path, key: str, short_side: int, fps: float) -> dict:
    """Manifest entry {source, file (name in cache_dir), shape} or {source, problem}; decodes
    the source unless its file is already there."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", source.stem)[:40] + f"-{key}.npy"
    path = cache_dir / name
    if not path.is_file():
        try:
            frames = decode_video(source, short_side, fps)
        except InputError as err:
            return {"source": str(source), "problem": err.problem}
        with atomic_write(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, frames)
    return {"source": str(source), "file": name, "shape": list(np.load(path, mmap_mode="r").shape)}


def decode_video(source: Path, short_side: int, fps: float) -> np.ndarray:
    """(T, H, W, 3) uint8: the frames kept at ``fps``, short side resized to ``short_side``."""
    reader = VideoReader(source)
    source_fps = reader.info.fps
    if reader.frame_paths is not None:
        paths = reader.frame_paths
        frames = (read_image(paths[i]) for i in subsample_indices(len(paths), source_fps, fps))
    else:
        frames = (frame for i, frame in enumerate(reader) if _kept(i, source_fps, fps))
    resized = [_resize_short_side(frame, short_side) for frame in frames]
    if not resized:
        raise InputError(source, "video has zero frames")
    return np.stack(resized)


def _resize_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    height, width = frame.shape[:2]
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame, size, interpolation=interpolation)


def _too_short(entry: dict, min_frames: int) -> str | None:
    if entry["shape"][0] < min_frames:
        return f"only {entry['shape'][0]} frames after subsampling, a clip needs {min_frames}"
    return None


# ----------------------------------------------------------------------------------- colours
def sample_ab(
    videos: Sequence[CachedVideo], count: int, stride: int, seed: int, max_frames: int = 64, frames_of: FramesOf | None = None
) -> np.ndarray:
    """(count, 2) float32 ab colours of random feature cells (``stride`` x ``stride`` averages,
    as the training targets are), drawn from up to ``max_frames`` random cached frames
    (``frames_of(video.file)``: the memory-mapped cache by default)."""
    frames_of = frames_of or _open
    rng = np.random.default_rng([seed, 0x5EED])
    clips = np.array([v.num_frames for v in videos])
    picks = rng.choice(int(clips.sum()), size=min(max_frames, int(clips.sum())), replace=False)
    offsets = np.concatenate([[0], np.cumsum(clips)])
    cells = []
    for pick in np.sort(picks):
        video = int(np.searchsorted(offsets, pick, side="right") - 1)
        frame = frames_of(videos[video].file)[pick - offsets[video]]
        cells.append(_pooled_ab(frame, stride))
    samples = np.concatenate(cells)
    chosen = rng.choice(len(samples), size=min(count, len(samples)), replace=False)
    return samples[np.sort(chosen)]


def _pooled_ab(frame: np.ndarray, stride: int) -> np.ndarray:
    """frame (H, W, 3) uint8 -> (cells, 2) float32 ab averaged over stride x stride cells."""
    rgb = torch.from_numpy(np.array(frame)).permute(2, 0, 1).float() / 255.0
    ab = F.avg_pool2d(rgb_to_lab(rgb)[1:][None], stride)[0]
    return ab.flatten(1).T.numpy()


# ----------------------------------------------------------------------------------- clips
class ClipDataset(Dataset):
    """Item ``index`` -> one random clip, a pure function of (seed, index). Unbounded length.
    ``frames_of``: where a video's frames come from (the frame cache by default).

    Returns a dict:
      input: (T, Cin, S, S) float32 in [-1, 1] (S = crop_size);
      color_ids: (T, S / stride, S / stride) long, quantized ab of each feature cell;
      ab: (T, 2, S / stride, S / stride) float32, the cell-averaged ab in Lab units.
    """

    def __init__(
        self, videos: Sequence[CachedVideo], centers: Tensor, config: ClipConfig, seed: int, frames_of: FramesOf | None = None
    ):
        if config.clip_frames < 2:
            raise ValueError(f"a clip needs a reference and a target frame, got clip_frames={config.clip_frames}")
        if config.crop_size % config.stride:
            raise ValueError(f"crop_size {config.crop_size} is not a multiple of the stride {config.stride}")
        self.files = [v.file for v in videos]
        self.starts = np.array([v.num_frames - config.clip_frames + 1 for v in videos])
        if (self.starts < 1).any():
            raise ValueError("every video needs at least clip_frames frames")
        self.offsets = np.concatenate([[0], np.cumsum(self.starts)])
        self.centers = centers.float().cpu()
        self.config = config
        self.seed = seed
        self.frames_of = frames_of or _open

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, index])
        frames = self._frames(rng)
        rgb = torch.from_numpy(_crop(frames, self.config, rng)).permute(0, 3, 1, 2).float() / 255.0
        lab = rgb_to_lab(rgb)
        ab = F.avg_pool2d(lab[:, 1:], self.config.stride)
        x = lab_to_input(_jitter(lab, self.config.input_jitter, rng), self.config.input_mode)
        x = _drop_channels(x, self.config, rng)
        return {"input": x, "color_ids": quantize(ab, self.centers), "ab": ab}

    def _frames(self, rng: np.random.Generator) -> np.ndarray:
        """(T, H, W, 3) uint8: clip_frames cached frames of a random position, ``max_gap`` apart
        at most. Draws nothing more from ``rng`` when max_gap is 1 (earlier runs resume exactly)."""
        clip = int(rng.integers(self.offsets[-1]))
        video = int(np.searchsorted(self.offsets, clip, side="right") - 1)
        start = clip - int(self.offsets[video])
        frames = self.frames_of(self.files[video])
        count = self.config.clip_frames
        if self.config.max_gap <= 1:
            return frames[start : start + count]
        gap = int(rng.integers(1, self.config.max_gap + 1))
        gap = max(1, min(gap, (len(frames) - 1) // (count - 1)))
        start = min(start, len(frames) - 1 - gap * (count - 1))
        return frames[start : start + gap * (count - 1) + 1 : gap]


def _crop(frames: np.ndarray, config: ClipConfig, rng: np.random.Generator) -> np.ndarray:
    """(T, H, W, 3) -> (T, S, S, 3): the same random square crop, rescale and flip for all frames,
    turned frame by frame when ``config.rotation`` is set."""
    height, width = frames.shape[1:3]
    low, high = config.scale_jitter
    side = int(round(config.crop_size * rng.uniform(low, high)))
    side = max(1, min(side, height, width))
    top = int(rng.integers(height - side + 1))
    left = int(rng.integers(width - side + 1))
    flip = config.hflip and bool(rng.integers(2))
    if config.rotation > 0:
        rate = rng.uniform(-config.rotation, config.rotation)
        out = [_turned_crop(frame, top, left, side, config.crop_size, rate * t) for t, frame in enumerate(frames)]
    else:
        out = [_resized(frame, config.crop_size) for frame in frames[:, top : top + side, left : left + side]]
    return np.ascontiguousarray(np.stack([frame[:, ::-1] if flip else frame for frame in out]))


def _resized(frame: np.ndarray, size: int) -> np.ndarray:
    if frame.shape[0] == size:
        return frame
    interpolation = cv2.INTER_AREA if frame.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(frame, (size, size), interpolation=interpolation)


def _turned_crop(frame: np.ndarray, top: int, left: int, side: int, size: int, degrees: float) -> np.ndarray:
    """(size, size, 3): the ``side`` square at (top, left) turned by ``degrees`` about its centre
    (counter-clockwise on screen) and resized to ``size``; outside the frame it is mirrored."""
    centre = (left + side / 2 - 0.5, top + side / 2 - 0.5)
    matrix = cv2.getRotationMatrix2D(centre, degrees, size / side)
    matrix[:, 2] += size / 2 - 0.5 - np.array(centre)
    return cv2.warpAffine(np.asarray(frame), matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _jitter(lab: Tensor, strength: float, rng: np.random.Generator) -> Tensor:
    """lab: (T, 3, S, S). The clip with one random contrast/brightness of L and saturation of ab
    (the same for all its frames); unchanged, and no draw from ``rng``, when strength is 0."""
    if strength <= 0:
        return lab
    contrast, shift, saturation = rng.uniform(-strength, strength, size=3)
    lightness = lab[:, :1]
    mean = lightness.mean()
    lightness = ((lightness - mean) * (1 + contrast) + mean + 50.0 * shift).clamp(0.0, 100.0)
    return torch.cat([lightness, lab[:, 1:] * (1 + saturation)], dim=1)


def _drop_channels(x: Tensor, config: ClipConfig, rng: np.random.Generator) -> Tensor:
    """x: (T, 3, S, S) Lab input. With probability channel_dropout zero ab (or L) for the clip."""
    if config.input_mode != "lab" or config.channel_dropout <= 0:
        return x
    if rng.random() >= config.channel_dropout:
        return x
    x = x.clone()
    if rng.random() < config.ab_dropout_share:
        x[:, 1:] = 0.0
    else:
        x[:, :1] = 0.0
    return x


_OPEN: dict[str, np.ndarray] = {}


def _open(file: str) -> np.ndarray:
    """The cached frames of ``file``, memory-mapped once per process."""
    frames = _OPEN.get(file)
    if frames is None:
        frames = _OPEN[file] = np.load(file, mmap_mode="r")
    return frames


class StepBatchSampler(Sampler[list[int]]):
    """Batches of global sample indices for steps [start, end): on rank r of W, step s takes
    indices s*W*B + r*B + i, i < B, so ranks never share a sample and resuming at any step
    continues the same sequence."""

    def __init__(self, start: int, end: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start, self.end = start, end
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.end):
            first = (step * self.world_size + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
