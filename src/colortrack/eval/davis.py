"""DAVIS semi-supervised evaluation: propagate the first mask, write PNGs, score J&F."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write_json, make_dirs
from colortrack.io.davis import DavisDataset, DavisSequence
from colortrack.io.masks import read_mask, write_mask
from colortrack.eval.metrics.davis import Summary, evaluate_sequence, format_table, summarize
from colortrack.tasks.masks import propagate_mask
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


def evaluate_davis(
    dataset: DavisDataset, propagator: Propagator, config: DavisEvalConfig, out_dir: Path, progress: bool = True
) -> Summary:
    """Writes ``out_dir/<sequence>/%05d.png`` and ``out_dir/results.json``; returns the summary.

    Sequences finished by an earlier run with the same configuration are scored from their PNGs
    instead of being tracked again.
    """
    for sequence in dataset.sequences:  # a bad file fails now, not after hours of tracking
        sequence.check_sizes()
    if all(len(sequence) < 3 for sequence in dataset.sequences):
        raise InputError(dataset.root, "no sequence has a frame to score (the first and last are not: 3 frames or more needed)")
    _claim_output(out_dir, config)
    scores, runs = [], []
    for sequence in tqdm(dataset.sequences, desc="sequences", unit="seq", disable=not progress):
        run = _load_finished(out_dir, sequence) or _track_sequence(propagator, sequence, out_dir)
        predictions = np.stack([_read_prediction(out_dir / sequence.name, index) for index in range(run.frames)])
        scores.extend(evaluate_sequence(sequence.name, predictions, sequence.read_masks()))
        runs.append(run)
    summary = summarize(scores)
    atomic_write_json(out_dir / "results.json", _results(summary, runs, config))
    return summary


def _track_sequence(propagator: Propagator, sequence: DavisSequence, out_dir: Path) -> SequenceRun:
    sequence_dir = out_dir / sequence.name
    make_dirs(sequence_dir)
    frames = sequence.read_frames()
    start = time.perf_counter()
    for index, mask in enumerate(propagate_mask(propagator, frames, sequence.first_mask())):
        write_mask(sequence_dir / f"{index:05d}.png", mask)
    run = SequenceRun(sequence.name, len(frames), time.perf_counter() - start)
    atomic_write_json(_progress_file(out_dir, sequence), asdict(run))
    return run


def _load_finished(out_dir: Path, sequence: DavisSequence) -> SequenceRun | None:
    path = _progress_file(out_dir, sequence)
    if not path.exists():
        return None
    run = SequenceRun(**json.loads(path.read_text()))
    complete = run.frames == len(sequence.frame_paths) and all(
        (out_dir / sequence.name / f"{index:05d}.png").exists() for index in range(run.frames)
    )
    return run if complete else None


def _progress_file(out_dir: Path, sequence: DavisSequence) -> Path:
    return out_dir / "progress" / f"{sequence.name}.json"


def _read_prediction(sequence_dir: Path, index: int) -> np.ndarray:
    return read_mask(sequence_dir / f"{index:05d}.png")


def _claim_output(out_dir: Path, config: DavisEvalConfig) -> None:
    """Refuse to mix results of two configurations in one folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "output path exists and is not a folder")
    config_path = out_dir / "config.json"
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous != _comparable(asdict(config)):
            raise InputError(out_dir, "holds results of another configuration; choose a new --out")
    make_dirs(out_dir)
    atomic_write_json(config_path, _comparable(asdict(config)))


def _comparable(config: dict) -> dict:
    return json.loads(json.dumps(config))


def _results(summary: Summary, runs: list[SequenceRun], config: DavisEvalConfig) -> dict:
    frames = sum(run.frames for run in runs)
    seconds = sum(run.seconds for run in runs)
    results = summary.to_json()
    results["seconds_per_frame"] = seconds / max(frames, 1)
    results["timing"] = [asdict(run) for run in runs]
    results["config"] = asdict(config)
    return results


def print_summary(summary: Summary, title: str) -> None:
    print(title)
    print(format_table(summary))
