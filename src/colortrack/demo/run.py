"""``colortrack demo``: every capability on the demo scene (:mod:`colortrack.demo.scene`), each
beside its baselines from the same run, scored against the scene's exact ground truth and shown
on one self-contained HTML page.

* masks: the chosen method (the shipped model by default) vs identity and DIS flow, from the
  first frame's mask, then again from two keyframes (first and last frame); J&F (DAVIS protocol).
* keypoints: the same methods from the first frame's points; PCK@0.1 and @0.2 of each object's
  size, ``sqrt`` of its visible area in that frame (as BADJA), over the frames where a point is
  visible.
* colorization of the gray video from its first frame in colour: the shipped colorizer (the
  ``colortrack colorize`` defaults) vs DIS flow (the reference's colours warped frame by frame)
  and copying the reference; PSNR and % of pixels off by more than 16 levels, frame 0 excluded.
* the PCA embedding video of ``colortrack embed`` (the shipped model's features).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from colortrack.demo.scene import SCENE_FRAMES, SCENE_SIZE, Scene, render_scene, scene_size
from colortrack.errors import InputError

BASELINES = ("identity", "flow")
COLOR_BASELINES = ("flow", "copy")
PCK_ALPHAS = (0.1, 0.2)
SAMPLES_PER_FRAME = 256
STILL_AT = 0.55  # of the clip: the cat in front of the astronaut, the ball back in the frame


@dataclass(frozen=True)
class DemoConfig:
    """What one demo run does: the scene's size (H, W) and length, the keyframes of the second mask
    run, the embedding size of colorization and of the embedding video (``--short-side``, which
    also sets the tracker's), the tracker's settings (``colortrack track``'s) and the colorizer's."""

    size: tuple[int, int] = SCENE_SIZE
    frames: int = SCENE_FRAMES
    keyframes: tuple[int, ...] = (0, -1)  # -1: the last frame
    # The colorizer's and the embedding's input size; None: the scene's own height for colour (its
    # detail is capped by the cell size: native beats 240 rows on DAVIS too, docs/demo.md), the
    # 'default' preset's for the embedding.
    short_side: int | None = None
    tracker: dict = field(default_factory=dict)
    colorizer: dict = field(default_factory=dict)


@dataclass
class TaskResult:
    """One task's scores per method (``{method: {metric: value}}``, the first method the learned
    one), seconds per method and the frames to show: ``views`` ``{caption: (T, H, W, 3) uint8}``."""

    title: str
    metrics: tuple[str, ...]
    scores: dict[str, dict[str, float]]
    seconds: dict[str, float]
    views: dict[str, np.ndarray]
    note: str = ""

    def summary(self) -> str:
        """One line: each method's headline metric (the title alone for a task without scores)."""
        if not self.metrics:
            return self.title
        key = self.metrics[0]
        return f"{self.title}: " + ", ".join(f"{name} {value[key]:.1f}" for name, value in self.scores.items()) + f" ({key})"


def run_demo(args: argparse.Namespace) -> int:
    from colortrack.cli.options import tracker_of

    if args.frames < 2 or args.scene_height < 32:
        raise InputError("--frames/--scene-height", "the scene needs at least 2 frames of at least 32 pixels high")
    config = DemoConfig(size=scene_size(args.scene_height), frames=args.frames, short_side=args.short_side)
    page = run(config, args.out, tracker_of(args), args.device, say=None if args.quiet else print)
    print(f"demo page: {page.resolve()}")
    return 0


def run(config: DemoConfig, out_dir: Path, tracker, device: str = "auto", say=None) -> Path:
    """Render the scene, run every task with ``tracker`` (a :class:`colortrack.Tracker`) and the
    baselines, write ``out_dir``/demo.html, scores.json, config.json, timing.json, still.jpg and
    input/; returns the page. ``say`` (e.g. ``print``) gets a one-line summary per task."""
    from PIL import Image

    from colortrack.demo.page import still, write_page
    from colortrack.io.atomic import atomic_write_json

    clock = Stopwatch()
    say = say or (lambda text: None)
    scene = render_scene(config.size, config.frames)
    write_inputs(scene, out_dir / "input")
    clock.lap("scene")
    config = replace(config, tracker=tracker.settings())
    trackers = {tracker.method: tracker, **{name: _baseline_tracker(name, device) for name in BASELINES}}
    results = []
    for task in (_masks, _keyframe_masks, _points):
        results.append(task(scene, trackers, config))
        say(results[-1].summary())
        clock.lap(results[-1].title)
    colorized, colorizer_settings = _colorize(scene, device, config.short_side)
    config = replace(config, colorizer=colorizer_settings)
    results.append(colorized)
    say(colorized.summary())
    clock.lap(colorized.title)
    results.append(_embedding(scene, device, config.short_side))
    clock.lap(results[-1].title)
    shown = [result for result in results if not result.title.startswith("masks from keyframes")]
    Image.fromarray(still(shown, int(STILL_AT * (config.frames - 1)))).save(out_dir / "still.jpg", quality=85)
    atomic_write_json(out_dir / "config.json", asdict(config))
    atomic_write_json(out_dir / "scores.json", {r.title: {"scores": r.scores, "seconds": r.seconds} for r in results})
    page = write_page(out_dir / "demo.html", scene, results, clock.total())
    clock.lap("page")
    atomic_write_json(out_dir / "timing.json", clock.report())
    return page


class Stopwatch:
    """Wall and CPU seconds (the process's, all threads) of each stage of a run: on a machine
    shared with other jobs the CPU time is what an idle machine would need at most."""

    def __init__(self) -> None:
        self.laps: dict[str, dict[str, float]] = {}
        self._start = self._last = (time.perf_counter(), time.process_time())

    def lap(self, name: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.laps[name] = {"wall": now[0] - self._last[0], "cpu": now[1] - self._last[1]}
        self._last = now

    def total(self) -> dict[str, float]:
        return {"wall": self._last[0] - self._start[0], "cpu": self._last[1] - self._start[1]}

    def report(self) -> dict:
        """``{"stages": {name: {"wall": s, "cpu": s}}, "total": {"wall": s, "cpu": s}}`` (seconds)."""
        return {"stages": self.laps, "total": self.total()}


def write_inputs(scene: Scene, folder: Path) -> None:
    """The scene as ``colortrack track`` / ``colorize`` take it: video.mp4, first_mask.png,
    points.json (frame 0) and reference.png (frame 0 in colour), to try the commands on."""
    from PIL import Image

    from colortrack.io.atomic import atomic_write_text, make_dirs
    from colortrack.io.masks import write_mask
    from colortrack.io.video import write_video

    video = scene.video
    make_dirs(folder)
    write_video(folder / "video.mp4", video.frames, video.fps)
    write_mask(folder / "first_mask.png", video.masks[0])
    points = {name: [float(x), float(y)] for name, (x, y) in zip(scene.names, video.points[0])}
    atomic_write_text(folder / "points.json", json.dumps(points, indent=1))
    Image.fromarray(video.frames[0]).save(folder / "reference.png")


def _baseline_tracker(name: str, device: str):
    from colortrack.api import Tracker

    return Tracker.pretrained(name, device)


def _timed(run):
    start = time.perf_counter()
    value = run()
    return value, time.perf_counter() - start


def _mask_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from colortrack.eval.metrics.davis import evaluate_sequence, summarize

    summary = summarize(evaluate_sequence("demo", predicted, truth))
    return {"J&F": summary.JF_mean, "J": summary.J_mean, "F": summary.F_mean}


def _overlays(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    from colortrack.io.overlay import overlay_masks

    return np.stack([overlay_masks(frame, ids) for frame, ids in zip(frames, masks)])


def _track_all(scene: Scene, trackers: dict, keyframes) -> TaskResult:
    from colortrack.api import collect_masks

    video = scene.video
    scores, seconds, views = {}, {}, {"ground truth": _overlays(video.frames, video.masks)}
    for name, tracker in trackers.items():
        masks, seconds[name] = _timed(lambda: collect_masks(tracker.track_masks(video.frames, keyframes)))
        scores[name] = _mask_scores(masks, video.masks)
        views[name] = _overlays(video.frames, masks)
    return TaskResult("", ("J&F", "J", "F"), scores, seconds, views)


def _masks(scene: Scene, trackers: dict, config: DemoConfig) -> TaskResult:
    result = _track_all(scene, trackers, scene.video.masks[0])
    result.title = "masks from the first frame"
    result.note = "J&F in %, DAVIS protocol (frames 1 .. T-2 scored), masks given on frame 0 only."
    return result


def _keyframe_masks(scene: Scene, trackers: dict, config: DemoConfig) -> TaskResult:
    indices = sorted({index % scene.video.num_frames for index in config.keyframes})
    result = _track_all(scene, trackers, {index: scene.video.masks[index] for index in indices})
    shown = ", ".join(str(index) for index in indices)
    result.title = f"masks from keyframes {shown}"
    result.note = f"J&F in %, frames 1 .. T-2 scored; complete masks given on frames {shown} (Tracker.track_masks with {{frame: mask}})."
    return result


def _point_scores(scene: Scene, predicted: np.ndarray) -> dict[str, float]:
    """PCK per alpha over every visible (frame, point) after frame 0, alpha times sqrt of the
    visible area of the point's object in that frame; then PCK@``PCK_ALPHAS[0]`` of each object's
    points alone (keyed by the object's name)."""
    from colortrack.eval.metrics.pck import PCKCounts, pck_counts, silhouette_size

    video = scene.video
    truth = np.where(video.visible[..., None], video.points, np.nan)
    per_object = {}
    for obj in scene.objects:
        own = video.point_ids == obj.obj_id
        sizes = np.array([silhouette_size(masks == obj.obj_id) for masks in video.masks])
        per_object[obj.name] = pck_counts(predicted[:, own], truth[:, own], PCK_ALPHAS, size=sizes)
    correct = np.concatenate([counts.correct for counts in per_object.values()], axis=1)
    counts = PCKCounts(PCK_ALPHAS, correct, np.concatenate([counts.total for counts in per_object.values()]))
    scores = {f"PCK@{alpha:g}": float(value) for alpha, value in zip(PCK_ALPHAS, counts.pooled())}
    return scores | {name: float(counts.pooled()[0]) for name, counts in per_object.items()}


def _points(scene: Scene, trackers: dict, config: DemoConfig) -> TaskResult:
    from colortrack.api import collect_points
    from colortrack.io.overlay import draw_points

    video = scene.video
    given = dict(zip(scene.names, video.points[0].astype(np.float64)))
    truth = np.stack([draw_points(frame, xy, seen) for frame, xy, seen in zip(video.frames, video.points, video.visible)])
    scores, seconds, views = {}, {}, {"ground truth": truth}
    for name, tracker in trackers.items():
        track, seconds[name] = _timed(lambda: collect_points(tracker.track_points(video.frames, given)))
        xy = np.where(track.visible[..., None], track.xy, np.nan)
        scores[name] = _point_scores(scene, xy)
        views[name] = np.stack([draw_points(frame, p, seen) for frame, p, seen in zip(video.frames, track.xy, track.visible)])
    metrics = tuple(f"PCK@{alpha:g}" for alpha in PCK_ALPHAS) + tuple(obj.name for obj in scene.objects)
    note = (
        f"{len(scene.names)} corners, {len(scene.names) // len(scene.objects)} per object, given on frame 0. PCK in %: a point is correct within "
        "alpha x sqrt(visible area of its object) of the truth (BADJA's size), scored on the frames after 0 where it is "
        f"visible; a point reported lost there counts as wrong. The last columns: PCK@{PCK_ALPHAS[0]:g} of each object's points "
        "(the ball turns 150 degrees in the image plane over the clip, the astronaut's points are hidden by the cat for a while)."
    )
    return TaskResult("keypoints", metrics, scores, seconds, views, note)


def _color_scores(frames: np.ndarray, predicted: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    from colortrack.eval.metrics.color import ColorScores

    scores = ColorScores()
    for t, (pred, truth) in enumerate(zip(predicted, frames)):
        scores.add(pred, truth, masks[t] > 0, scored=t > 0)
    summary = scores.summary()
    return {"PSNR": summary["psnr"], "% outliers": summary["outliers"], "PSNR objects": summary["psnr_inside"]}


def _colorize(scene: Scene, device: str, short_side: int | None) -> tuple[TaskResult, dict]:
    from colortrack.api import Colorizer, collect_colors
    from colortrack.tasks.colorize import to_gray

    video = scene.video
    gray = np.stack([to_gray(frame) for frame in video.frames])
    colorizer = Colorizer.pretrained(device=device, short_side=short_side or 0)  # 0: native
    colorized, model_seconds = _timed(lambda: collect_colors(colorizer.colorize(gray, {0: video.frames[0]})))
    predictions = {"model": (colorized, model_seconds)}
    for name in COLOR_BASELINES:
        predictions[name] = _timed(lambda: _color_baseline(name, video.frames, gray))
    views = {"ground truth": video.frames, "gray input": gray}
    scores, seconds = {}, {}
    for name, (frames, spent) in predictions.items():
        scores[name] = _color_scores(video.frames, frames, video.masks)
        seconds[name] = spent
        views[name] = frames
    note = (
        "The gray video colourized from frame 0 in colour (the model: embedded at the scene's own size). PSNR in dB (mean over frames 1 .. T-1; 'objects': on the "
        "three objects' pixels only); % outliers: pixels whose largest channel error exceeds 16 levels. flow: frame 0's "
        "colours warped along DIS optical flow frame by frame; copy: frame 0's colours at the same pixel."
    )
    result = TaskResult("colorization", ("PSNR", "% outliers", "PSNR objects"), scores, seconds, views, note)
    return result, colorizer.settings()


def _color_baseline(name: str, frames: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """The frames colourized by a baseline of :func:`colortrack.eval.colorize.baseline_ab` from frame 0."""
    import torch

    from colortrack.eval.colorize import baseline_ab
    from colortrack.tasks.colorize import chrominance, compose, lightness

    cpu = torch.device("cpu")
    true_ab = {0: chrominance(frames[0], cpu)}
    predicted = baseline_ab(name, frames, gray, [0], true_ab, None, cpu)
    return np.stack([compose(lightness(frame, cpu), ab) for frame, ab in zip(gray, predicted)])


def _embedding(scene: Scene, device: str, short_side: int | None) -> TaskResult:
    from colortrack.core.tracker import PRESETS, pick_device
    from colortrack.tasks.embed import embedding_tracker, fit_projection, project_frames

    frames = scene.video.frames
    start = time.perf_counter()
    tracker = embedding_tracker(short_side=short_side or PRESETS["default"].short_side, device=pick_device(device))
    projection = fit_projection(tracker, frames, SAMPLES_PER_FRAME)
    pairs = np.stack(list(project_frames(tracker, projection, frames)))
    note = (
        "The shipped model's features of every frame (feature cells at the 'default' preset's size), projected to RGB "
        "by one PCA fitted on all frames (colortrack embed): one embedding keeps one colour over time."
    )
    width = frames.shape[2]
    views = {"frame": pairs[:, :, :width], "model features (PCA)": pairs[:, :, width:]}
    return TaskResult("embedding", (), {}, {"model": time.perf_counter() - start}, views, note)
