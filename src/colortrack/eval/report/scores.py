"""Per-frame J / F and colorization errors of an evaluation folder, cached beside it."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from colortrack.eval.report.runs import EvalRun, complete_partial
from colortrack.eval.report.stats import FAIL_J, OddsRatio, failure_table, odds_ratio

COLOR_HEIGHT = 240
COLOR_STEP = 3
FRAME_CACHE = "report_frames.json"
COLOR_CACHE = "report_colorization.json"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_digest(run: EvalRun) -> str:
    if not run.results.get("partial"):
        return _digest(run.path / "results.json")
    records = sorted((run.path / "progress").glob("*.json"))
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in records)).hexdigest()


def compute_frame_scores(run: EvalRun, dataset, names: list[str]) -> None:
    """Per-frame J and F (mean over objects) of ``names``, cached in the eval folder; for a
    partial run, of all its finished sequences, which also gives its per-sequence rows."""
    from colortrack.io.masks import read_mask
    from colortrack.eval.metrics.davis import evaluate_sequence

    partial = bool(run.results.get("partial"))
    if partial:
        names = list(dict.fromkeys([*names, *run.results["finished"]]))
    cache_path = run.path / FRAME_CACHE
    digest = _run_digest(run)
    cache = _read_cache(cache_path)
    if cache.get("results_sha256") != digest:
        cache = {"results_sha256": digest, "sequences": {}}
    changed = False
    objects = {}
    for name in names:
        if name not in cache["sequences"]:
            sequence = dataset[name]
            gt = sequence.read_masks()
            paths = [run.path / name / sequence.output_name(t) for t in sequence.mask_frames]
            pred = np.stack([read_mask(path, size=gt.shape[1:]) for path in paths])
            scores = evaluate_sequence(name, pred, gt, frames=sequence.mask_frames, num_frames=len(sequence))
            cache["sequences"][name] = {
                "J": _mean_over_objects([s.J for s in scores]),
                "F": _mean_over_objects([s.F for s in scores]),
                "objects": [{"J": s.J.tolist(), "F": s.F.tolist()} for s in scores],
            }
            changed = True
        entry = cache["sequences"][name]
        run.frame_j[name] = np.asarray(entry["J"], float)
        run.frame_f[name] = np.asarray(entry["F"], float)
        objects[name] = [(np.asarray(o["J"], float), np.asarray(o["F"], float)) for o in entry.get("objects", [])]
    if changed:
        _write_json(cache_path, cache)
    if partial:
        complete_partial(run, objects)


def _write_json(path: Path, data: dict) -> None:
    from colortrack.io.atomic import atomic_write_json

    try:
        atomic_write_json(path, data)
    except OSError:  # a read-only eval folder: the report still works, without the cache
        pass


def colorization_spec(run: EvalRun) -> str | None:
    """The embedder whose colorization errors stand for this method, resolved like ``--method``:
    the training-free gray embedder for identity, flow and color, the weights of ``model`` or of
    a checkpoint path; None when the checkpoint does not exist."""
    from colortrack.models.registry import TRAINING_FREE_METHODS, trained_weights

    if run.method in TRAINING_FREE_METHODS:
        return "gray"
    return trained_weights(run.method)


def colorization_errors(
    sequence, spec: str, step: int, height: int, device, _embedders: dict = {}
) -> dict[int, float]:
    """Frame index -> mean ab error of colourizing the gray frame from frame 0 (``reference``
    method, frames resized to ``height``), for frames step, 2 step, ... < T - 1."""
    import cv2
    import torch

    from colortrack.tasks.colorize import ColorizeConfig, Colorizer, embedder_temperature, make_embedder
    from colortrack.io.video import read_image
    from colortrack.eval.metrics.color import rgb_to_ab

    if spec not in _embedders:
        _embedders[spec] = (make_embedder(spec, device), embedder_temperature(spec))
    embedder, temperature = _embedders[spec]
    config = ColorizeConfig.for_method("reference", temperature=temperature)
    colorizer = Colorizer(embedder, config, device)
    indices = [0] + list(range(step, len(sequence) - 1, step))
    frames = []
    for index in indices:
        rgb = read_image(sequence.frame_paths[index])
        h, w = rgb.shape[:2]
        width = max(8, int(round(w * height / h)))
        frames.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
    with torch.no_grad():
        out = list(colorizer.colorize(frames, {0: frames[0]}))
    errors = {}
    for index, frame, predicted in zip(indices, frames, out):
        if index == 0:
            continue
        diff = rgb_to_ab(predicted).astype(np.float64) - rgb_to_ab(frame).astype(np.float64)
        errors[index] = float(np.sqrt((diff**2).sum(axis=-1)).mean())
    return errors


def compute_color_errors(run: EvalRun, dataset, names: list[str], step: int, height: int, device, memo: dict) -> None:
    spec = colorization_spec(run)
    if spec is None:
        run.color_note = f"checkpoint {run.method} not found: no colorization analysis"
        return
    settings = {"embedder": spec, "method": "reference", "input_height": height, "step": step, "error": "mean ab L2"}
    cache_path = run.path / COLOR_CACHE
    cache = _read_cache(cache_path)
    if cache.get("settings") != settings:
        cache = {"settings": settings, "sequences": {}}
    changed = False
    for name in names:
        if name not in cache["sequences"]:
            key = (spec, str(dataset.root.resolve()), name, step, height)
            if key not in memo:
                memo[key] = colorization_errors(dataset[name], spec, step, height, device)
            cache["sequences"][name] = {str(k): v for k, v in memo[key].items()}
            changed = True
        run.color_errors[name] = {int(k): v for k, v in cache["sequences"][name].items()}
    if changed:
        _write_json(cache_path, cache)
    run.color_note = f"embedder {spec}"


def failure_statistics(run: EvalRun, names: list[str], fail_j: float = FAIL_J) -> OddsRatio | None:
    j, errors = [], []
    for name in names:
        frame_j = run.frame_j.get(name)
        for index, error in run.color_errors.get(name, {}).items():
            if frame_j is not None and 1 <= index <= len(frame_j):
                j.append(frame_j[index - 1])  # frame_j[0] is frame 1
                errors.append(error)
    if len(j) < 2:
        return None
    return odds_ratio(*failure_table(np.array(j), np.array(errors), fail_j))


def _read_cache(path: Path) -> dict:
    """A JSON cache, or an empty one when it is missing or unreadable (it is only a cache)."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def _mean_over_objects(per_object: list[np.ndarray]) -> list[float]:
    """Per-frame means over the objects scored on each frame. An object that enters later is
    scored on the last frames only, so the arrays are aligned at their ends."""
    if not per_object:
        return []
    length = max(len(values) for values in per_object)
    padded = np.full((len(per_object), length), np.nan)
    for row, values in zip(padded, per_object):
        row[length - len(values) :] = values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(padded, axis=0).tolist()
