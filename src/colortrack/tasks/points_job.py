"""The keypoint job behind ``colortrack track --points``: a video and first-frame points in, tracked points and an overlay out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from colortrack.io.keypoints import check_inside, read_points, read_track_json, write_track_json
from colortrack.io.video import VideoReader, VideoWriter
from colortrack.tasks.masks import by_frame, check_frame_index, keyframe_fingerprints, with_frames
from colortrack.tasks.points import Keypoints, PointConfig, collect, iter_keyframe_points, iter_points, point_sigma
from colortrack.io.overlay import draw_points
from colortrack.io.runs import RunFolder, input_fingerprint
from colortrack.io.streams import NoWriter
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
    points_path: Path | Mapping[int, Path],
    out_dir: Path,
    propagator: Propagator,
    settings: dict,
    config: PointConfig,
    overlay: bool = True,
    progress: bool = True,
) -> PointsOutput:
    """Writes ``out_dir/keypoints.json``, ``out_dir/overlay.mp4`` (skeleton drawn) and ``out_dir/config.json``.

    points_path: the first frame's points, or ``{frame index: points file}`` of one or more
    keyframes with the same names (:func:`colortrack.tasks.points.iter_keyframe_points`; the video
    is then held in memory).

    Like :func:`colortrack.tasks.masks.track_video`, a re-run into a folder that holds the complete
    outputs of an identical run (same ``config.json``) does nothing; any other re-run starts clean.
    """
    reader = VideoReader(video_path)
    keyframe_paths = by_frame(points_path)
    keyframes = {index: _read_keyframe(path, index, reader) for index, path in keyframe_paths.items()}
    keypoints = keyframes[min(keyframes)]
    sigma = point_sigma(propagator, (reader.info.height, reader.info.width), config)
    inputs = {"video": input_fingerprint(reader), **keyframe_fingerprints(keyframe_paths, "points")}
    run = RunFolder.open(out_dir, {**settings, "sigma_pixels": round(sigma, 4), "inputs": inputs})
    out_dir = run.path
    keypoints_path = out_dir / "keypoints.json"
    overlay_path = out_dir / "overlay.mp4" if overlay else None
    if run.finished([keypoints_path] + [overlay_path] * overlay):
        _, _, _, visible = read_track_json(keypoints_path)
        return PointsOutput(keypoints_path, overlay_path, len(visible), int((~visible).sum()), skipped=True)
    run.start_clean([keypoints_path, out_dir / "overlay.mp4"])
    points = with_frames(
        reader,
        keyframes,
        lambda frames, first: iter_points(propagator, frames, first, config),
        lambda frames, given: iter_keyframe_points(propagator, frames, given, config),
    )
    bar = tqdm(points, total=reader.info.num_frames, desc="tracking", unit="frame", disable=not progress)
    decoded = []
    with VideoWriter(overlay_path, reader.info.fps) if overlay_path else NoWriter() as writer:
        for frame, frame_points in bar:
            decoded.append(frame_points)
            writer.write(draw_points(frame, frame_points.xy, frame_points.visible, list(keypoints.edges)))
    track = collect(keypoints, decoded)
    write_track_json(keypoints_path, track)
    return PointsOutput(keypoints_path, overlay_path, track.num_frames, int((~track.visible).sum()))


def _read_keyframe(path: Path, index: int, reader: VideoReader) -> Keypoints:
    keypoints = read_points(path)
    check_inside(keypoints, reader.info.height, reader.info.width, path)
    check_frame_index(path, index, reader.info.num_frames)
    return keypoints
