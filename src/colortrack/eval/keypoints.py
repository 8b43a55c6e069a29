"""The keypoint-evaluation core shared by JHMDB (:mod:`colortrack.eval.jhmdb`) and BADJA
(:mod:`colortrack.eval.badja`): track each clip's start points, score PCK, write the results.

A benchmark turns its files into :class:`KeypointClip` items (frames, start points, ground truth
and the per-frame size PCK scales with); :func:`evaluate_keypoints` does the rest:

* ``out_dir/config.json``: the settings; a folder holding another configuration's results is refused;
* ``out_dir/<clip>/keypoints.json`` and ``out_dir/progress/<clip>.json`` per finished clip: a re-run
  scores finished clips from their files instead of tracking them again (resume);
* ``out_dir/results.json``: PCK overall, per clip and per joint, seconds per frame;
* ``out_dir/contact_sheet.png``: predicted against true joints on a few scored frames per clip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from colortrack.core.tracker import Propagator
from colortrack.errors import InputError
from colortrack.eval.metrics.pck import PCKCounts, format_pck_table, pck_counts
from colortrack.io.atomic import atomic_write, atomic_write_json
from colortrack.io.keypoints import read_track_json, write_track_json
from colortrack.io.runs import RunFolder
from colortrack.io.video import read_image
from colortrack.scale.ranks import Ranks
from colortrack.scale.share import FAILED_DIR, run_shared
from colortrack.tasks.points import Keypoints, PointConfig, collect, iter_points

SHEET_FRAMES = 6  # scored frames per clip on the contact sheet
SHEET_HEIGHT = 240  # rows of each thumbnail
TRUE_COLOR, PREDICTED_COLOR, LOST_COLOR = (60, 220, 60), (235, 40, 40), (250, 200, 0)


@dataclass(frozen=True)
class KeypointClip:
    """One clip to evaluate.

    frame_paths: the T frames tracked, in order; the first carries the start points.
    keypoints: the P start points (names are joint names of the benchmark).
    gt: (T, P, 2) true xy of the tracked points, NaN where a joint is not scored (not annotated,
    invisible); frame 0 is never scored. size: (T,) the length alpha multiplies in each frame, or
    None for JHMDB's person size. hidden: (T, P) bool, where the truth says a tracked point is
    not visible (occluded, out of view), or None when the benchmark marks none. info: extra
    columns for the clip's row in results.json.
    """

    name: str
    frame_paths: list[Path]
    keypoints: Keypoints
    gt: np.ndarray
    size: np.ndarray | None = None
    hidden: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def frames(self) -> Iterator[np.ndarray]:
        for path in self.frame_paths:
            yield read_image(path)


@dataclass(frozen=True)
class KeypointBenchmark:
    """How a benchmark reports: its joints (the per-joint table's rows), whether the headline PCK
    pools every (frame, joint) pair or averages joints, and its protocol in one line."""

    joints: tuple[str, ...]
    alphas: tuple[float, ...]
    pooled: bool
    protocol: str


@dataclass(frozen=True)
class ClipRun:
    name: str
    frames: int
    seconds: float


def evaluate_keypoints(
    clips: list[KeypointClip],
    benchmark: KeypointBenchmark,
    propagator: Propagator,
    config: PointConfig,
    settings: dict,
    out_dir: Path,
    progress: bool = True,
    ranks: Ranks | None = None,
) -> dict | None:
    """Track, score and write every clip (see the module doc); returns the results dict.
    ranks: the clips are shared between the ranks of a torchrun job (as in
    :func:`colortrack.eval.davis.evaluate_davis`); rank 0 scores and returns, the others None."""
    RunFolder.open(out_dir, settings).claim()
    failures = run_shared(
        clips, lambda clip: _load_finished(out_dir, clip) or _track_clip(clip, propagator, config, out_dir),
        lambda clip: clip.name, out_dir, ranks, progress, unit="clip",
    )
    if ranks is not None and not ranks.primary:
        return None
    failed = {failure.name for failure in failures}
    if len(failed) == len(clips):
        raise InputError(out_dir / FAILED_DIR, "every clip failed (the records there say why)")
    clips = [clip for clip in clips if clip.name not in failed]
    rows, total = [], _zero_counts(benchmark)
    for clip in clips:
        run = _load_finished(out_dir, clip)
        _, pred, _, reported = read_track_json(out_dir / clip.name / "keypoints.json")
        counts = _to_benchmark_joints(pck_counts(pred, clip.gt, benchmark.alphas, size=clip.size), clip, benchmark)
        total = total + counts
        lost = lost_counts(clip, reported)
        rows.append({"clip": clip.name, **clip.info, "frames": run.frames, "seconds": run.seconds, **_headline(counts, benchmark), "lost": lost})
    results = total.as_dict(benchmark.joints, pooled=benchmark.pooled)
    results["lost"] = {key: sum(row["lost"][key] for row in rows) for key in rows[0]["lost"]} if rows else {}
    results["clips"] = rows
    results["seconds_per_frame"] = sum(row["seconds"] for row in rows) / max(sum(row["frames"] for row in rows), 1)
    results["protocol"] = benchmark.protocol
    results.update(settings)
    if failures:
        results["failed"] = [asdict(failure) for failure in failures]
    atomic_write_json(out_dir / "results.json", results)
    write_contact_sheet(out_dir / "contact_sheet.png", clips, out_dir)
    return results


def lost_counts(clip: KeypointClip, reported: np.ndarray) -> dict:
    """How often the tracker reported a point lost ((T, P) ``reported`` visibility) on the frames
    the truth scores (visible there) and, where the benchmark marks them, on frames where the truth
    says the point is hidden: ``{"visible": n, "visible_lost": n, "hidden": n, "hidden_lost": n}``
    (frame 0 excluded)."""
    scored = np.isfinite(clip.gt).all(axis=2)[1:]
    hidden = clip.hidden[1:] if clip.hidden is not None else np.zeros_like(scored)
    lost = ~reported[1:]
    return {
        "visible": int(scored.sum()),
        "visible_lost": int((scored & lost).sum()),
        "hidden": int(hidden.sum()),
        "hidden_lost": int((hidden & lost).sum()),
    }


def _headline(counts: PCKCounts, benchmark: KeypointBenchmark) -> dict:
    return {key: value for key, value in counts.as_dict(pooled=benchmark.pooled).items() if key != "per_joint"}


def _zero_counts(benchmark: KeypointBenchmark) -> PCKCounts:
    joints, alphas = len(benchmark.joints), benchmark.alphas
    return PCKCounts(alphas, np.zeros((len(alphas), joints), np.int64), np.zeros(joints, np.int64))


def _to_benchmark_joints(counts: PCKCounts, clip: KeypointClip, benchmark: KeypointBenchmark) -> PCKCounts:
    """A clip's counts (over its tracked points) placed in the rows of the benchmark's joints."""
    placed = _zero_counts(benchmark)
    index = [benchmark.joints.index(name) for name in clip.keypoints.names]
    placed.correct[:, index] = counts.correct
    placed.total[index] = counts.total
    return placed


def _track_clip(clip: KeypointClip, propagator: Propagator, config: PointConfig, out_dir: Path) -> ClipRun:
    start = time.perf_counter()
    track = collect(clip.keypoints, list(iter_points(propagator, clip.frames(), clip.keypoints, config)))
    run = ClipRun(clip.name, track.num_frames, time.perf_counter() - start)
    write_track_json(out_dir / clip.name / "keypoints.json", track)
    atomic_write_json(_progress_file(out_dir, clip), asdict(run))
    return run


def _load_finished(out_dir: Path, clip: KeypointClip) -> ClipRun | None:
    path = _progress_file(out_dir, clip)
    if not path.is_file() or not (out_dir / clip.name / "keypoints.json").is_file():
        return None
    run = ClipRun(**json.loads(path.read_text()))
    return run if run.frames == len(clip.frame_paths) else None


def _progress_file(out_dir: Path, clip: KeypointClip) -> Path:
    return out_dir / "progress" / f"{clip.name}.json"


def format_results(results: dict, label: str = "clip") -> str:
    """The clip table with the overall line, then the per-joint table (joints never scored left out)."""
    alphas = tuple(float(key.split("@")[1]) for key in results if key.startswith("PCK@"))
    rows = [(clip["clip"], clip) for clip in results["clips"]] + [("Overall", results)]
    clips = format_pck_table(rows, alphas, label=label)
    scored = [(name, joint) for name, joint in results["per_joint"].items() if joint.get("scored", 1)]
    joints = format_pck_table(scored, alphas, label="joint")
    return f"{clips}\n{_lost_line(results['lost'])}\n\n{joints}"


def _lost_line(lost: dict) -> str:
    line = f"reported lost: {lost['visible_lost']} of {lost['visible']} scored joint-frames"
    if lost["hidden"]:
        line += f", {lost['hidden_lost']} of {lost['hidden']} where the truth says hidden"
    return line


def write_contact_sheet(path: Path, clips: list[KeypointClip], out_dir: Path) -> None:
    """One row per clip of up to SHEET_FRAMES scored frames: true joints (green rings), predicted
    ones (red dots) joined to their truth, lost ones (a yellow cross on the truth)."""
    rows = []
    for clip in clips:
        _, pred, _, _ = read_track_json(out_dir / clip.name / "keypoints.json")
        tiles = [_sheet_tile(clip, pred, t) for t in _sheet_frames(clip)]
        if tiles:
            rows.append(np.concatenate(tiles, axis=1))
    if not rows:
        return
    width = max(row.shape[1] for row in rows)
    sheet = np.concatenate([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in rows], axis=0)
    with atomic_write(path) as temporary:
        cv2.imwrite(str(temporary), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def _sheet_frames(clip: KeypointClip) -> list[int]:
    scored = [t for t in range(1, len(clip.gt)) if np.isfinite(clip.gt[t]).all(axis=1).any()]
    picks = np.linspace(0, len(scored) - 1, min(SHEET_FRAMES, len(scored))).round().astype(int) if scored else []
    return [scored[k] for k in sorted(set(picks))]


def _sheet_tile(clip: KeypointClip, pred: np.ndarray, t: int) -> np.ndarray:
    frame = read_image(clip.frame_paths[t])
    scale = SHEET_HEIGHT / frame.shape[0]
    tile = cv2.resize(frame, (round(frame.shape[1] * scale), SHEET_HEIGHT), interpolation=cv2.INTER_AREA)
    for truth, guess in zip(clip.gt[t] * scale, pred[t] * scale):
        if not np.isfinite(truth).all():
            continue
        centre = tuple(int(v) for v in np.rint(truth))
        if np.isfinite(guess).all():
            cv2.line(tile, centre, tuple(int(v) for v in np.rint(guess)), (255, 255, 255), 1, cv2.LINE_AA)
            cv2.circle(tile, tuple(int(v) for v in np.rint(guess)), 3, PREDICTED_COLOR, -1, cv2.LINE_AA)
        else:
            cv2.drawMarker(tile, centre, LOST_COLOR, cv2.MARKER_TILTED_CROSS, 9, 2)
        cv2.circle(tile, centre, 4, TRUE_COLOR, 1, cv2.LINE_AA)
    text = f"{clip.name}  {clip.frame_paths[t].stem}"
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile
