"""End-to-end keypoint jobs behind the CLI: track a video's first-frame points, evaluate on JHMDB."""

from __future__ import annotations

from collections import deque

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write_json
from colortrack.io.jhmdb import JhmdbClip
from colortrack.io.keypoints import JHMDB_JOINTS, check_inside, jhmdb_keypoints, read_jhmdb_joints, read_points, read_track_json, write_track_json
from colortrack.io.video import VideoReader, VideoWriter
from colortrack.tasks.points import PointConfig, clamp_to_frame, collect, iter_points
from colortrack.eval.metrics.pck import PCK_ALPHAS, PCKCounts, format_pck_table, pck_counts
from colortrack.io.overlay import draw_points
from colortrack.tasks.track_job import (
    _NoWriter,
    _prepare_output,
    _remember_all,
    finished_run,
    input_fingerprint,
    prefetched,
    start_run,
)
from colortrack.core.tracker import Propagator


@dataclass(frozen=True)
class PointsOutput:
    keypoints: Path
    overlay: Path | None
    num_frames: int
    num_lost: int
    skipped: bool = False  # an identical earlier run had already written every output


def track_points_video(
    video_path: Path,
    points_path: Path,
    out_dir: Path,
    propagator: Propagator,
    settings: dict,
    config: PointConfig,
    overlay: bool = True,
    progress: bool = True,
) -> PointsOutput:
    """Writes ``out_dir/keypoints.json``, ``out_dir/overlay.mp4`` (skeleton drawn) and ``out_dir/config.json``.

    Like :func:`colortrack.tasks.track_job.track_video`, a re-run into a folder that holds the complete
    outputs of an identical run (same ``config.json``) does nothing; any other re-run starts clean.
    """
    reader = VideoReader(video_path)
    keypoints = read_points(points_path)
    check_inside(keypoints, reader.info.height, reader.info.width, points_path)
    out_dir = _prepare_output(out_dir)
    keypoints_path = out_dir / "keypoints.json"
    overlay_path = out_dir / "overlay.mp4" if overlay else None
    settings = {**settings, "inputs": {"video": input_fingerprint(reader), "points": input_fingerprint(points_path)}}
    if finished_run(out_dir, settings, [keypoints_path] + [overlay_path] * overlay):
        _, _, _, visible = read_track_json(keypoints_path)
        return PointsOutput(keypoints_path, overlay_path, len(visible), int((~visible).sum()), skipped=True)
    start_run(out_dir, settings, [keypoints_path, out_dir / "overlay.mp4"])
    pending: deque[np.ndarray] = deque()
    points = iter_points(propagator, _remember_all(prefetched(reader), pending), keypoints, config)
    bar = tqdm(points, total=reader.info.num_frames, desc="tracking", unit="frame", disable=not progress)
    decoded = []
    with VideoWriter(overlay_path, reader.info.fps) if overlay_path else _NoWriter() as writer:
        for frame_points in bar:
            decoded.append(frame_points)
            writer.write(draw_points(pending.popleft(), frame_points.xy, frame_points.visible, list(keypoints.edges)))
    track = collect(keypoints, decoded)
    write_track_json(keypoints_path, track)
    return PointsOutput(keypoints_path, overlay_path, track.num_frames, int((~track.visible).sum()))


@dataclass(frozen=True)
class ClipRun:
    name: str
    action: str
    frames: int
    seconds: float
    started_outside: list[str]
    counts: PCKCounts


def evaluate_jhmdb(
    clips: list[JhmdbClip],
    propagator: Propagator,
    config: PointConfig,
    settings: dict,
    out_dir: Path,
    progress: bool = True,
) -> dict:
    """Track each clip's frame-0 joints, write ``out_dir/<clip>/keypoints.json`` and
    ``out_dir/results.json`` (PCK overall, per clip, per joint; see :mod:`colortrack.eval.metrics.pck`).

    JHMDB annotates joints outside the frame (cut-off limbs); such a joint in frame 0 starts from
    the nearest pixel inside the frame, and the clip's ``started_outside`` lists it.
    """
    out_dir = _prepare_output(out_dir)
    runs = [_run_clip(clip, propagator, config, out_dir) for clip in tqdm(clips, desc="clips", unit="clip", disable=not progress)]
    total = runs[0].counts
    for run in runs[1:]:
        total = total + run.counts
    names = JHMDB_JOINTS
    results = total.as_dict(names)
    results["clips"] = [
        {
            "clip": run.name,
            "action": run.action,
            "frames": run.frames,
            "seconds": run.seconds,
            "started_outside": run.started_outside,
            **{key: value for key, value in run.counts.as_dict(names).items() if key != "per_joint"},
        }
        for run in runs
    ]
    frames = sum(run.frames for run in runs)
    results["seconds_per_frame"] = sum(run.seconds for run in runs) / max(frames, 1)
    results["protocol"] = "PCK in percent; size 0.6 x diagonal of the ground-truth joints' box; frame 0 excluded; lost = incorrect"
    results.update(settings)
    atomic_write_json(out_dir / "results.json", results)
    return results


def _run_clip(clip: JhmdbClip, propagator: Propagator, config: PointConfig, out_dir: Path) -> ClipRun:
    reader = VideoReader(clip.frames_dir)
    gt = read_jhmdb_joints(clip.joints_path)
    if len(gt) != reader.info.num_frames:
        raise InputError(clip.joints_path, f"has joints for {len(gt)} frames but {clip.frames_dir} has {reader.info.num_frames}")
    keypoints, moved = clamp_to_frame(jhmdb_keypoints(gt[0]), reader.info.height, reader.info.width)
    start = time.perf_counter()
    track = collect(keypoints, list(iter_points(propagator, reader, keypoints, config)))
    seconds = time.perf_counter() - start
    write_track_json(out_dir / clip.name / "keypoints.json", track)
    started_outside = [name for name, outside in zip(keypoints.names, moved) if outside]
    return ClipRun(clip.name, clip.action, track.num_frames, seconds, started_outside, pck_counts(track.xy, gt, PCK_ALPHAS))


def format_results(results: dict) -> str:
    """The clip table with the overall line, then the per-joint table."""
    rows = [(clip["clip"], clip) for clip in results["clips"]] + [("Overall", results)]
    clips = format_pck_table(rows)
    joints = format_pck_table(list(results["per_joint"].items()), label="joint")
    return f"{clips}\n\n{joints}"
