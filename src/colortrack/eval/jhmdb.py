"""JHMDB keypoint evaluation: propagate each clip's frame-0 joints, PCK@0.1..0.5 (see
:mod:`colortrack.eval.metrics.pck` for the protocol)."""

from __future__ import annotations

from pathlib import Path

from colortrack.core.tracker import Propagator
from colortrack.errors import InputError
from colortrack.eval.keypoints import KeypointBenchmark, KeypointClip, evaluate_keypoints
from colortrack.eval.metrics.pck import PCK_ALPHAS
from colortrack.io.jhmdb import JhmdbClip
from colortrack.io.keypoints import JHMDB_JOINTS, jhmdb_keypoints, read_jhmdb_joints
from colortrack.io.video import VideoReader
from colortrack.scale.ranks import Ranks
from colortrack.tasks.points import PointConfig, clamp_to_frame

JHMDB = KeypointBenchmark(
    joints=JHMDB_JOINTS,
    alphas=PCK_ALPHAS,
    pooled=False,
    protocol="PCK in percent; size 0.6 x diagonal of the ground-truth joints' box; frame 0 excluded; lost = incorrect",
)


def jhmdb_clip(clip: JhmdbClip) -> KeypointClip:
    """A clip's frames and joints; a frame-0 joint outside the frame (JHMDB annotates cut-off limbs)
    starts from the nearest pixel inside it and is listed in ``started_outside``."""
    reader = VideoReader(clip.frames_dir)
    gt = read_jhmdb_joints(clip.joints_path)
    if len(gt) != reader.info.num_frames:
        raise InputError(clip.joints_path, f"has joints for {len(gt)} frames but {clip.frames_dir} has {reader.info.num_frames}")
    keypoints, moved = clamp_to_frame(jhmdb_keypoints(gt[0]), reader.info.height, reader.info.width)
    started_outside = [name for name, outside in zip(keypoints.names, moved) if outside]
    info = {"action": clip.action, "started_outside": started_outside}
    return KeypointClip(clip.name, reader.frame_paths, keypoints, gt, info=info)


def evaluate_jhmdb(
    clips: list[JhmdbClip],
    propagator: Propagator,
    config: PointConfig,
    settings: dict,
    out_dir: Path,
    progress: bool = True,
    ranks: Ranks | None = None,
) -> dict | None:
    """Writes ``out_dir/<clip>/keypoints.json``, ``results.json`` (PCK overall, per clip, per joint)
    and ``contact_sheet.png``; finished clips of an identical earlier run are not tracked again.
    ranks: share the clips between torchrun ranks (:func:`evaluate_keypoints`)."""
    keypoint_clips = [jhmdb_clip(clip) for clip in clips]
    return evaluate_keypoints(keypoint_clips, JHMDB, propagator, config, settings, out_dir, progress, ranks)


def run_jhmdb_eval(clips: list[JhmdbClip], root, tracker, out_dir: Path, progress: bool = True, ranks: Ranks | None = None) -> dict | None:
    """``colortrack eval jhmdb``: :func:`evaluate_jhmdb` with a :class:`colortrack.Tracker`'s
    method, preset and settings recorded as the folder's configuration (None on a torchrun rank
    other than the first)."""
    settings = {
        "method": tracker.method,
        "preset": tracker.preset,
        "config": {"root": str(root), "track": tracker.config.to_dict(), "points": tracker.points.to_dict()},
    }
    return evaluate_jhmdb(clips, tracker.propagator, tracker.points, settings, Path(out_dir), progress, ranks)
