"""The demo's page: one self-contained HTML file (the report's style, images inline) with, per task,
the scores of every method from this run, an animation of the whole clip and a contact sheet."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

from colortrack.demo.scene import ATTRIBUTION, Scene
from colortrack.eval.report.page import CSS, esc
from colortrack.eval.report.plots import jpeg_uri, labelled_tile, tile_grid, webp_animation_uri

SHEET_FRAMES = 4
SHEET_TILE_WIDTH = 240
ANIMATION_TILE_WIDTH = 240
STILL_TILE_WIDTH = 320
PAGE_CSS = CSS + "img.anim{max-width:100%;display:block;margin:4px 0 8px}td.worse{color:#888}\n"


def score_table(result) -> str:
    """Methods as rows, metrics as columns; the best value of each column (lowest for outliers) in green."""
    head = "<tr><th>method</th>" + "".join(f"<th>{esc(metric)}</th>" for metric in result.metrics) + "<th>seconds</th></tr>"
    best = {}
    for metric in result.metrics:
        values = [scores[metric] for scores in result.scores.values() if scores[metric] is not None]
        best[metric] = (min if "outlier" in metric else max)(values) if values else None
    rows = []
    for name, scores in result.scores.items():
        cells = []
        for metric in result.metrics:
            value = scores[metric]
            mark = " class='best'" if value is not None and value == best[metric] and len(result.scores) > 1 else ""
            cells.append(f"<td{mark} data-v='{value}'>{'&ndash;' if value is None else f'{value:.1f}'}</td>")
        rows.append(f"<tr><td>{esc(name)}</td>{''.join(cells)}<td>{result.seconds.get(name, float('nan')):.1f}</td></tr>")
    return f"<table class='scores'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def contact_sheet(views: dict[str, np.ndarray], frames: int = SHEET_FRAMES, width: int = SHEET_TILE_WIDTH) -> np.ndarray:
    """Rows: ``frames`` frames spread over the clip; columns: the views, labelled."""
    count = len(next(iter(views.values())))
    picks = sorted({int(round(x)) for x in np.linspace(count / frames, count - 1, frames)})
    return tile_grid([[labelled_tile(view[t], f"{caption[:24]}  t={t}", width) for caption, view in views.items()] for t in picks])


def animation(views: dict[str, np.ndarray], fps: float, width: int = ANIMATION_TILE_WIDTH) -> str:
    """The views side by side, every frame, as an animated WebP data URI."""
    count = len(next(iter(views.values())))
    frames = [tile_grid([[labelled_tile(view[t], caption[:24], width) for caption, view in views.items()]]) for t in range(count)]
    return webp_animation_uri(frames, fps)


def still(results: list, index: int, width: int = STILL_TILE_WIDTH) -> np.ndarray:
    """Frame ``index`` of each task's learned method and flow baseline (the frame and its features
    for the embedding), in two rows: the README's picture of the demo."""
    tiles = []
    for result in results:
        names = list(result.views)[-2:] if not result.scores else [name for name in result.scores][:1] + ["flow"]
        tiles += [labelled_tile(result.views[name][index], f"{result.title.split()[0]}: {name}", width) for name in names]
    columns = len(tiles) // 2
    return tile_grid([tiles[:columns], tiles[columns:]])


def task_section(result, fps: float) -> str:
    slug = result.title.split()[0]
    parts = [f"<h2 id='{esc(slug)}'>{esc(result.title)}</h2>", f"<p class='note'>{esc(result.note)}</p>"]
    if result.scores:
        parts.append(score_table(result))
    parts.append(f"<img class='anim' alt='{esc(result.title)} (animation)' src='{animation(result.views, fps)}'>")
    parts.append(f"<img class='sheet' alt='{esc(result.title)} (contact sheet)' src='{jpeg_uri(contact_sheet(result.views))}'>")
    return "\n".join(parts)


def write_page(out: Path, scene: Scene, results: list, seconds: dict[str, float]) -> Path:
    """Write ``out`` (HTML) and return its path; ``seconds``: the run's ``{"wall": s, "cpu": s}`` so far."""
    from colortrack.io.atomic import atomic_write_text

    video = scene.video
    height, width = video.frames.shape[1:3]
    summary = "".join(f"<li>{esc(result.summary())}</li>" for result in results if result.scores)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>colortrack demo</title>",
        f"<style>{PAGE_CSS}</style></head><body>",
        "<h1>colortrack demo: tracking and colorization learned by colorizing video</h1>",
        f"<p class='note'>A {video.num_frames}-frame {width}x{height} scene made from photographs, with exact ground truth: "
        "a launch pad far away and a wooden table near the camera pan at different speeds (parallax), while an astronaut, "
        "a ball and a cat move, turn, bend, occlude each other, pass behind the table, and the ball leaves the frame "
        "partly and comes back. Every method below ran in this run on the same frames; the shipped model was never "
        f"trained on this scene. {esc(ATTRIBUTION)}</p>",
        f"<ul>{summary}</ul>",
        f"<p class='note'>Whole run before this page: {seconds['wall']:.0f} s ({seconds['cpu']:.0f} s of CPU time) on "
        f"{esc(platform.machine())} ({esc(platform.processor() or platform.system())}), {os.cpu_count()} cores. "
        "Scores, settings and the time of each stage: scores.json, config.json and timing.json next to this page.</p>",
    ]
    parts += [task_section(result, video.fps) for result in results]
    parts.append("</body></html>")
    atomic_write_text(out, "\n".join(parts))
    return out
