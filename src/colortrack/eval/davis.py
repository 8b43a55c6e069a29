"""DAVIS semi-supervised evaluation: propagate each object from its first annotation, write PNGs, score J&F."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write_json, make_dirs
from colortrack.io.davis import DavisDataset, DavisSequence
from colortrack.io.masks import read_mask, write_mask
from colortrack.io.runs import RunFolder
from colortrack.scale.ranks import Ranks
from colortrack.scale.share import FAILED_DIR, Failure, run_shared
from colortrack.eval.metrics.davis import Summary, evaluate_sequence, format_table, summarize
from colortrack.tasks.keyframes import propagate_first_appearances
from colortrack.core.tracker import Propagator


@dataclass(frozen=True)
class DavisEvalConfig:
    """What produced a results folder; saved as ``config.json`` beside the predictions."""

    root: str
    method: str
    preset: str
    track: dict
    sequences: list[str]


@dataclass(frozen=True)
class SequenceRun:
    name: str
    frames: int
    seconds: float


def run_davis_eval(
    dataset: DavisDataset, tracker, out_dir: Path, root: Path | str | None = None, progress: bool = True,
    ranks: Ranks | None = None,
) -> Summary | None:
    """``colortrack eval davis``: :func:`evaluate_davis` with a :class:`colortrack.Tracker`'s
    method, preset and settings recorded as the folder's configuration (None on a torchrun rank
    other than the first)."""
    config = DavisEvalConfig(
        root=str(root if root is not None else dataset.root),
        method=tracker.method,
        preset=tracker.preset,
        track=tracker.config.to_dict(),
        sequences=[sequence.name for sequence in dataset.sequences],
    )
    return evaluate_davis(dataset, tracker.propagator, config, Path(out_dir), progress, ranks)


def evaluate_davis(
    dataset: DavisDataset,
    propagator: Propagator,
    config: DavisEvalConfig,
    out_dir: Path,
    progress: bool = True,
    ranks: Ranks | None = None,
) -> Summary | None:
    """Writes ``out_dir/<sequence>/<frame>.png`` (named after the source frames) and
    ``out_dir/results.json``; returns the summary.

    Each object is given on the first frame it is annotated in (:func:`propagate_first_appearances`)
    and scored on the annotated frames after it. Sequences finished by an earlier run with the same
    configuration are scored from their PNGs instead of being tracked again.

    ranks: the sequences are shared between the ranks of a torchrun job
    (:func:`colortrack.scale.share.run_shared`); rank 0 scores them once all are tracked and returns
    the summary, the others None. A sequence that fails twice is left out of the scores and listed
    under ``failed`` in results.json.
    """
    for sequence in dataset.sequences:  # a bad file fails now, not after hours of tracking
        sequence.check_sizes()
    if all(len(sequence) < 3 for sequence in dataset.sequences):
        raise InputError(dataset.root, "no sequence has a frame to score (the first and last are not: 3 frames or more needed)")
    RunFolder.open(out_dir, asdict(config)).claim()
    failures = run_shared(
        dataset.sequences, lambda sequence: _finished_or_tracked(propagator, sequence, out_dir),
        lambda sequence: sequence.name, out_dir, ranks, progress, unit="sequence",
    )
    if ranks is not None and not ranks.primary:
        return None
    failed = {failure.name for failure in failures}
    if len(failed) == len(dataset.sequences):
        raise InputError(out_dir / FAILED_DIR, "every sequence failed (the records there say why)")
    scores, runs = [], []
    for sequence in dataset.sequences:
        if sequence.name in failed:
            continue
        masks = sequence.read_masks()
        predictions = np.stack([read_mask(_prediction_path(out_dir, sequence, index)) for index in sequence.mask_frames])
        scores.extend(
            evaluate_sequence(sequence.name, predictions, masks, frames=sequence.mask_frames, num_frames=len(sequence))
        )
        runs.append(_load_finished(out_dir, sequence))
    summary = summarize(scores)
    atomic_write_json(out_dir / "results.json", _results(summary, runs, config, failures))
    return summary


def _finished_or_tracked(propagator: Propagator, sequence: DavisSequence, out_dir: Path) -> SequenceRun:
    return _load_finished(out_dir, sequence) or _track_sequence(propagator, sequence, sequence.read_masks(), out_dir)


def _track_sequence(propagator: Propagator, sequence: DavisSequence, masks: np.ndarray, out_dir: Path) -> SequenceRun:
    make_dirs(out_dir / sequence.name)
    frames = sequence.read_frames()
    start = time.perf_counter()
    annotations = sequence.first_appearances(masks)
    for index, mask in enumerate(propagate_first_appearances(propagator, frames, annotations)):
        write_mask(_prediction_path(out_dir, sequence, index), mask)
    run = SequenceRun(sequence.name, len(frames), time.perf_counter() - start)
    atomic_write_json(_progress_file(out_dir, sequence), asdict(run))
    return run


def _load_finished(out_dir: Path, sequence: DavisSequence) -> SequenceRun | None:
    path = _progress_file(out_dir, sequence)
    if not path.exists():
        return None
    run = SequenceRun(**json.loads(path.read_text()))
    complete = run.frames == len(sequence.frame_paths) and all(
        _prediction_path(out_dir, sequence, index).exists() for index in range(run.frames)
    )
    return run if complete else None


def _progress_file(out_dir: Path, sequence: DavisSequence) -> Path:
    return out_dir / "progress" / f"{sequence.name}.json"


def _prediction_path(out_dir: Path, sequence: DavisSequence, index: int) -> Path:
    return out_dir / sequence.name / sequence.output_name(index)


def _results(summary: Summary, runs: list[SequenceRun], config: DavisEvalConfig, failures: list[Failure]) -> dict:
    frames = sum(run.frames for run in runs)
    seconds = sum(run.seconds for run in runs)
    results = summary.to_json()
    results["seconds_per_frame"] = seconds / max(frames, 1)
    results["timing"] = [asdict(run) for run in runs]
    results["config"] = asdict(config)
    if failures:
        results["failed"] = [asdict(failure) for failure in failures]
    return results


def print_summary(summary: Summary, title: str) -> None:
    print(title)
    print(format_table(summary))
