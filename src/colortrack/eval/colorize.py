"""Colourization on a DAVIS-layout dataset: decolourize, give reference frame(s) in colour, compare.

Every method of one run sees the same gray frames, the same reference frames and the same
embeddings, and is scored by :class:`colortrack.eval.metrics.color.ColorScores` on the frames that are
not references. Two baselines and a ceiling are measured in the same run:

* ``copy``: each frame takes the ab of the nearest reference frame at the same pixel.
* ``flow``: the nearest reference's ab warped along DIS optical flow (of the gray frames),
  chained frame by frame from the reference (:class:`colortrack.models.baselines.FlowPropagator`).
* ``cells``: the frame's true ab averaged over the embedder's feature cells and upsampled, as the
  methods' outputs are: the best any method that predicts ab per cell can do.

A method name may end in ``+inst``: colours are then only copied within object instances, from
the reference frame's annotated mask carried through the video by our own mask tracker (a
stand-in for the instance segmentation of Akimoto et al.). It may then end in ``+refine``: the
method's warped ab, with its confidence, refined by the refiner
(:mod:`colortrack.models.refiner`); the unrefined and refined variants share one warping.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from colortrack.defaults import COLORIZE_REFERENCES
from colortrack.models.baselines import FlowPropagator
from colortrack.tasks.colorize import (
    METHODS,
    CandidateSets,
    ColorizeConfig,
    Colorizer,
    FrameSteps,
    chrominance,
    compose,
    lightness,
    predict_ab,
    to_gray,
)
from colortrack.models.embedders.base import Embedder
from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write_json
from colortrack.io.runs import RunFolder
from colortrack.io.davis import DavisDataset, DavisSequence
from colortrack.scale.ranks import Ranks
from colortrack.scale.share import FAILED_DIR, run_shared
from colortrack.eval.metrics.color import ColorScores, rgb_to_ab
from colortrack.models.refiner import SHIPPED, Refiner, load_refiner

REFERENCE_SETTINGS = COLORIZE_REFERENCES
BASELINES = ("copy", "flow", "cells")
INSTANCE_SUFFIX = "+inst"
REFINE_SUFFIX = "+refine"
TABLE_FIELDS = (
    ("PSNR", "psnr", "{:.2f}"),
    ("PSNR in", "psnr_inside", "{:.2f}"),
    ("PSNR out", "psnr_outside", "{:.2f}"),
    (">16 %", "outliers", "{:.1f}"),
    (">16 in", "outliers_inside", "{:.1f}"),
    (">16 out", "outliers_outside", "{:.1f}"),
    ("flicker", "flicker", "{:+.2f}"),
    ("s/frame", "seconds_per_frame", "{:.3f}"),
)


def reference_frames(setting: str, num_frames: int) -> list[int]:
    """Reference frame indices: ``first`` = 0, ``10th`` = 9 (the last frame of shorter clips),
    ``first+last`` = 0 and the last frame, ``10th+N-10th`` = 9 and N - 11 (the 10th and the
    (N-10)th frame counted from 1; one frame when they meet in a short clip)."""
    tenth = min(9, num_frames - 1)
    if setting == "first":
        return [0]
    if setting == "10th":
        return [tenth]
    if setting == "first+last":
        return sorted({0, num_frames - 1})
    if setting == "10th+N-10th":
        return sorted({tenth, max(num_frames - 11, 0)})
    raise InputError("--refs", f"unknown reference setting '{setting}': choose {', '.join(REFERENCE_SETTINGS)}")


def check_methods(methods: list[str]) -> list[str]:
    for name in methods:
        base = name.removesuffix(REFINE_SUFFIX).removesuffix(INSTANCE_SUFFIX)
        if base not in METHODS and name not in BASELINES:
            choices = ", ".join([*METHODS, *BASELINES])
            raise InputError(
                "--method", f"unknown method '{name}': choose {choices} (methods may end in +inst, then +refine)"
            )
    return methods


@dataclass(frozen=True)
class ColorEvalConfig:
    """What produced a results folder; saved as ``config.json``."""

    root: str
    refs: str
    methods: list[str]
    embedder: str
    overrides: dict
    short_side: int | None
    max_frames: int | None
    sequences: list[str]
    refiner: str | None = None
    frame_short_side: int | None = None


def run_colorize_grid(
    dataset: DavisDataset,
    folders: dict[Path, str],
    methods: list[str],
    embedder: str,
    device: torch.device,
    overrides: dict,
    short_side: int | None,
    max_frames: int | None = None,
    refiner: str | None = None,
    progress: bool = True,
    ranks: Ranks | None = None,
    frame_short_side: int | None = None,
) -> dict[Path, dict] | None:
    """``colortrack eval colorize`` (one folder) and ``reproduce akimoto`` (one per reference
    setting): :func:`evaluate_colorize_grid` of the embedder named ``embedder`` (``model``,
    ``gray`` or a checkpoint) for each folder's reference setting, the settings recorded as the
    folders' configurations. overrides: :func:`colortrack.tasks.colorize.colorize_overrides`;
    refiner: the weights of the ``+refine`` methods; frame_short_side: larger frames (and masks)
    are first shrunk to this shorter side, then colourized and scored at that size (None: native).
    Returns folder -> results (None on a torchrun rank other than the first)."""
    from colortrack.tasks.colorize import make_embedder

    methods = check_methods(list(methods))
    if max_frames is not None and max_frames < 2:
        raise InputError("--max-frames", f"must be at least 2, got {max_frames}")
    if frame_short_side is not None and frame_short_side < 8:
        raise InputError("--frame-short-side", f"must be at least 8, got {frame_short_side}")
    configs = {
        Path(folder): ColorEvalConfig(
            root=str(dataset.root),
            refs=refs,
            methods=methods,
            embedder=embedder,
            overrides=overrides,
            short_side=short_side,
            max_frames=max_frames,
            sequences=dataset.names,
            refiner=refiner if any(name.endswith(REFINE_SUFFIX) for name in methods) else None,
            frame_short_side=frame_short_side,
        )
        for folder, refs in folders.items()
    }
    return evaluate_colorize_grid(dataset, make_embedder(embedder, device), configs, device, progress, ranks)


def evaluate_colorize(
    dataset: DavisDataset,
    embedder: Embedder,
    config: ColorEvalConfig,
    out_dir: Path,
    device: torch.device,
    progress: bool = True,
    ranks: Ranks | None = None,
) -> dict | None:
    """Writes ``out_dir/sequences/<name>.json`` (one per sequence, reused by a re-run with the same
    configuration), ``out_dir/results.json`` and ``out_dir/config.json``; returns the results.
    Every frame needs its mask (the instances of each frame are scored).
    ranks: the sequences are shared between torchrun ranks (as in
    :func:`colortrack.eval.davis.evaluate_davis`); rank 0 aggregates and returns, the others None."""
    found = evaluate_colorize_grid(dataset, embedder, {Path(out_dir): config}, device, progress, ranks)
    return None if found is None else found[Path(out_dir)]


def evaluate_colorize_grid(
    dataset: DavisDataset,
    embedder: Embedder,
    configs: dict[Path, ColorEvalConfig],
    device: torch.device,
    progress: bool = True,
    ranks: Ranks | None = None,
) -> dict[Path, dict] | None:
    """:func:`evaluate_colorize` of configurations that differ only in their reference setting
    (folder -> configuration), one sequence at a time for all of them: its frames are read,
    converted and embedded once, its instances tracked once per first reference, the dense
    tracking's steps computed once (:class:`_Video`). Each folder gets what it would get alone, with
    the same numbers; a sequence is computed again only for the folders that lack its scores.
    Failures are recorded in the first folder."""
    _check_grid(configs)
    for sequence in dataset.sequences:
        if not sequence.dense:
            problem = f"sequence '{sequence.name}' has {len(sequence)} frames but {len(sequence.mask_paths)} masks"
            raise InputError(sequence.mask_paths[0].parent, f"{problem}: eval colorize needs a mask on every frame")
    for out_dir, config in configs.items():
        RunFolder.open(out_dir, asdict(config)).claim(defaults={"refiner": None, "frame_short_side": None})  # older folders
    first_dir, first = next(iter(configs.items()))
    methods = [*check_methods(list(first.methods)), *BASELINES]
    refiner = None
    if any(name.endswith(REFINE_SUFFIX) for name in methods):
        refiner = load_refiner(first.refiner or SHIPPED, device)

    def scored(sequence: DavisSequence) -> None:
        missing = {out_dir: config for out_dir, config in configs.items() if not _scores_path(out_dir, sequence).exists()}
        if missing:
            video = _Video(sequence, embedder, first, device, refiner)
            for out_dir, config in missing.items():
                atomic_write_json(_scores_path(out_dir, sequence), video.scores(config, methods))

    failures = run_shared(dataset.sequences, scored, lambda sequence: sequence.name, first_dir, ranks, progress, "sequence")
    if ranks is not None and not ranks.primary:
        return None
    failed = {failure.name for failure in failures}
    if len(failed) == len(dataset.sequences):
        raise InputError(first_dir / FAILED_DIR, "every sequence failed (the records there say why)")
    return {out_dir: _aggregate(out_dir, config, dataset, methods, failures) for out_dir, config in configs.items()}


def _check_grid(configs: dict[Path, ColorEvalConfig]) -> None:
    if not configs:
        raise ValueError("no configuration to evaluate")
    shared = {json.dumps({**asdict(config), "refs": None}, sort_keys=True) for config in configs.values()}
    if len(shared) > 1:
        raise ValueError("the configurations of one grid may differ only in their reference setting")


def _aggregate(out_dir: Path, config: ColorEvalConfig, dataset: DavisDataset, methods: list[str], failures) -> dict:
    failed = {failure.name for failure in failures}
    per_sequence = {
        sequence.name: json.loads(_scores_path(out_dir, sequence).read_text())
        for sequence in dataset.sequences
        if sequence.name not in failed
    }
    results = {
        "config": asdict(config),
        "methods": {name: _mean_over_sequences([s[name] for s in per_sequence.values()]) for name in methods},
        "sequences": per_sequence,
    }
    if failures:
        results["failed"] = [asdict(failure) for failure in failures]
    atomic_write_json(out_dir / "results.json", results)
    return results


def _scores_path(out_dir: Path, sequence: DavisSequence) -> Path:
    return out_dir / "sequences" / f"{sequence.name}.json"


@dataclass
class _Warp:
    """One method's ab per frame (2, h, w), its confidence per frame (h, w) or None, its seconds."""

    predicted: list
    confidence: list | None
    seconds: float


class _Video:
    """One sequence and the work that all its reference settings and methods share: frames, masks,
    L, true ab and embeddings (once), the instance ids carried from each first reference (once per
    such frame), dense tracking's frame-to-frame steps, the per-cell truth and the composed
    reference frames. :meth:`scores` evaluates one reference setting.

    seconds_per_frame of a method counts what it would cost alone: the embedding, and its share of
    shared work (instances, candidate sets) in full; a spatiotemporal method's confidence, when
    taken from the plain attention of the same setting (the same computation), is not counted."""

    def __init__(self, sequence: DavisSequence, embedder: Embedder, config: ColorEvalConfig, device, refiner):
        frames = sequence.read_frames()[: config.max_frames]
        self.frames, self.masks = at_short_side(frames, sequence.read_masks()[: len(frames)], config.frame_short_side)
        self.objects = (self.masks > 0) & (self.masks != 255)
        self.device = device
        self.colorizer = Colorizer(embedder, _method_config("propagate", config), device, refiner)
        start = time.perf_counter()
        self.lights = [lightness(frame, device) for frame in self.frames]  # what a colour input is reduced to
        self.embeddings = [self.colorizer.embed(light) for light in self.lights]
        self.embed_seconds = time.perf_counter() - start
        self.grid = tuple(self.embeddings[0].shape[-2:])
        self.truth_ab = [rgb_to_ab(frame) for frame in self.frames]
        track = _method_config("spatiotemporal", config).spatiotemporal.track
        self.steps = FrameSteps(self.embeddings, track)
        self._chroma: dict[int, torch.Tensor] = {}
        self._instances: dict[int, tuple[list, float]] = {}
        self._candidates: dict[tuple, tuple[CandidateSets, float]] = {}
        self._composed: dict[tuple[str, int], np.ndarray] = {}
        self._gray: list[np.ndarray] | None = None
        self._cells: tuple[list, float] | None = None

    def chroma(self, t: int) -> torch.Tensor:
        if t not in self._chroma:
            self._chroma[t] = chrominance(self.frames[t], self.device)
        return self._chroma[t]

    def scores(self, config: ColorEvalConfig, methods: list[str]) -> dict:
        """{method: ColorScores summary + seconds_per_frame} of one reference setting."""
        references = reference_frames(config.refs, len(self.frames))
        true_ab = {t: self.chroma(t) for t in references}
        ref_cells = {t: F.adaptive_avg_pool2d(ab, self.grid) for t, ab in true_ab.items()}
        with_confidence = self.colorizer.refiner is not None
        warps: dict[str, _Warp] = {}
        results = {}
        for name in methods:
            if name in BASELINES:
                predicted, seconds = self._baseline(name, references, true_ab)
            else:
                warped = name.removesuffix(REFINE_SUFFIX)
                if warped not in warps:
                    warps[warped] = self._warp(warped, ref_cells, config, warps, with_confidence)
                warp = warps[warped]
                predicted, seconds = warp.predicted, warp.seconds + self.embed_seconds
                if name.endswith(REFINE_SUFFIX):
                    start = time.perf_counter()
                    predicted = list(self.colorizer.refine(self.lights, predicted, warp.confidence, true_ab))
                    seconds += time.perf_counter() - start
            summary = self._score(name, predicted, true_ab)
            summary["seconds_per_frame"] = seconds / len(self.frames)
            results[name] = summary
        self._candidates.clear()  # a setting's own: the memory goes back before the next one
        return results

    def _score(self, name: str, predicted: list, true_ab: dict) -> dict:
        scores = ColorScores()
        for t, frame in enumerate(self.frames):
            scores.add(self._image(name, t, predicted, true_ab), frame, self.objects[t], t not in true_ab, self.truth_ab[t])
        return scores.summary()

    def _image(self, name: str, t: int, predicted: list, true_ab: dict) -> np.ndarray:
        """The composed frame: a reference's own colours (the same for every method) or the
        prediction (the per-cell truth is the same in every setting)."""
        shared = "reference" if t in true_ab else name if name == "cells" else None
        if shared is None:
            return compose(self.lights[t], predicted[t])
        if (shared, t) not in self._composed:
            self._composed[shared, t] = compose(self.lights[t], true_ab[t] if t in true_ab else predicted[t])
        return self._composed[shared, t]

    def _baseline(self, name: str, references: list[int], true_ab: dict) -> tuple[list, float]:
        if name == "cells":
            if self._cells is None:
                start = time.perf_counter()
                cells = baseline_ab(name, self.frames, None, references, true_ab, self.grid, self.device)
                self._cells = (cells, time.perf_counter() - start)
            return self._cells
        start = time.perf_counter()
        if name == "flow" and self._gray is None:
            self._gray = [to_gray(frame) for frame in self.frames]
        predicted = baseline_ab(name, self.frames, self._gray, references, true_ab, self.grid, self.device)
        return predicted, time.perf_counter() - start

    def _warp(self, name: str, ref_cells: dict, config: ColorEvalConfig, warps: dict, with_confidence: bool) -> _Warp:
        """Method ``name`` (may end in +inst) of one reference setting; a spatiotemporal one shares
        the setting's candidate sets and, when it is the same attention, the plain method's confidence."""
        references = sorted(ref_cells)
        method = _method_config(name.removesuffix(INSTANCE_SUFFIX), config)
        seconds = 0.0
        groups = None
        if name.endswith(INSTANCE_SUFFIX):
            groups, seconds = self._instance_groups(references[0])
        candidates = None
        confidence = [] if with_confidence else None
        shared_confidence = None
        if method.method == "spatiotemporal":
            candidates, tracked = self._candidate_sets(references, method)
            seconds += tracked
            plain = warps.get(name.replace("spatiotemporal", "reference", 1))
            if with_confidence and plain is not None and _same_plain_attention(method, _method_config("reference", config)):
                confidence, shared_confidence = None, plain.confidence
        start = time.perf_counter()
        predicted = predict_ab(self.embeddings, ref_cells, method, groups, confidence=confidence, candidates=candidates)
        seconds += time.perf_counter() - start
        return _Warp(predicted, confidence if shared_confidence is None else shared_confidence, seconds)

    def _instance_groups(self, first: int) -> tuple[list, float]:
        if first not in self._instances:
            start = time.perf_counter()
            groups = self.colorizer.track_instances(self.frames, first, self.masks[first], self.grid, len(self.frames))
            self._instances[first] = (groups, time.perf_counter() - start)
        return self._instances[first]

    def _candidate_sets(self, references: list[int], method: ColorizeConfig) -> tuple[CandidateSets, float]:
        key = tuple(references)
        if key not in self._candidates:
            start = time.perf_counter()
            found = CandidateSets(self.embeddings, references, method.spatiotemporal, self.steps)
            self._candidates[key] = (found, time.perf_counter() - start)
        return self._candidates[key]


def at_short_side(frames: np.ndarray, masks: np.ndarray, short_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """frames (T, H, W, 3) uint8 (area interpolation) and masks (T, H, W) ids (nearest) shrunk so
    that their shorter side has ``short_side`` pixels; as they are for None or when not larger."""
    height, width = frames.shape[1:3]
    if short_side is None or min(height, width) <= short_side:
        return frames, masks
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames])
    return resized, np.stack([cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST) for mask in masks])


def _same_plain_attention(spatiotemporal: ColorizeConfig, reference: ColorizeConfig) -> bool:
    """Whether spatiotemporal's confidence pass (its affinity without a window) is the plain
    ``reference`` method's attention (which then gives the same confidence)."""
    return replace(spatiotemporal.affinity, radius=None) == reference.affinity


def _method_config(method: str, config: ColorEvalConfig) -> ColorizeConfig:
    return ColorizeConfig.for_method(method, short_side=config.short_side, **config.overrides)


def _nearest_reference(t: int, references: list[int]) -> int:
    return min(references, key=lambda r: (abs(t - r), r))


def baseline_ab(name, frames, gray, references, true_ab, grid, device) -> list[torch.Tensor]:
    """Full-resolution (or, for ``cells``, per-cell) ab of every frame from a baseline."""
    num_frames = len(frames)
    if name == "cells":
        return [F.adaptive_avg_pool2d(chrominance(frame, device), grid) for frame in frames]
    if name == "copy":
        return [true_ab[_nearest_reference(t, references)] for t in range(num_frames)]
    out: list[torch.Tensor | None] = [None] * num_frames
    for reference in references:
        mine = [t for t in range(num_frames) if _nearest_reference(t, references) == reference]
        labels = true_ab[reference].cpu().numpy()
        for order in (range(reference, max(mine) + 1), range(reference, min(mine) - 1, -1)):
            for t, warped in zip(order, FlowPropagator().track((gray[t] for t in order), labels)):
                out[t] = torch.from_numpy(warped).to(device)
    return out


def _mean_over_sequences(summaries: list[dict]) -> dict:
    """Plain means over sequences of every scalar (sequences without a value are skipped);
    per-frame lists stay with their sequence."""
    out: dict = {}
    for key, value in summaries[0].items():
        if isinstance(value, list):
            continue
        if isinstance(value, dict):
            out[key] = _mean_over_sequences([s[key] for s in summaries])
            continue
        values = [s[key] for s in summaries if s.get(key) is not None and not math.isnan(s[key])]
        out[key] = float(np.mean(values)) if values else None
    return out


def format_table(results: dict, title: str = "") -> str:
    """A markdown table: one row per method, the headline numbers as columns."""
    header = "| method | " + " | ".join(label for label, _, _ in TABLE_FIELDS) + " |"
    lines = ([title, ""] if title else []) + [header, "|" + "---|" * (len(TABLE_FIELDS) + 1)]
    for name, summary in results["methods"].items():
        cells = [fmt.format(summary[key]) if summary.get(key) is not None else "-" for _, key, fmt in TABLE_FIELDS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
