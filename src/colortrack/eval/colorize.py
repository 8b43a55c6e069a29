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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from colortrack.defaults import COLORIZE_REFERENCES
from colortrack.models.baselines import FlowPropagator
from colortrack.tasks.colorize import (
    METHODS,
    ColorizeConfig,
    Colorizer,
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
from colortrack.eval.metrics.color import ColorScores
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


def run_colorize_eval(
    dataset: DavisDataset,
    refs: str,
    methods: list[str],
    embedder: str,
    out_dir: Path,
    device: torch.device,
    overrides: dict,
    short_side: int | None,
    max_frames: int | None = None,
    refiner: str | None = None,
    progress: bool = True,
    ranks: Ranks | None = None,
) -> dict | None:
    """``colortrack eval colorize``: :func:`evaluate_colorize` of the embedder named ``embedder``
    (``model``, ``gray`` or a checkpoint) with its settings recorded as the folder's configuration.
    overrides: :func:`colortrack.tasks.colorize.colorize_overrides`; refiner: the weights of the
    ``+refine`` methods. None on a torchrun rank other than the first."""
    from colortrack.tasks.colorize import make_embedder

    methods = check_methods(list(methods))
    if max_frames is not None and max_frames < 2:
        raise InputError("--max-frames", f"must be at least 2, got {max_frames}")
    config = ColorEvalConfig(
        root=str(dataset.root),
        refs=refs,
        methods=methods,
        embedder=embedder,
        overrides=overrides,
        short_side=short_side,
        max_frames=max_frames,
        sequences=dataset.names,
        refiner=refiner if any(name.endswith(REFINE_SUFFIX) for name in methods) else None,
    )
    return evaluate_colorize(dataset, make_embedder(embedder, device), config, Path(out_dir), device, progress, ranks)


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
    for sequence in dataset.sequences:
        if not sequence.dense:
            problem = f"sequence '{sequence.name}' has {len(sequence)} frames but {len(sequence.mask_paths)} masks"
            raise InputError(sequence.mask_paths[0].parent, f"{problem}: eval colorize needs a mask on every frame")
    RunFolder.open(out_dir, asdict(config)).claim(defaults={"refiner": None})  # folders from before refinement
    methods = [*check_methods(list(config.methods)), *BASELINES]
    refiner = None
    if any(name.endswith(REFINE_SUFFIX) for name in methods):
        refiner = load_refiner(config.refiner or SHIPPED, device)

    def scored(sequence: DavisSequence) -> None:
        path = _scores_path(out_dir, sequence)
        if not path.exists():
            atomic_write_json(path, _evaluate_sequence(sequence, embedder, config, methods, device, refiner))

    failures = run_shared(dataset.sequences, scored, lambda sequence: sequence.name, out_dir, ranks, progress, "sequence")
    if ranks is not None and not ranks.primary:
        return None
    failed = {failure.name for failure in failures}
    if len(failed) == len(dataset.sequences):
        raise InputError(out_dir / FAILED_DIR, "every sequence failed (the records there say why)")
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


def _evaluate_sequence(
    sequence: DavisSequence,
    embedder: Embedder,
    config: ColorEvalConfig,
    methods: list[str],
    device: torch.device,
    refiner: Refiner | None,
) -> dict:
    frames = sequence.read_frames()[: config.max_frames]
    masks = sequence.read_masks()[: len(frames)]
    objects = (masks > 0) & (masks != 255)
    references = reference_frames(config.refs, len(frames))
    gray = [to_gray(frame) for frame in frames]  # for the flow baseline
    colorizer = Colorizer(embedder, _method_config("propagate", config), device, refiner)
    start = time.perf_counter()
    lights = [lightness(frame, device) for frame in frames]  # what a colour input is reduced to
    embeddings = [colorizer.embed(light) for light in lights]
    embed_seconds = time.perf_counter() - start
    grid = tuple(embeddings[0].shape[-2:])
    true_ab = {t: chrominance(frames[t], device) for t in references}
    ref_cells = {t: F.adaptive_avg_pool2d(ab, grid) for t, ab in true_ab.items()}
    instance_groups = None
    warps: dict[str, tuple[list, list, float]] = {}
    results = {}
    for name in methods:
        start = time.perf_counter()
        if name in BASELINES:
            predicted = baseline_ab(name, frames, gray, references, true_ab, grid, device)
            seconds = time.perf_counter() - start
        else:
            warped = name.removesuffix(REFINE_SUFFIX)
            if warped not in warps:
                if warped.endswith(INSTANCE_SUFFIX) and instance_groups is None:
                    first = references[0]
                    instance_groups = colorizer.track_instances(frames, first, masks[first], grid, len(frames))
                groups = instance_groups if warped.endswith(INSTANCE_SUFFIX) else None
                warps[warped] = _warp(warped, embeddings, ref_cells, config, groups, refiner is not None)
            predicted, confidence, seconds = warps[warped]
            seconds += embed_seconds
            if name.endswith(REFINE_SUFFIX):
                start = time.perf_counter()
                predicted = list(colorizer.refine(lights, predicted, confidence, true_ab))
                seconds += time.perf_counter() - start
        scores = ColorScores()
        for t, frame in enumerate(frames):
            ab = true_ab.get(t, predicted[t])
            scores.add(compose(lights[t], ab), frame, objects[t], scored=t not in true_ab)
        summary = scores.summary()
        summary["seconds_per_frame"] = seconds / len(frames)
        results[name] = summary
    return results


def _warp(name, embeddings, ref_cells, config: ColorEvalConfig, groups, with_confidence: bool):
    """(ab per frame, confidence per frame or None, seconds) of method ``name`` (may end in +inst)."""
    start = time.perf_counter()
    confidence = [] if with_confidence else None
    method = _method_config(name.removesuffix(INSTANCE_SUFFIX), config)
    predicted = predict_ab(embeddings, ref_cells, method, groups, confidence=confidence)
    return predicted, confidence, time.perf_counter() - start


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
