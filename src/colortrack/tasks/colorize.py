"""Colourize a video from colour reference frames by copying their colours through the affinity.

The input may be grayscale or colour; colour frames are reduced to their Lab lightness L first,
so a colour video can be decolourized, recolourized and compared with its original. Every frame
keeps its own L at full resolution; only the chrominance ab is predicted, at the embedder's
feature resolution, upsampled bilinearly and recombined with L.

The values copied by :func:`colortrack.core.affinity.attend` are the references' ab themselves (two
channels, averaged over each feature cell), not a soft one-hot of quantized colours: copying is
exact where the affinity is one-to-one, and top-k with a low temperature keeps the averaging of
distinct colours (desaturation) to the few best matches.

Methods (``ColorizeConfig.method``):

* ``propagate`` (Vondrick et al. 2018): frames are coloured one after the other, each attending
  to the reference frames and to the ``recent`` last predicted frames (local window). Frames
  after the earliest reference are coloured forward from it, frames before it backward.
* ``reference``: every frame attends to the reference frames only (non-local: global window).
* ``spatiotemporal`` (Akimoto et al.): dense tracking restricts, for every target cell, which
  reference cells it may copy from. A one-hot "where am I" map of each target cell is carried
  frame by frame toward each reference by local attention (window ``track.radius``), binarized at
  ``threshold`` (one-to-many), and the target's affinity to the references is taken over those
  candidates only, with one softmax over all references together. See
  :class:`SpatiotemporalConfig` for the approximations that bound time and memory.

Instance restriction (any method): given an object mask on one frame, the mask tracker
(:class:`colortrack.core.tracker.LabelTracker`) carries it through the video, and a target pixel only
copies from reference pixels of its own instance (:func:`attend`'s ``groups``; a target with no
reference pixel of its instance among its candidates keeps them all).
"""

from __future__ import annotations

import itertools
import json
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor
from tqdm import tqdm

from colortrack.core.affinity import AffinityConfig, affinity_topk, attend
from colortrack.models.embedders.base import Embedder
from colortrack.defaults import COLORIZE_METHODS, DEFAULT_COLORIZE_METHOD, GRAY_EMBEDDER, SHIPPED_MODEL
from colortrack.errors import InputError
from colortrack.io.sources import parse_reference
from colortrack.core.lab import lab_to_rgb, rgb_to_lab, rgb_to_lightness
from colortrack.core.memory import ContextMemory, MemoryConfig
from colortrack.core.precision import PRECISIONS, autocast
from colortrack.models.refiner import RefineSweep, Refiner, refine_frames
from colortrack.core.tracker import PRESETS, LabelTracker, input_size, pick_device

METHODS = COLORIZE_METHODS

# Chosen on two davis2016-train sequences (boat, lucia) with the gray embedder (docs/colorization.md).
# The temperature is the embedder's (see embedder_temperature) unless overridden.
DEFAULT_AFFINITY: dict[str, AffinityConfig] = {
    "propagate": AffinityConfig(temperature=0.05, topk=5, radius=6),
    "reference": AffinityConfig(temperature=0.05, topk=10, radius=None),
    "spatiotemporal": AffinityConfig(temperature=0.05, topk=10, radius=None),
}
GRAY_TEMPERATURE = 0.05


@dataclass(frozen=True)
class SpatiotemporalConfig:
    """Dense tracking of candidate sets (Akimoto et al.), and how it is kept cheap.

    track: the frame-to-frame local attention that carries each "where am I" map one frame
        toward a reference (its radius is the window R; its top-k makes each step sparse).
    threshold: a reference cell is a candidate of a target cell when its value in the target's
        map is at least ``threshold`` (times the map's maximum when ``relative``).
    relative: threshold relative to each map's maximum. With an absolute 0.2, maps that spread
        over a flat region (softmax weights ~1/k after one step) would keep no candidate at all.
    keep: after every step each map keeps only its ``keep`` largest entries, and entries below
        ``prune`` times its maximum are dropped (bounded memory: ``keep`` x cells per reference).
    min_weight: affinity weights below this carry nothing, so a cell that no cell of the frame
        before matches (new content) starts without a map instead of one made of softmax tails.
    max_candidates: at most this many candidates per target cell and reference (the largest).

    Maps are sparse (reference cell, target cell, value) lists advanced by a sparse product
    with the step's top-k affinity. A target cell that no map reached (new content) takes the
    candidates of the nearest target cell that has some.
    """

    track: AffinityConfig = field(default_factory=lambda: AffinityConfig(temperature=0.05, topk=10, radius=6))
    threshold: float = 0.2
    relative: bool = True
    keep: int = 64
    prune: float = 0.01
    min_weight: float = 0.01
    max_candidates: int = 32


@dataclass(frozen=True)
class ColorizeConfig:
    """Everything that decides the colours.

    affinity: the attention that copies colours (target to references / context).
    recent: ``propagate`` only: number of most recent predicted frames in the context.
    short_side: frames are resized so that their shorter side has this many pixels before
    embedding (None: native), as :attr:`colortrack.core.tracker.TrackConfig.short_side`.
    precision: autocast of a neural embedder and of the refiner (fp32, bf16, fp16, auto; see
        :func:`colortrack.core.precision.autocast_dtype`); the affinity and the colours stay fp32.
        bf16 (the default, as for tracking) changes PSNR by less than 0.1 dB (docs/benchmarks.md).
    """

    method: str = "propagate"
    affinity: AffinityConfig = field(default_factory=lambda: DEFAULT_AFFINITY["propagate"])
    recent: int = 3
    spatiotemporal: SpatiotemporalConfig = field(default_factory=SpatiotemporalConfig)
    short_side: int | None = None
    precision: str = "bf16"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError("method", f"unknown method '{self.method}': choose {', '.join(METHODS)}")
        if self.precision not in PRECISIONS:
            raise InputError("precision", f"unknown precision '{self.precision}': choose {', '.join(PRECISIONS)}")
        if self.recent < 0:
            raise InputError("recent", f"must be >= 0, got {self.recent}")
        if not self.affinity.temperature > 0:
            raise InputError("temperature", f"must be positive, got {self.affinity.temperature}")

    @classmethod
    def for_method(cls, method: str, **overrides) -> ColorizeConfig:
        """The method's defaults with ``overrides``: fields of AffinityConfig go to ``affinity``,
        and ``temperature`` also to the spatiotemporal tracking step."""
        if method not in METHODS:
            raise InputError("--method", f"unknown method '{method}': choose {', '.join(METHODS)}")
        affinity_fields = {"temperature", "topk", "radius", "chunk_size"}
        affinity = {k: v for k, v in overrides.items() if k in affinity_fields}
        rest = {k: v for k, v in overrides.items() if k not in affinity_fields}
        if "temperature" in affinity and "spatiotemporal" not in rest:
            spatiotemporal = SpatiotemporalConfig()
            track = replace(spatiotemporal.track, temperature=affinity["temperature"])
            rest["spatiotemporal"] = replace(spatiotemporal, track=track)
        return cls(method=method, affinity=replace(DEFAULT_AFFINITY[method], **affinity), **rest)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- prediction


def predict_ab(
    embeddings: Sequence[Tensor],
    references: dict[int, Tensor],
    config: ColorizeConfig,
    groups: Sequence[Tensor] | None = None,
    progress: bool = False,
    confidence: list | None = None,
    candidates: CandidateSets | None = None,
) -> list[Tensor]:
    """Chrominance of every frame at feature resolution.

    embeddings: T tensors (C, h, w); references: frame index -> (2, h, w) ab of that frame;
    groups: optional T tensors (h, w) long of instance ids (-1: unknown).
    confidence: an empty list to receive T tensors (h, w): the largest affinity weight of each
    cell (1 at references); needs a top-k. ``spatiotemporal`` takes it from the plain attention
    to the references (without candidate sets), an extra pass per frame.
    candidates: ``spatiotemporal`` only: its dense tracking, when already computed (shared).
    Returns T tensors (2, h, w); reference frames get their own ab.
    """
    if not references:
        raise InputError("references", "at least one reference frame is needed")
    if any(not 0 <= index < len(embeddings) for index in references):
        raise InputError("references", f"frames {sorted(references)} outside the video's 0..{len(embeddings) - 1}")
    if confidence is not None:
        _check_confidence(config)
        confidence[:] = [None] * len(embeddings)
        for index, ab in references.items():
            confidence[index] = torch.ones(ab.shape[-2:], device=ab.device)
    embeddings, references = list(embeddings), dict(sorted(references.items()))
    with torch.no_grad():
        if config.method == "spatiotemporal":
            return _predict_spatiotemporal(embeddings, references, config, groups, progress, confidence, candidates)
        return _predict_sweeps(embeddings, references, config, groups, progress, confidence)


def _check_confidence(config: ColorizeConfig) -> None:
    if config.affinity.topk is None:
        raise InputError("--topk", "the warp confidence (refinement) needs a top-k; 0 (all) is not allowed (add --no-refine)")


def _copy(
    query: Tensor, keys: Tensor, values: Tensor, affinity: AffinityConfig, with_confidence: bool, groups=None
) -> tuple[Tensor, Tensor | None]:
    """attend() of a frame's embedding (C, h, w) to keys (N, C, h, w) and values (N, 2, h, w) ->
    (2, h, w), and, ``with_confidence``, the same copy through affinity_topk with its confidence
    (h, w): the largest affinity weight of each cell (else None)."""
    query = query[None]
    if not with_confidence:
        return attend(query, keys[None], values[None], affinity, groups=groups)[0], None
    weights, indices = affinity_topk(query, keys[None], affinity, groups=groups)
    flat = values.permute(0, 2, 3, 1).reshape(-1, values.shape[1])
    height, width = query.shape[-2:]
    copied = (weights[0, :, :, None] * flat[indices[0]]).sum(1).t().reshape(-1, height, width)
    return copied, weights[0, :, 0].view(height, width)


def _group_pair(groups: Sequence[Tensor] | None, target: int, frames: Sequence[int]) -> tuple[Tensor, Tensor] | None:
    if groups is None:
        return None
    return groups[target][None], torch.stack([groups[index] for index in frames])[None]


class _Sweep:
    """Colours frames one after the other in one direction away from the references: each frame
    attends to the reference frames and, for ``propagate``, to the ``recent`` last frames of the
    sweep it predicted (``reference``: the references only).

    ref_keys (N, C, h, w), ref_values (N, 2, h, w) ab, ref_groups (N, h, w) instance ids or None.
    """

    def __init__(self, ref_keys: Tensor, ref_values: Tensor, ref_groups: Tensor | None, config: ColorizeConfig, with_confidence: bool):
        self.keys, self.values, self.groups = ref_keys, ref_values, ref_groups
        self.affinity, self.with_confidence = config.affinity, with_confidence
        recent = config.recent if config.method == "propagate" else 0
        self.memory = ContextMemory(MemoryConfig(keep_first=False, recent=recent)) if recent else None
        self.remembered = 0

    def step(self, key: Tensor, group: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """key (C, h, w), group (h, w) ids of the next frame -> its ab (2, h, w) and confidence (h, w) or None."""
        keys, values, key_groups = self.keys, self.values, self.groups
        if self.remembered:
            recent_keys, recent_values = self.memory.context()
            keys = torch.cat([keys, recent_keys])
            values = torch.cat([values, recent_values[:, :2]])
            if key_groups is not None:
                key_groups = torch.cat([key_groups, recent_values[:, 2].long()])
        pair = None if group is None else (group[None], key_groups[None])
        predicted, confidence = _copy(key, keys, values, self.affinity, self.with_confidence, pair)
        if self.memory is not None:
            stored = predicted if group is None else torch.cat([predicted, group[None].float()])
            self.memory.add(key, stored)
            self.remembered += 1
        return predicted, confidence


def _predict_sweeps(embeddings, references, config, groups, progress, confidence=None):
    """``propagate`` and ``reference``: forward from the earliest reference to the end, then
    backward from it to the start (see :class:`_Sweep`)."""
    indices = list(references)
    ref_keys = torch.stack([embeddings[index] for index in indices])
    ref_values = torch.stack(list(references.values()))
    ref_groups = torch.stack([groups[index] for index in indices]) if groups is not None else None
    first = indices[0]
    out: list[Tensor | None] = [None] * len(embeddings)
    bar = tqdm(total=len(embeddings), desc="colorizing", unit="frame", disable=not progress)
    for order in (range(first, len(embeddings)), range(first - 1, -1, -1)):
        sweep = _Sweep(ref_keys, ref_values, ref_groups, config, confidence is not None)
        for t in order:
            bar.update()
            if t in references:
                out[t] = references[t]
                continue
            out[t], weight = sweep.step(embeddings[t], None if groups is None else groups[t])
            if confidence is not None:
                confidence[t] = weight
    bar.close()
    return out


# -- spatiotemporal: candidate sets by dense tracking -------------------------------------


@dataclass
class _Maps:
    """The "where am I" maps of every cell of the current frame, as a sparse list sorted by
    (target cell, decreasing value): reference cell ``rows``, current-frame cell ``cols``."""

    rows: Tensor
    cols: Tensor
    values: Tensor
    rank: Tensor  # position within its target cell's list (0 = largest)
    peak: Tensor  # the largest value of its target cell's map

    @classmethod
    def identity(cls, cells: int, device: torch.device) -> _Maps:
        index = torch.arange(cells, device=device)
        ones = torch.ones(cells, device=device)
        return cls(index, index, ones, torch.zeros_like(index), ones)

    @classmethod
    def from_entries(cls, rows: Tensor, cols: Tensor, values: Tensor, cells: int) -> _Maps:
        """Sort (rows, cols, values) by (cols, -values) and rank them within their column."""
        by_value = torch.argsort(values, descending=True, stable=True)
        order = by_value[torch.argsort(cols[by_value], stable=True)]
        rows, cols, values = rows[order], cols[order], values[order]
        counts = torch.bincount(cols, minlength=cells)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(cols), device=cols.device) - starts[cols]
        return cls(rows, cols, values, rank, values[starts[cols]])

    def advance(self, weights: Tensor, indices: Tensor, cells: int, config: SpatiotemporalConfig) -> _Maps:
        """One step away from the reference: ``M_next = B M`` for every map, where row c of B holds
        the top-k attention of cell c of the current frame (queries) to the next frame (keys):
        weights, indices (cells, k). Then pruned to ``keep`` entries per map."""
        k = indices.shape[1]
        rows = self.rows.repeat_interleave(k)
        cols = indices[self.cols].flatten()
        step = weights[self.cols]
        values = (self.values[:, None] * step).flatten()
        carried = (step >= config.min_weight).flatten()
        rows, cols, values = rows[carried], cols[carried], values[carried]
        unique, inverse = torch.unique(cols * cells + rows, return_inverse=True)
        summed = torch.zeros(len(unique), device=values.device).index_add_(0, inverse, values)
        maps = _Maps.from_entries(unique % cells, unique // cells, summed, cells)
        kept = (maps.rank < config.keep) & (maps.values >= config.prune * maps.peak)
        return _Maps.from_entries(maps.rows[kept], maps.cols[kept], maps.values[kept], cells)

    def candidates(self, config: SpatiotemporalConfig) -> tuple[Tensor, Tensor]:
        """(target cells, reference cells) of the binarized maps."""
        bar = config.threshold * self.peak if config.relative else torch.full_like(self.peak, config.threshold)
        chosen = (self.values >= bar) & (self.rank < config.max_candidates)
        return self.cols[chosen], self.rows[chosen]


class FrameSteps:
    """Dense tracking's steps: the top-k attention (``track``) of each frame's cells to the next
    frame's, in either direction, computed on first use and kept, so that every reference setting
    of a video shares them. Each step is (weights, indices), both (cells, k)."""

    def __init__(self, embeddings: Sequence[Tensor], track: AffinityConfig):
        self.embeddings, self.track = embeddings, track
        self._steps: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    def __call__(self, previous: int, t: int) -> tuple[Tensor, Tensor]:
        if (previous, t) not in self._steps:
            weights, indices = affinity_topk(self.embeddings[previous][None], self.embeddings[t][None, None], self.track)
            self._steps[previous, t] = (weights[0], indices[0])
        return self._steps[previous, t]


class CandidateSets:
    """The dense tracking of a video toward its reference frames (Akimoto et al., see
    :class:`SpatiotemporalConfig`): for every frame, each cell's candidate reference cells as a
    (cells, M) long tensor of indices into the N*h*w reference cells (-1 padded), or None where no
    map reached the frame (and at the references). Computed once: colourings with and without
    instances of the same references share it. steps: shared :class:`FrameSteps` (else its own)."""

    def __init__(
        self, embeddings: Sequence[Tensor], references: Sequence[int], config: SpatiotemporalConfig,
        steps: FrameSteps | None = None,
    ):
        self.references = sorted(references)
        num_frames = len(embeddings)
        height, width = embeddings[0].shape[-2:]
        cells = height * width
        steps = steps or FrameSteps(embeddings, config.track)
        later: list[list[tuple[Tensor, Tensor]]] = [[] for _ in range(num_frames)]
        for t, found in _sweep(steps, self.references, range(num_frames - 1, -1, -1), config, cells):
            later[t] = found
        self.padded: list[Tensor | None] = [None] * num_frames
        for t, found in _sweep(steps, self.references, range(num_frames), config, cells):
            if t not in self.references:
                self.padded[t] = _pad_candidates(found + later[t], cells, (height, width))
            later[t] = []


def _predict_spatiotemporal(embeddings, references, config, groups, progress, confidence=None, candidates=None):
    """Each frame attends to the references through its candidate sets (:class:`CandidateSets`,
    computed here unless given)."""
    indices = list(references)
    if candidates is None:
        candidates = CandidateSets(embeddings, indices, config.spatiotemporal)
    elif candidates.references != indices:
        raise ValueError(f"candidate sets toward frames {candidates.references}, references are {indices}")
    keys = torch.stack([embeddings[index] for index in indices])[None]
    values = torch.stack(list(references.values()))[None]
    plain = replace(config.affinity, radius=None)
    out: list[Tensor | None] = [None] * len(embeddings)
    for t in tqdm(range(len(embeddings)), desc="colorizing", unit="frame", disable=not progress):
        if t in references:
            out[t] = references[t]
            continue
        found = candidates.padded[t]
        pair = _group_pair(groups, t, indices)
        if found is None:  # no map reached this frame: fall back to the plain reference attention
            out[t] = attend(embeddings[t][None], keys, values, plain, groups=pair)[0]
        else:
            out[t] = attend(embeddings[t][None], keys, values, config.affinity, groups=pair, candidates=found[None])[0]
        if confidence is not None:
            confidence[t] = _copy(embeddings[t], keys[0], values[0], plain, True, pair)[1]
    return out


def _sweep(steps: FrameSteps, references, order, config: SpatiotemporalConfig, cells):
    """Walk frames in ``order``, carrying the maps of every reference already passed.
    Yields (frame, [(target cells, global reference cells) per reference])."""
    maps: dict[int, _Maps] = {}
    previous = None
    for t in order:
        if maps:
            weights, indices = steps(previous, t)
            maps = {ref: m.advance(weights, indices, cells, config) for ref, m in maps.items()}
        if t in references:
            maps[t] = _Maps.identity(cells, steps.embeddings[t].device)
        found = []
        for ref, m in maps.items():
            if ref != t:
                targets, ref_cells = m.candidates(config)
                found.append((targets, ref_cells + references.index(ref) * cells))
        yield t, found
        previous = t


def _pad_candidates(found: list[tuple[Tensor, Tensor]], cells: int, size: tuple[int, int]) -> Tensor | None:
    """(cells, M) long reference indices per target, -1 padded; targets without any take those of
    the nearest target that has some. None when no target has a candidate."""
    if not found:
        return None
    targets = torch.cat([f[0] for f in found])
    refs = torch.cat([f[1] for f in found])
    if len(targets) == 0:
        return None
    order = torch.argsort(targets, stable=True)
    targets, refs = targets[order], refs[order]
    counts = torch.bincount(targets, minlength=cells)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(targets), device=targets.device) - starts[targets]
    padded = torch.full((cells, int(counts.max())), -1, dtype=torch.long, device=targets.device)
    padded[targets, rank] = refs
    empty = (counts == 0).view(size).cpu().numpy()
    if empty.any():
        nearest = ndimage.distance_transform_edt(empty, return_distances=False, return_indices=True)
        source = torch.from_numpy(nearest[0] * size[1] + nearest[1]).flatten().to(padded.device)
        padded = padded[source]
    return padded


# ----------------------------------------------------------------------------- frames


def lightness(frame: np.ndarray, device: torch.device | None = None) -> Tensor:
    """(H, W, 3) uint8 RGB, gray or colour -> (1, H, W) float32 Lab L in [0, 100]."""
    return rgb_to_lightness(_to_float(frame, device))


def chrominance(frame: np.ndarray, device: torch.device | None = None) -> Tensor:
    """(H, W, 3) uint8 RGB -> (2, H, W) float32 Lab ab."""
    return rgb_to_lab(_to_float(frame, device))[1:]


def _to_float(frame: np.ndarray, device: torch.device | None) -> Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(frame, dtype=np.float32)).to(device or "cpu").permute(2, 0, 1) / 255.0


def to_gray(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 3) uint8 gray RGB (R = G = B) with the nearest Lab L."""
    lab = torch.cat([lightness(frame), torch.zeros(2, *frame.shape[:2])])
    return to_uint8(lab_to_rgb(lab).mean(dim=0, keepdim=True).expand(3, -1, -1))


def compose(light: Tensor, ab: Tensor) -> np.ndarray:
    """light (1, H, W) L and ab (2, h, w) at any resolution (bilinear to H x W) -> (H, W, 3) uint8 RGB."""
    if ab.shape[-2:] != light.shape[-2:]:
        ab = F.interpolate(ab[None].float(), size=light.shape[-2:], mode="bilinear", align_corners=False)[0]
    return to_uint8(lab_to_rgb(torch.cat([light, ab.to(light)])))


def to_uint8(rgb: Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8."""
    return (rgb.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


class Colorizer:
    """Colours a video from reference frames with an embedder that sees only luminance.

    Embeddings are computed from each frame's L (as a gray image), never from its colours, so a
    colour input gives the same result as its gray version.
    """

    def __init__(
        self, embedder: Embedder, config: ColorizeConfig, device: torch.device | None = None, refiner: Refiner | None = None
    ):
        self.embedder = embedder
        self.config = config
        self.device = device or pick_device()
        self.refiner = refiner

    def input_size(self, native_size: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` the embedder sees for frames of ``native_size`` ``(H, W)``."""
        return input_size(native_size, self.config.short_side, self.embedder.stride)

    @torch.no_grad()
    def embed(self, light: Tensor) -> Tensor:
        """light: (1, H, W) L. Returns (C, h, w) embeddings of the gray frame."""
        size = self.input_size(tuple(light.shape[-2:]))
        resized = F.interpolate(light[None].to(self.device), size=size, mode="bilinear", antialias=True)[0]
        gray = lab_to_rgb(torch.cat([resized, torch.zeros(2, *size, device=self.device)]))
        if not isinstance(self.embedder, torch.nn.Module):
            return self.embedder.encode(gray[None])[0]
        with autocast(self.config.precision, self.device):
            return self.embedder.encode(gray[None])[0].float()

    def colorize(
        self,
        frames: Iterable[np.ndarray],
        references: dict[int, np.ndarray],
        instances: tuple[int, np.ndarray] | None = None,
        progress: bool = False,
    ) -> Iterator[np.ndarray]:
        """frames: (H, W, 3) uint8 RGB, gray or colour: a re-readable source (a VideoReader, a
        sequence, an array) or a one-pass iterable. references: frame index -> colour image of that
        frame (H, W, 3) uint8. instances: optional (frame index, (H, W) object ids, 255 void).
        Yields the colourized frames (H, W, 3) uint8: every frame's own L, predicted ab (refined
        when the colorizer has a refiner, see :meth:`refine`).

        ``propagate`` and ``reference`` stream: memory stays flat in the video's length. They hold
        the frames up to the earliest reference (the frames before it are coloured backward from
        it) and up to the instance mask's frame; a reference further on is read ahead, by a first
        pass over a re-readable source, else by holding the frames up to it (as for every
        reference with ``instances``). ``spatiotemporal`` holds every frame's embedding: its dense
        tracking sweeps the whole video backward before colouring."""
        if self.config.method == "spatiotemporal":
            if iter(frames) is frames:
                frames = list(frames)
            return self._colorize_whole(frames, references, instances, progress)
        return self._colorize_stream(frames, references, instances, progress)

    def _colorize_stream(self, frames, references, instances, progress) -> Iterator[np.ndarray]:
        references = dict(sorted(references.items()))
        first, last = min(references), max(references)
        ahead = iter(frames) is frames or instances is not None
        hold = max(first, last if ahead else 0, instances[0] if instances is not None else 0)
        stream = iter(frames)
        held = list(itertools.islice(stream, hold + 1))
        if len(held) <= hold:
            raise InputError("video", f"has {len(held)} frames; a reference or the instance mask is on frame {hold}")
        native = held[0].shape[:2]
        self._check_references(references, native)
        keys = {t: self.embed(lightness(frame, self.device)) for t, frame in _frames_at(frames, held, references)}
        grid = tuple(keys[first].shape[-2:])
        ref_full = {index: chrominance(image, self.device) for index, image in references.items()}
        ref_values = torch.stack([F.adaptive_avg_pool2d(ab, grid) for ab in ref_full.values()])
        instance = None if instances is None else _InstanceTrack(self, *instances, held, grid)
        ref_groups = None if instance is None else torch.stack([instance.group(t) for t in references])
        refine = None if self.refiner is None else self.input_size(native)
        if refine is not None:
            _check_confidence(self.config)
        bar = tqdm(total=_length(frames), desc="colorizing", unit="frame", disable=not progress)

        def sweep(order: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[Tensor, Tensor]]:
            """(L, ab) of each frame along one sweep away from the earliest reference."""
            colours = _Sweep(torch.stack(list(keys.values())), ref_values, ref_groups, self.config, refine is not None)
            refiner = RefineSweep(self.refiner, refine, self.config.precision) if refine is not None else None
            for t, frame in order:
                light = lightness(frame, self.device)
                if t in references:
                    if refiner is not None:
                        refiner.reference(light, ref_full[t])
                    yield light, ref_full[t]
                    continue
                group = None if instance is None else instance.group(t, frame)
                ab, confidence = colours.step(self.embed(light), group)
                yield light, ab if refiner is None else refiner.step(light, ab, confidence)

        backward = [(t, held[t]) for t in range(first, -1, -1)]
        before = list(sweep(backward))[1:][::-1]
        for light, ab in before:
            bar.update()
            yield compose(light, ab)
        before.clear()
        for light, ab in sweep(enumerate(itertools.chain(held[first:], stream), start=first)):
            bar.update()
            yield compose(light, ab)
        bar.close()

    def _check_references(self, references: dict[int, np.ndarray], native: tuple[int, int]) -> None:
        for index, image in references.items():
            if image.shape[:2] != native:
                raise InputError(f"reference {index}", f"is {image.shape[1]}x{image.shape[0]} but the video is {native[1]}x{native[0]}")

    def _colorize_whole(self, frames, references, instances, progress) -> Iterator[np.ndarray]:
        """The colours of a re-readable video computed from every frame's embedding at once."""
        embeddings = []
        native = None
        for frame in tqdm(frames, desc="embedding", unit="frame", disable=not progress):
            native = frame.shape[:2]
            embeddings.append(self.embed(lightness(frame, self.device)))
        if native is None:
            raise InputError("video", "no frames")
        self._check_references(references, native)
        grid = tuple(embeddings[0].shape[-2:])
        ref_full = {index: chrominance(image, self.device) for index, image in references.items()}
        ref_cells = {index: F.adaptive_avg_pool2d(ab, grid) for index, ab in ref_full.items()}
        groups = None
        if instances is not None:
            groups = self.track_instances(list(frames), *instances, grid, len(embeddings))
        confidence = None if self.refiner is None else []
        predicted = predict_ab(embeddings, ref_cells, self.config, groups, progress, confidence)
        if self.refiner is None:
            for t, frame in enumerate(frames):
                yield compose(lightness(frame, self.device), ref_full.get(t, predicted[t]))
            return
        lights = [lightness(frame, self.device) for frame in frames]
        refined = self.refine(lights, predicted, confidence, ref_full)
        bar = tqdm(refined, total=len(lights), desc="refining", unit="frame", disable=not progress)
        for t, (light, ab) in enumerate(zip(lights, bar)):
            yield compose(light, ref_full.get(t, ab))

    def refine(
        self, lights: list[Tensor], predicted: list[Tensor], confidence: list[Tensor], references: dict[int, Tensor]
    ) -> Iterator[Tensor]:
        """The refined ab (2, h, w) of every frame, in time order, at the embedding input size: the
        scale G was trained at (cells of the embedder's stride); as good as refining 854x480
        frames at full size and 5x faster (docs/benchmarks.md). :func:`compose` scales it up."""
        size = self.input_size(tuple(lights[0].shape[-2:]))
        return refine_frames(self.refiner, lights, predicted, confidence, references, size, self.config.precision)

    def track_instances(
        self, frames: Sequence[np.ndarray], index: int, mask: np.ndarray, grid: tuple[int, int], num_frames: int
    ) -> list[Tensor]:
        """Instance ids (h, w) long on the feature grid for every frame (see :class:`_InstanceTrack`)."""
        if len(frames) != num_frames:
            raise InputError("video", f"{len(frames)} frames for {num_frames} embeddings")
        track = _InstanceTrack(self, index, mask, frames, grid)
        return [track.group(t) for t in range(num_frames)]

    def instance_tracker(self) -> LabelTracker:
        """The mask tracker that carries instance masks: this colorizer's embedder with its tracking
        preset (``default`` for a trained network, ``color`` for a hand-made embedder), on the same
        features as the colours (no fine features nor projection: colourization was not measured with them)."""
        preset = PRESETS["default" if isinstance(self.embedder, torch.nn.Module) else "color"]
        plain = replace(preset, short_side=self.config.short_side, fine_weight=0.0, embed_dims=None)
        return LabelTracker(self.embedder, plain, self.device)


class _InstanceTrack:
    """Instance ids (h, w) long on the feature grid, frame by frame: ``mask`` (ids, 255 void -> -1)
    on frame ``index``, carried backward over the ``held`` frames before it and forward over the
    held frames and then the frames handed to :meth:`group`, in order, by the colorizer's mask
    tracker on the gray frames."""

    def __init__(self, colorizer: Colorizer, index: int, mask: np.ndarray, held: Sequence[np.ndarray], grid):
        from colortrack.tasks.masks import propagate_mask

        self.device, self.grid = colorizer.device, grid
        tracker = colorizer.instance_tracker()
        gray = [to_gray(frame) for frame in held[: index + 1]]
        backward = list(propagate_mask(tracker, gray[::-1], mask))[1:][::-1] if index > 0 else []
        self._queue: deque[np.ndarray] = deque()
        self._forward = propagate_mask(tracker, self._fed(), mask)
        self._ids = {t: self._on_grid(ids) for t, ids in enumerate(backward)}
        for t in range(index, len(held)):
            self._ids[t] = self._next(held[t])
        self._ids[index] = self._on_grid(mask)
        self._last = len(held) - 1

    def group(self, t: int, frame: np.ndarray | None = None) -> Tensor:
        """The ids of frame ``t``: held, or (frames after the held ones, in order) tracked from ``frame``."""
        if t in self._ids:
            return self._ids[t]
        if t != self._last + 1 or frame is None:
            raise RuntimeError(f"instance ids of frame {t} asked out of order")
        self._last = t
        return self._next(frame)

    def _next(self, frame: np.ndarray) -> Tensor:
        self._queue.append(to_gray(frame))
        return self._on_grid(next(self._forward))

    def _fed(self) -> Iterator[np.ndarray]:
        while True:
            yield self._queue.popleft()

    def _on_grid(self, ids: np.ndarray) -> Tensor:
        return _ids_on_grid(ids, self.grid, self.device)


def _frames_at(frames: Iterable[np.ndarray], held: list[np.ndarray], wanted: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(t, frame) of the ``wanted`` frames: from ``held``, else from a first pass over ``frames``."""
    wanted = sorted(wanted)
    if wanted[-1] < len(held):
        yield from ((t, held[t]) for t in wanted)
        return
    found = 0
    for t, frame in enumerate(frames):
        if t in wanted:
            found += 1
            yield t, frame
        if t == wanted[-1]:
            break
    if found < len(wanted):
        raise InputError("references", f"frames {wanted} outside the video's 0..{t}")


def _length(frames: Iterable[np.ndarray]) -> int | None:
    try:
        return len(frames)
    except TypeError:
        return None


def _ids_on_grid(mask: np.ndarray, grid: tuple[int, int], device: torch.device) -> Tensor:
    """(H, W) uint8 ids (255 void) -> (h, w) long: the majority id of each cell, void -> -1."""
    ids = torch.from_numpy(mask.astype(np.int64)).to(device)
    present = torch.unique(ids)
    onehot = (ids[None] == present[:, None, None]).float()
    winner = F.adaptive_avg_pool2d(onehot[None], grid)[0].argmax(dim=0)
    out = present[winner]
    return torch.where(out == 255, torch.full_like(out, -1), out)


# ----------------------------------------------------------------------------- references


def embedder_temperature(spec: str) -> float:
    """The softmax temperature that suits an embedder: 0.05 for the gray embedder's cosine
    similarities, a checkpoint's training temperature for its raw dot products."""
    if spec == GRAY_EMBEDDER:
        return GRAY_TEMPERATURE
    from colortrack.models.registry import checkpoint_path
    from colortrack.train.checkpoint import read_meta

    return float(read_meta(checkpoint_path(spec)).get("train_config", {}).get("temperature", GRAY_TEMPERATURE))


def default_short_side(embedder: str) -> int | None:
    """The embedding height an embedder was tuned at: the ``default`` preset's for a trained model
    (240 rows), native for the training-free gray embedder."""
    return None if embedder == GRAY_EMBEDDER else PRESETS["default"].short_side


def colorize_overrides(
    embedder: str = SHIPPED_MODEL,
    temperature: float | None = None,
    topk: int | None = None,
    radius: int | None = None,
    recent: int | None = None,
    precision: str | None = None,
) -> dict:
    """Overrides of a method's defaults (:meth:`ColorizeConfig.for_method`) as the command line
    gives them: None is not given, 0 disables top-k or the radius; the temperature defaults to the
    embedder's (:func:`embedder_temperature`)."""
    if temperature is not None and not temperature > 0:
        raise InputError("temperature", f"must be positive, got {temperature}")
    out: dict = {"temperature": embedder_temperature(embedder) if temperature is None else temperature}
    out.update({name: value or None for name, value in (("topk", topk), ("radius", radius)) if value is not None})
    if recent is not None:
        out["recent"] = recent
    if precision is not None:
        out["precision"] = precision
    return out


def colorize_config(
    method: str = DEFAULT_COLORIZE_METHOD, embedder: str = SHIPPED_MODEL, short_side: int | None = None, **overrides
) -> ColorizeConfig:
    """The configuration ``colortrack colorize`` uses: the method's defaults for ``embedder``
    (its temperature, its input size; ``short_side`` 0 is native) with ``overrides`` (see
    :func:`colorize_overrides`)."""
    side = default_short_side(embedder) if short_side is None else (short_side or None)
    return ColorizeConfig.for_method(method, short_side=side, **colorize_overrides(embedder, **overrides))


def make_embedder(spec: str, device: torch.device) -> Embedder:
    """``model`` (the shipped weights), ``gray`` (training-free LuminancePatchEmbedder) or a
    checkpoint path (file or run folder)."""
    from colortrack.models.registry import is_packaged, load_model

    if spec == GRAY_EMBEDDER:
        from colortrack.models.embedders.gray import LuminancePatchEmbedder

        return LuminancePatchEmbedder()
    if not is_packaged(spec) and not Path(spec).exists():
        raise InputError(spec, "no such checkpoint (use 'model' for the shipped weights, 'gray' for the training-free embedder)")
    return load_model(spec, device)


# ----------------------------------------------------------------------------- the job


def load_references(refs, size: tuple[int, int], num_frames: int | None = None) -> dict[int, np.ndarray]:
    """Colour images of reference frames: ``{frame index: image}``, one image (of frame 0) or a
    list of ``IMAGE[@FRAME]`` strings (paths); an image is a path or an (H, W, 3) uint8 array of
    the video's ``size`` (H, W). Returns frame index -> (H, W, 3) uint8, checked against the size
    and ``num_frames`` (when known)."""
    from colortrack.io.sources import read_rgb

    if isinstance(refs, Mapping):
        items = [(f"reference {index}", image, index) for index, image in refs.items()]
    elif isinstance(refs, (str, os.PathLike, np.ndarray)):
        items = [_reference_item(refs)]
    else:
        items = [_reference_item(ref) for ref in refs]
    references: dict[int, np.ndarray] = {}
    for name, image, index in items:
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise InputError(name, f"frame index must be a whole number >= 0, got {index!r}")
        if num_frames is not None and index >= num_frames:
            raise InputError(name, f"frame {index} is past the video's last frame ({num_frames - 1})")
        if index in references:
            raise InputError(name, f"frame {index} has two reference images")
        rgb = read_rgb(image, name)
        if rgb.shape[:2] != tuple(size):
            where = image if isinstance(image, (str, os.PathLike)) else name
            raise InputError(where, f"reference is {rgb.shape[1]}x{rgb.shape[0]} but the video is {size[1]}x{size[0]}")
        references[int(index)] = rgb
    if not references:
        raise InputError("--ref", "at least one reference image is needed")
    return references


def _reference_item(ref) -> tuple[str, object, int]:
    if isinstance(ref, np.ndarray):
        return "reference 0", ref, 0
    path, index = parse_reference(str(ref))
    return str(ref), path, index


def load_instances(instances, size: tuple[int, int], num_frames: int | None = None) -> tuple[int, np.ndarray] | None:
    """The object mask that keeps colours within objects: None, ``MASK[@FRAME]`` (a path), an
    (H, W) id array (of frame 0), ``(frame index, mask)`` or ``{frame index: mask}`` (one entry).
    Returns (frame index, (H, W) uint8 ids)."""
    from colortrack.io.sources import read_ids

    if instances is None:
        return None
    if isinstance(instances, Mapping):
        if len(instances) != 1:
            raise InputError("instances", f"one instance mask is supported, got {len(instances)}")
        instances = next(iter(instances.items()))
    if isinstance(instances, tuple):
        index, mask, name = instances[0], instances[1], f"instances@{instances[0]}"
    elif isinstance(instances, np.ndarray):
        index, mask, name = 0, instances, "instances"
    else:
        mask, index = parse_reference(str(instances))
        name = str(instances)
    if num_frames is not None and index >= num_frames:
        raise InputError(name, f"frame {index} is past the video's last frame ({num_frames - 1})")
    if isinstance(mask, (str, os.PathLike)):
        from colortrack.io.masks import read_mask

        return int(index), read_mask(mask, size=tuple(size))
    return int(index), read_ids(mask, name, size)


@dataclass(frozen=True)
class ColorizeOutput:
    video: Path
    config: Path
    frames_dir: Path | None
    num_frames: int


def _saved_settings(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def colorize_video(
    video_path: str | os.PathLike,
    refs: Sequence[str],
    out_path: str | os.PathLike,
    colorizer: Colorizer,
    settings: dict,
    frames_dir: str | os.PathLike | None = None,
    instances: str | None = None,
    progress: bool = True,
) -> ColorizeOutput:
    """Writes ``out_path`` (H.264), ``out_path`` with suffix ``.json`` (``settings`` with the
    inputs) and, when asked, ``frames_dir/%05d.png``. refs: ``IMAGE[@FRAME]`` strings;
    instances: ``MASK[@FRAME]``. Without ``frames_dir``, a video already written by identical
    settings (its ``.json`` is written last) is kept, not colourized again."""
    from colortrack.io.atomic import atomic_write_json, make_dirs
    from colortrack.io.streams import write_behind
    from colortrack.io.video import VideoReader, VideoWriter, write_frames_png

    out_path = Path(out_path)
    reader = VideoReader(video_path)
    info = reader.info
    if out_path.exists() and out_path.is_dir():
        raise InputError(out_path, "is a folder; --out names the output video file")
    size = (info.height, info.width)
    references = load_references(refs, size, info.num_frames)
    instance = load_instances(instances, size, info.num_frames)
    settings = {
        "video": str(video_path),
        "references": {str(index): text for index, text in zip(references, refs)},
        "instances": instances,
        **settings,
    }
    config_path = out_path.with_suffix(".json")
    if frames_dir is None and out_path.is_file() and _saved_settings(config_path) == json.loads(json.dumps(settings)):
        return ColorizeOutput(out_path, config_path, None, info.num_frames)
    frames_folder = Path(frames_dir) if frames_dir is not None else None
    if frames_folder is not None:
        make_dirs(frames_folder)  # a file in the way fails now, not after the first frame
    def write(item: tuple[int, np.ndarray]) -> None:
        index, frame = item
        writer.write(frame)
        if frames_folder is not None:
            write_frames_png(frames_folder, [frame], start_index=index)

    with VideoWriter(out_path, info.fps, speed="veryfast") as writer:
        count = write_behind(enumerate(colorizer.colorize(reader, references, instance, progress)), write)
    atomic_write_json(config_path, settings)
    return ColorizeOutput(out_path, config_path, frames_folder, count)
