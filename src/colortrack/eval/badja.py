"""BADJA keypoint evaluation (Biggs et al., *Creatures great and SMAL*, ACCV 2018) on DAVIS frames.

Protocol: each sequence starts from its first annotated frame with the joints visible there;
they are propagated through every later frame of the sequence and scored on each later annotated
frame: a joint is correct when within ``alpha * sqrt(area of that frame's ground-truth mask)`` of
the truth (PCK@0.1 and BADJA's PCK@0.2); a joint the tracker reports lost is wrong; a joint not
visible in a frame's truth is not scored there. The headline pools every scored (frame, joint)
pair over all sequences. BADJA's joints (1920x1080 ``[row, col]``) are scaled to the frames' size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from colortrack.core.tracker import Propagator
from colortrack.errors import InputError
from colortrack.eval.keypoints import KeypointBenchmark, KeypointClip, evaluate_keypoints
from colortrack.eval.metrics.pck import silhouette_size
from colortrack.io.davis import DavisDataset, DavisSequence
from colortrack.io.keypoints import BADJA_JOINTS, read_badja
from colortrack.io.masks import read_mask
from colortrack.tasks.points import Keypoints, PointConfig

BADJA_ALPHAS = (0.1, 0.2)
BADJA = KeypointBenchmark(
    joints=BADJA_JOINTS,
    alphas=BADJA_ALPHAS,
    pooled=True,
    protocol=(
        "PCK in percent over every scored (frame, joint); size sqrt(area of the frame's ground-truth mask); "
        "first annotated frame's visible joints propagated; later annotated frames scored; invisible joints "
        "not scored; lost = incorrect"
    ),
)


def find_badja_annotations(folder: str | os.PathLike, names: list[str] | None = None) -> list[Path]:
    """``<sequence>.json`` files of ``folder`` (sorted), or those of ``names`` in that order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such annotations folder")
    if names is None:
        paths = sorted(folder.glob("*.json"))
        if not paths:
            raise InputError(folder, "has no BADJA <sequence>.json files")
        return paths
    missing = [name for name in names if not (folder / f"{name}.json").is_file()]
    if missing:
        raise InputError(folder, f"has no BADJA annotations for {', '.join(missing)}")
    return [folder / f"{name}.json" for name in names]


def badja_clips(root: str | os.PathLike, annotation_paths: list[Path], resolution: str = "480p") -> list[KeypointClip]:
    """One clip per annotation file, its sequence read from the DAVIS ``root`` (file name = sequence)."""
    dataset = DavisDataset(root, resolution=resolution, sequences=[path.stem for path in annotation_paths])
    return [badja_clip(sequence, path) for sequence, path in zip(dataset.sequences, annotation_paths)]


def badja_clip(sequence: DavisSequence, annotation_path: Path) -> KeypointClip:
    height, width = sequence.size
    annotations = read_badja(annotation_path, height, width)
    last = annotations.frames[-1]
    if last >= len(sequence):
        raise InputError(annotation_path, f"annotates frame {last} but {sequence.name} has {len(sequence)} frames")
    start = annotations.frames[0]
    tracked = np.flatnonzero(annotations.visible[0])
    if not len(tracked):
        raise InputError(annotation_path, f"no joint is visible in the first annotated frame ({start})")
    keypoints = Keypoints(tuple(BADJA_JOINTS[k] for k in tracked), annotations.xy[0, tracked])
    num_frames = len(sequence) - start
    gt = np.full((num_frames, len(tracked), 2), np.nan, np.float32)
    size = np.zeros(num_frames)
    hidden = np.zeros((num_frames, len(tracked)), bool)
    for frame, xy, visible in zip(annotations.frames, annotations.xy, annotations.visible):
        gt[frame - start] = xy[tracked]
        hidden[frame - start] = ~visible[tracked]
        size[frame - start] = silhouette_size(read_mask(sequence.mask_paths[frame], size=(height, width)))
    info = {"first_frame": start, "scored_frames": len(annotations.frames) - 1, "joints": len(tracked)}
    return KeypointClip(sequence.name, sequence.frame_paths[start:], keypoints, gt, size, hidden, info)


def evaluate_badja(
    clips: list[KeypointClip], propagator: Propagator, config: PointConfig, settings: dict, out_dir: Path, progress: bool = True
) -> dict:
    """Writes ``out_dir/<sequence>/keypoints.json`` (from the first annotated frame on),
    ``results.json`` (PCK@0.1 and @0.2 overall, per sequence, per joint) and ``contact_sheet.png``;
    finished sequences of an identical earlier run are not tracked again."""
    return evaluate_keypoints(clips, BADJA, propagator, config, settings, out_dir, progress)


def run_badja_eval(
    root, annotations, resolution: str, clips: list[KeypointClip], tracker, out_dir: Path, progress: bool = True
) -> dict:
    """``colortrack eval badja``: :func:`evaluate_badja` with a :class:`colortrack.Tracker`'s
    method, preset and settings recorded as the folder's configuration."""
    settings = {
        "method": tracker.method,
        "preset": tracker.preset,
        "config": {
            "root": str(root),
            "annotations": str(annotations),
            "resolution": resolution,
            "track": tracker.config.to_dict(),
            "points": tracker.points.to_dict(),
        },
    }
    return evaluate_badja(clips, tracker.propagator, tracker.points, settings, Path(out_dir), progress)


__all__ = ["BADJA", "badja_clip", "badja_clips", "evaluate_badja", "find_badja_annotations", "run_badja_eval"]
