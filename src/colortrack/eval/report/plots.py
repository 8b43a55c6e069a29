"""The report's figures as data URIs: J over time, J per attribute, odds ratios, contact sheets."""

from __future__ import annotations

import base64
import io

import numpy as np

from colortrack.eval.report.runs import EvalRun
from colortrack.eval.report.stats import TIME_BINS, OddsRatio, attribute_scores, time_profile

SHEET_FRAMES = 4
SHEET_TILE_WIDTH = 200


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def jpeg_uri(image: np.ndarray, quality: int = 70) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def webp_animation_uri(frames: list[np.ndarray], fps: float, quality: int = 60) -> str:
    """Frames (H, W, 3) uint8 as a looping animated WebP data URI (plays in any current browser).
    Encoder effort 2 of 6: half the time of 4 for about 6% more bytes on the demo's animations."""
    from PIL import Image

    buffer = io.BytesIO()
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(buffer, format="WEBP", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0, quality=quality, method=2)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_time(runs: list[EvalRun], names: list[str], bins: int = TIME_BINS) -> str:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    centers = (np.arange(bins) + 0.5) / bins
    for k, run in enumerate(runs):
        profile = time_profile([run.frame_j[name] for name in names], bins)
        finite = np.isfinite(profile)  # short sequences leave some bins empty
        axes.plot(centers[finite], 100 * profile[finite], marker="o", color=f"C{k}", label=run.label)
    axes.set_xlabel("normalised time in the sequence")
    axes.set_ylabel("mean J (%)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(f"J over time ({len(names)} sequences, {bins} bins)")
    return _png_uri(figure)


def plot_attributes(runs: list[EvalRun], names: list[str], attributes: dict[str, list[str]]) -> str | None:
    labels, counts, values, base = attribute_scores(runs, names, attributes)
    if not labels:
        return None
    plt = _pyplot()
    shown = [run for run in runs if base is None or run.label != base]
    figure, axes = plt.subplots(figsize=(max(6.4, 0.55 * len(labels) * max(len(shown), 1) ** 0.5 + 2), 3.8))
    width = 0.8 / max(len(shown), 1)
    x = np.arange(len(labels))
    for k, run in enumerate(shown):
        color = f"C{runs.index(run)}"
        axes.bar(x + (k - (len(shown) - 1) / 2) * width, values[run.label], width, color=color, label=run.label)
    axes.set_xticks(x, [f"{a}\n({n})" for a, n in zip(labels, counts)], fontsize=8)
    if base is not None:
        axes.axhline(0, color="black", linewidth=0.8)
        axes.set_ylabel(f"J minus J of {base} (points)")
    else:
        axes.set_ylabel("mean J (%)")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title("J per DAVIS attribute (number of sequences)")
    return _png_uri(figure)


def plot_failures(runs: list[EvalRun], stats: dict[str, OddsRatio]) -> str | None:
    shown = [run for run in runs if run.label in stats]
    if not shown:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 0.5 * len(shown) + 1.4))
    axes.set_title("tracking failure vs colorization failure")
    for k, run in enumerate(shown):
        s = stats[run.label]
        xerr = [[s.ratio - s.low], [s.high - s.ratio]]
        axes.errorbar([s.ratio], [k], xerr=xerr, fmt="o", capsize=4, color=f"C{runs.index(run)}")
    axes.axvline(1, color="gray", linestyle="--", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_yticks(range(len(shown)), [run.label for run in shown], fontsize=8)
    axes.set_ylim(-0.7, len(shown) - 0.3)
    axes.set_xlabel("odds ratio (tracking failure vs colorization failure), 95% CI")
    return _png_uri(figure)


def labelled_tile(image: np.ndarray, caption: str, width: int = SHEET_TILE_WIDTH) -> np.ndarray:
    """``image`` (H, W, 3) uint8 resized to ``width`` pixels wide, ``caption`` written at its top left."""
    import cv2

    h, w = image.shape[:2]
    tile = cv2.resize(image, (width, max(1, int(round(h * width / w)))), interpolation=cv2.INTER_AREA)
    (text_width, text_height), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    band = tile[: 14 + baseline + 2, : text_width + 8]
    band[:] = band // 3  # a dark band keeps the white caption readable on any image
    cv2.putText(tile, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def tile_grid(rows: list[list[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Rows of equally sized tiles (h, w, 3) uint8 joined with white ``gap``-pixel lines."""
    joined = []
    for tiles in rows:
        spaced = [part for tile in tiles for part in (tile, np.full((tile.shape[0], gap, 3), 255, np.uint8))]
        joined.append(np.concatenate(spaced[:-1], axis=1))
        joined.append(np.full((gap, joined[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(joined[:-1], axis=0)


def contact_sheet(runs: list[EvalRun], sequence, frames: int = SHEET_FRAMES, tile_width: int = SHEET_TILE_WIDTH) -> np.ndarray:
    """Rows: a few frames; columns: ground truth then each method, overlays, labelled."""
    from colortrack.io.masks import read_mask
    from colortrack.io.video import read_image
    from colortrack.io.overlay import overlay_masks

    count = len(sequence)
    picks = sorted({int(round(x)) for x in np.linspace(count / frames, count - 1, frames)}) if count > 1 else [0]
    rows = []
    for t in picks:
        rgb = read_image(sequence.frame_paths[t])
        h, w = rgb.shape[:2]
        predictions = [(run.label, run.path / sequence.name / sequence.output_name(t)) for run in runs]
        tiles = []
        for caption, path in [("ground truth", sequence.mask_path(t)), *predictions]:
            ids = read_mask(path, size=(h, w)) if path is not None and path.is_file() else np.zeros((h, w), np.uint8)
            tiles.append(labelled_tile(overlay_masks(rgb, ids), f"{caption[:24]}  t={t}", tile_width))
        rows.append(tiles)
    return tile_grid(rows)
