"""Stateful propagation of per-pixel labels through a video with any embedder."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from colortrack.core.affinity import AffinityConfig, attend, compact_embedding
from colortrack.errors import InputError
from colortrack.models.embedders.base import Embedder
from colortrack.core.memory import ContextMemory, MemoryConfig
from colortrack.core.precision import PRECISIONS, autocast

_NOTHING_KNOWN = 1e-6


@dataclass(frozen=True)
class TrackConfig:
    """Everything that decides how labels travel from frame to frame.

    short_side: frames are resized so that their shorter side (the height of a landscape frame,
    the width of a portrait one) has this many pixels, keeping the aspect ratio, before encoding;
    both sides are rounded to a multiple of the embedder's stride. None keeps the native size.
    Configs saved before the rename (``input_height``, which fixed the height) load as this.
    precision: autocast of a neural embedder (an ``nn.Module``): fp32, bf16, fp16 or auto (see
    :func:`colortrack.core.precision.autocast_dtype`); hand-made embedders stay fp32. A bf16 encoder's
    embeddings are kept in bf16 on CPUs with bf16 instructions, where the affinity scores them with
    the fp32 top-k and weights (:func:`colortrack.core.affinity.compact_embedding`).
    flip / extra_short_sides: test-time fusion. Each frame is also tracked mirrored, and/or at these
    further short sides, each view with its own context; every frame's label is the mean of the
    views' predictions (on the grid of ``short_side``) and each view keeps that fused label in its
    context. Each view costs about as much as the single-view tracker.
    fine_weight: a trained model's first trunk stage (local texture) joins its embedding with this
    weight (:meth:`colortrack.models.network.ColorizationNet.encode`): each dot product adds
    ``fine_weight`` times the two cells' texture cosine, which pins down where within an object a
    cell lies. 0: the head's embedding alone (the paper; configs saved before it existed load as 0).
    embed_dims: every frame's embedding is projected onto the ``embed_dims`` principal directions
    (of the uncentred second moment) of the first frame's, which keeps its dot products but for the
    weakest directions and makes the affinity cheaper (its cost grows with the channels); points keep
    every direction (:meth:`for_points`). None: the embedding as it is.
    """

    affinity: AffinityConfig = field(default_factory=AffinityConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    short_side: int | None = None
    precision: str = "fp32"
    flip: bool = False
    extra_short_sides: tuple[int, ...] = ()
    fine_weight: float = 0.0
    embed_dims: int | None = None

    def __post_init__(self) -> None:
        if not self.fine_weight >= 0:
            raise InputError("fine_weight", f"must be 0 or more, not {self.fine_weight}")
        if self.embed_dims is not None and self.embed_dims < 1:
            raise InputError("embed_dims", f"must be positive (or None: every direction), not {self.embed_dims}")
        if self.precision not in PRECISIONS:
            raise InputError("precision", f"must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if any(side < 1 for side in self.extra_short_sides):
            raise InputError("extra_short_sides", f"must be positive, not {self.extra_short_sides}")
        object.__setattr__(self, "extra_short_sides", tuple(self.extra_short_sides))

    def for_points(self) -> TrackConfig:
        """The config points are tracked with: every direction of the embedding (a projection costs
        them 2-5 PCK on BADJA and the demo scene, docs/benchmarks.md)."""
        return self if self.embed_dims is None else replace(self, embed_dims=None)

    def views(self) -> list[View]:
        """The views a frame is tracked in, the first one (``short_side``, unmirrored) defining the grid."""
        sides = [self.short_side, *self.extra_short_sides]
        return [View(side, mirrored) for side in sides for mirrored in ((False, True) if self.flip else (False,))]

    def to_dict(self) -> dict:
        """JSON's view of the config: lists, not tuples."""
        return {**asdict(self), "extra_short_sides": list(self.extra_short_sides)}

    @classmethod
    def from_dict(cls, data: dict) -> TrackConfig:
        return cls(
            affinity=AffinityConfig(**data["affinity"]),
            memory=MemoryConfig(**data["memory"]),
            short_side=data.get("short_side", data.get("input_height")),
            precision=data.get("precision", "fp32"),
            flip=data.get("flip", False),
            extra_short_sides=tuple(data.get("extra_short_sides", ())),
            fine_weight=data.get("fine_weight", 0.0),
            embed_dims=data.get("embed_dims"),
        )


@dataclass(frozen=True)
class View:
    """How a frame is shown to the embedder: resized to this short side (None: native), mirrored or not."""

    short_side: int | None
    mirrored: bool = False


PRESETS: dict[str, TrackConfig] = {
    # Vondrick et al. 2018: the 3 previous frames, T = 0.5, softmax over every reference pixel.
    "paper": TrackConfig(
        affinity=AffinityConfig(temperature=0.5, topk=None, radius=None),
        memory=MemoryConfig(keep_first=False, recent=3),
    ),
    # The shipped model's settings, chosen by measurement on davis2016-train (docs/benchmarks.md):
    # its training temperature; frames embedded with a short side of 240 (stride-4 cells of 8 native
    # pixels at 480p);
    # first + 7 recent frames, the longest context that keeps 480p tracking above 5 fps on 2 CPU cores.
    # Fine features at weight 100, chosen on the keypoint sets (JHMDB clip, BADJA) among 30-1000 and
    # the trunk's stages (+3.4 J&F on the 19 dev sequences); projected onto 48 directions for masks,
    # which keeps the gain at the cost of the 64-d embedding alone (issue 20's speed; docs/benchmarks.md).
    "default": TrackConfig(
        affinity=AffinityConfig(temperature=1.0, topk=10, radius=12),
        memory=MemoryConfig(keep_first=True, recent=7),
        short_side=240,
        precision="bf16",
        fine_weight=100.0,
        embed_dims=48,
    ),
    # The default's settings on frames embedded with a short side of 360: +5.0 J&F on the 19 dev
    # sequences with a model that never saw them, at ~3x the time per frame; it beat first + 15
    # recent frames with flip fusion, the earlier `quality` (docs/training.md, "Inference settings").
    # Fine features, every direction: +4.0 J&F at ~17 % more time than without (docs/benchmarks.md).
    "quality": TrackConfig(
        affinity=AffinityConfig(temperature=1.0, topk=10, radius=12),
        memory=MemoryConfig(keep_first=True, recent=7),
        short_side=360,
        precision="bf16",
        fine_weight=100.0,
    ),
    # The training-free colour embedder's (cosine similarities): chosen the same way.
    "color": TrackConfig(
        affinity=AffinityConfig(temperature=0.02, topk=10, radius=12),
        memory=MemoryConfig(keep_first=True, recent=3),
    ),
}


Pinned = Sequence[tuple[np.ndarray, np.ndarray]]


class Propagator(Protocol):
    """Anything that carries soft labels from the first frame through a video."""

    def track(
        self, frames: Iterable[np.ndarray], first_labels: np.ndarray, pinned: Pinned = ()
    ) -> Iterator[np.ndarray]:
        """frames: RGB (H, W, 3) uint8, first one annotated; first_labels: (L, H, W) float32, a
        distribution over the L labels per pixel, or all 0 where unknown (void: no weight).
        pinned: more annotated frames, (frame (H, W, 3) uint8, labels (L, H, W) float32) pairs,
        that a propagator able to use non-adjacent references keeps in its context for good.
        Yields (L, H, W) float32 label probabilities for every frame, the first included."""
        ...


def split_first(frames: Iterable[np.ndarray]) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """The first frame and an iterator over the rest; InputError when there are no frames (a
    :class:`colortrack.io.video.VideoReader` names the file itself)."""
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise InputError("video", "has no frames")
    return first, stream


def pick_device(name: str = "auto") -> torch.device:
    """The one place a device is chosen: "auto" takes CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class LabelTracker:
    """Propagates labels with an embedder, the shared affinity and a context memory."""

    def __init__(self, embedder: Embedder, config: TrackConfig, device: torch.device | None = None):
        if config.fine_weight and not isinstance(embedder, torch.nn.Module):
            raise InputError("fine_weight", f"needs a trained model; {type(embedder).__name__} has no trunk stages (use 0)")
        self.embedder = embedder
        self.config = config
        self.device = device or pick_device()

    @torch.no_grad()
    def track(
        self, frames: Iterable[np.ndarray], first_labels: np.ndarray, pinned: Pinned = ()
    ) -> Iterator[np.ndarray]:
        first, stream = split_first(frames)
        native_size = first.shape[:2]
        views = self.config.views()
        memories = [ContextMemory(self.config.memory) for _ in views]
        bases = []
        for view, memory in zip(views, memories):
            embedding = self.embed(first, view)
            bases.append(principal_basis(embedding, self.config.embed_dims))
            memory.add(*self._annotated(first, first_labels, view, bases[-1], embedding))
            for frame, labels in pinned:
                memory.pin(*self._annotated(frame, labels, view, bases[-1]))
        yield first_labels.astype(np.float32, copy=False)
        for frame in stream:
            keys = [self._key(frame, view, basis) for view, basis in zip(views, bases)]
            predictions = [self._predict(key, memory) for key, memory in zip(keys, memories)]
            fused = _fuse(predictions, views)
            for view, key, memory in zip(views, keys, memories):
                memory.add(key, _to_view(fused, view, key.shape[-2:]))
            yield _upsample(fused, native_size)

    def _predict(self, key: Tensor, memory: ContextMemory) -> Tensor:
        """key: (C, h, w) of the target frame. Returns its (L, h, w) labels from the memory's context."""
        keys, values = memory.context()
        groups = _known_references(values)
        anchors = memory.num_anchors if self.config.memory.global_anchors else 0
        return _over_known(attend(key[None], keys[None], values[None], self.config.affinity, groups=groups, anchors=anchors)[0])

    def _annotated(
        self, frame: np.ndarray, labels: np.ndarray, view: View, basis: Tensor | None, embedding: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The (key (C, h, w), labels (L, h, w)) context entry of an annotated frame (``embedding``:
        its embedding, when already computed)."""
        if labels.shape[1:] != frame.shape[:2]:
            raise InputError("labels", f"{labels.shape[1:]} do not match the frame {frame.shape[:2]}")
        key = self._key(frame, view, basis, embedding)
        values = torch.from_numpy(labels).to(self.device, torch.float32)
        values = values.flip(-1) if view.mirrored else values
        return key, _over_known(F.adaptive_avg_pool2d(values, key.shape[-2:]))

    def _key(self, frame: np.ndarray, view: View, basis: Tensor | None, embedding: Tensor | None = None) -> Tensor:
        """A frame's context key (C, h, w): its embedding (``embedding`` when already computed) on
        ``basis``, in the form the affinity scores fastest."""
        return compact_embedding(project(self.embed(frame, view) if embedding is None else embedding, basis))

    def embed(self, frame: np.ndarray, view: View | None = None) -> Tensor:
        """frame: (H, W, 3) uint8 RGB, shown as ``view`` (default: the config's short side, unmirrored).
        Returns (C, h, w) on the tracker's device."""
        view = view or View(self.config.short_side)
        image = torch.from_numpy(np.require(frame, requirements="W")).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
        image = image.flip(-1) if view.mirrored else image
        size = input_size(frame.shape[:2], view.short_side, self.embedder.stride)
        image = F.interpolate(image, size=size, mode="bilinear", antialias=True)
        if not isinstance(self.embedder, torch.nn.Module):
            return self.embedder.encode(image)[0]
        fine = {"fine_weight": self.config.fine_weight} if self.config.fine_weight else {}
        with autocast(self.config.precision, self.device):
            return self.embedder.encode(image, **fine)[0].float()

    def input_size(self, native_size: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` the embedder sees for frames of ``native_size`` ``(H, W)``."""
        return input_size(native_size, self.config.short_side, self.embedder.stride)


def principal_basis(embedding: Tensor, dims: int | None) -> Tensor | None:
    """(dims, C): the top ``dims`` eigenvectors of the uncentred second moment of the cells of
    ``embedding`` (C, h, w), whose span keeps most of their dot products; None where ``dims`` is None
    or not below C (nothing to drop)."""
    channels = embedding.shape[0]
    if dims is None or dims >= channels:
        return None
    cells = embedding.float().reshape(channels, -1)
    _, vectors = torch.linalg.eigh(cells @ cells.T / cells.shape[1])  # ascending eigenvalues
    return vectors[:, -dims:].flip(1).T.contiguous()


def project(embedding: Tensor, basis: Tensor | None) -> Tensor:
    """``embedding`` (C, h, w) on ``basis`` (D, C): (D, h, w), rounded to bfloat16 numbers where its
    values were (a bf16 encoder's), so that the affinity's bfloat16 scoring still applies."""
    if basis is None:
        return embedding
    projected = (basis @ embedding.reshape(embedding.shape[0], -1)).reshape(-1, *embedding.shape[1:])
    if torch.equal(embedding.bfloat16().float(), embedding):
        projected = projected.bfloat16().float()
    return projected


def input_size(native_size: tuple[int, int], short_side: int | None, stride: int) -> tuple[int, int]:
    """``(h, w)``: ``native_size`` ``(H, W)`` scaled so that its shorter side is ``short_side``
    (None: native), each side rounded to a multiple of ``stride`` (at least one stride)."""
    height, width = native_size
    scale = short_side / min(height, width) if short_side else 1.0
    return _round_to(height * scale, stride), _round_to(width * scale, stride)


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def _over_known(labels: Tensor) -> Tensor:
    """labels: (L, h, w) whose channels sum to at most 1: less where part of the pixels (or
    references) behind a cell were unknown (all-zero labels, e.g. void). Each cell's labels as a
    distribution over its known part; cells with nothing known stay 0."""
    mass = labels.sum(0, keepdim=True)
    return torch.where(mass > _NOTHING_KNOWN, labels / mass.clamp_min(_NOTHING_KNOWN), labels)


def _known_references(values: Tensor) -> tuple[Tensor, Tensor] | None:
    """values: (N, L, h, w) of the context. Groups for :func:`attend` that keep every target to
    the reference cells with a known label (before top-k), or None when all are known."""
    known = values.sum(dim=1) > _NOTHING_KNOWN  # (N, h, w)
    if bool(known.all()):
        return None
    targets = torch.zeros((1, *known.shape[-2:]), device=values.device)
    return targets, (~known).float()[None]


def _fuse(predictions: list[Tensor], views: list[View]) -> Tensor:
    """predictions: (L, h_v, w_v) per view. Returns their mean (L, h, w) on the first view's grid."""
    if len(predictions) == 1:
        return predictions[0]
    grid = predictions[0].shape[-2:]
    unmirrored = [p.flip(-1) if view.mirrored else p for p, view in zip(predictions, views)]
    resized = [p if p.shape[-2:] == grid else F.interpolate(p[None], size=grid, mode="bilinear", align_corners=False)[0] for p in unmirrored]
    return _over_known(torch.stack(resized).mean(0))


def _to_view(labels: Tensor, view: View, grid: tuple[int, int]) -> Tensor:
    """labels: (L, h, w) on the first view's grid. Returns them (L, *grid) as ``view`` sees them."""
    if labels.shape[-2:] != grid:
        labels = F.interpolate(labels[None], size=grid, mode="bilinear", align_corners=False)[0]
    return labels.flip(-1) if view.mirrored else labels


def _upsample(labels: Tensor, size: tuple[int, int]) -> np.ndarray:
    """labels: (L, h, w). Returns (L, H, W) float32 numpy."""
    native = F.interpolate(labels[None], size=size, mode="bilinear", align_corners=False)[0]
    return native.cpu().numpy()
