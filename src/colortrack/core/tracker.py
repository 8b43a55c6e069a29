"""Stateful propagation of per-pixel labels through a video with any embedder."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from colortrack.core.affinity import AffinityConfig, attend
from colortrack.models.embedders.base import Embedder
from colortrack.core.memory import ContextMemory, MemoryConfig
from colortrack.core.precision import PRECISIONS, autocast
from colortrack.errors import InputError


@dataclass(frozen=True)
class TrackConfig:
    """Everything that decides how labels travel from frame to frame.

    input_height: frames are resized to this height (width keeps the aspect ratio) before
    encoding, both rounded to a multiple of the embedder's stride; None keeps the native height.
    precision: autocast of a neural embedder (an ``nn.Module``): fp32, bf16, fp16 or auto (see
    :func:`colortrack.core.precision.autocast_dtype`); hand-made embedders and the affinity stay fp32.
    """

    affinity: AffinityConfig = field(default_factory=AffinityConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    input_height: int | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError("precision", f"must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrackConfig:
        return cls(
            affinity=AffinityConfig(**data["affinity"]),
            memory=MemoryConfig(**data["memory"]),
            input_height=data.get("input_height"),
            precision=data.get("precision", "fp32"),
        )


PRESETS: dict[str, TrackConfig] = {
    # Vondrick et al. 2018: the 3 previous frames, T = 0.5, softmax over every reference pixel.
    "paper": TrackConfig(
        affinity=AffinityConfig(temperature=0.5, topk=None, radius=None),
        memory=MemoryConfig(keep_first=False, recent=3),
    ),
    # The shipped model's settings, chosen by measurement on davis2016-train (docs/benchmarks.md):
    # its training temperature; frames embedded at 240 rows (stride-4 cells of 8 native pixels);
    # first + 7 recent frames, the longest context that keeps 480p tracking above 5 fps on 2 CPU cores.
    "default": TrackConfig(
        affinity=AffinityConfig(temperature=1.0, topk=10, radius=12),
        memory=MemoryConfig(keep_first=True, recent=7),
        input_height=240,
        precision="bf16",
    ),
    # The training-free colour embedder's (cosine similarities): chosen the same way.
    "color": TrackConfig(
        affinity=AffinityConfig(temperature=0.02, topk=10, radius=12),
        memory=MemoryConfig(keep_first=True, recent=3),
    ),
}


class Propagator(Protocol):
    """Anything that carries soft labels from the first frame through a video."""

    def track(self, frames: Iterable[np.ndarray], first_labels: np.ndarray) -> Iterator[np.ndarray]:
        """frames: RGB (H, W, 3) uint8, first one annotated; first_labels: (L, H, W) float32.
        Yields (L, H, W) float32 label probabilities for every frame, the first included."""
        ...


def pick_device(name: str = "auto") -> torch.device:
    """The one place a device is chosen: "auto" takes CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class LabelTracker:
    """Propagates labels with an embedder, the shared affinity and a context memory."""

    def __init__(self, embedder: Embedder, config: TrackConfig, device: torch.device | None = None):
        self.embedder = embedder
        self.config = config
        self.device = device or pick_device()

    @torch.no_grad()
    def track(self, frames: Iterable[np.ndarray], first_labels: np.ndarray) -> Iterator[np.ndarray]:
        stream = iter(frames)
        first = next(stream)
        native_size = first.shape[:2]
        if first_labels.shape[1:] != native_size:
            raise InputError("labels", f"{first_labels.shape[1:]} do not match the frame {native_size}")
        memory = ContextMemory(self.config.memory)
        key = self.embed(first)
        labels = torch.from_numpy(first_labels).to(self.device, torch.float32)
        memory.add(key, F.adaptive_avg_pool2d(labels, key.shape[-2:]))
        yield first_labels.astype(np.float32, copy=False)
        for frame in stream:
            key = self.embed(frame)
            keys, values = memory.context()
            predicted = attend(key[None], keys[None], values[None], self.config.affinity)[0]
            memory.add(key, predicted)
            yield _upsample(predicted, native_size)

    def embed(self, frame: np.ndarray) -> Tensor:
        """frame: (H, W, 3) uint8 RGB. Returns (C, h, w) on the tracker's device."""
        image = torch.from_numpy(np.require(frame, requirements="W")).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        image = F.interpolate(image, size=self.input_size(frame.shape[:2]), mode="bilinear", antialias=True)
        if not isinstance(self.embedder, torch.nn.Module):
            return self.embedder.encode(image)[0]
        with autocast(self.config.precision, self.device):
            return self.embedder.encode(image)[0].float()

    def input_size(self, native_size: tuple[int, int]) -> tuple[int, int]:
        height, width = native_size
        target = self.config.input_height or height
        stride = self.embedder.stride
        scaled_width = width * target / height
        return _round_to(target, stride), _round_to(scaled_width, stride)


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def _upsample(labels: Tensor, size: tuple[int, int]) -> np.ndarray:
    """labels: (L, h, w). Returns (L, H, W) float32 numpy."""
    native = F.interpolate(labels[None], size=size, mode="bilinear", align_corners=False)[0]
    return native.cpu().numpy()
