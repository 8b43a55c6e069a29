"""The keypoint job behind ``colortrack track --points``: a video and first-frame points in, tracked points and an overlay out."""

from __future__ import annotations

from collections import deque

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from colortrack.io.keypoints import check_inside, read_points, read_track_json, write_track_json
from colortrack.io.video import VideoReader, VideoWriter
from colortrack.tasks.points import PointConfig, collect, iter_points
from colortrack.io.overlay import draw_points
from colortrack.io.runs import RunFolder, input_fingerprint
from colortrack.io.streams import NoWriter, prefetched, remember_all
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

    Like :func:`colortrack.tasks.masks.track_video`, a re-run into a folder that holds the complete
    outputs of an identical run (same ``config.json``) does nothing; any other re-run starts clean.
    """
    reader = VideoReader(video_path)
    keypoints = read_points(points_path)
    check_inside(keypoints, reader.info.height, reader.info.width, points_path)
    run = RunFolder.open(out_dir, {**settings, "inputs": {"video": input_fingerprint(reader), "points": input_fingerprint(points_path)}})
    out_dir = run.path
    keypoints_path = out_dir / "keypoints.json"
    overlay_path = out_dir / "overlay.mp4" if overlay else None
    if run.finished([keypoints_path] + [overlay_path] * overlay):
        _, _, _, visible = read_track_json(keypoints_path)
        return PointsOutput(keypoints_path, overlay_path, len(visible), int((~visible).sum()), skipped=True)
    run.start_clean([keypoints_path, out_dir / "overlay.mp4"])
    pending: deque[np.ndarray] = deque()
    points = iter_points(propagator, remember_all(prefetched(reader), pending), keypoints, config)
    bar = tqdm(points, total=reader.info.num_frames, desc="tracking", unit="frame", disable=not progress)
    decoded = []
    with VideoWriter(overlay_path, reader.info.fps) if overlay_path else NoWriter() as writer:
        for frame_points in bar:
            decoded.append(frame_points)
            writer.write(draw_points(pending.popleft(), frame_points.xy, frame_points.visible, list(keypoints.edges)))
    track = collect(keypoints, decoded)
    write_track_json(keypoints_path, track)
    return PointsOutput(keypoints_path, overlay_path, track.num_frames, int((~track.visible).sum()))
