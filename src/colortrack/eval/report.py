"""``colortrack report``: one self-contained HTML page comparing DAVIS evaluation folders.

Inputs are folders written by ``colortrack eval davis`` (``DIR/<seq>/%05d.png``,
``DIR/results.json``). The page holds, with no network access needed (inline CSS and JS, images
as base64 data URIs):

* a summary table (J&F, J, F, seconds per frame, configuration) per method;
* a sortable per-sequence J / F table, one column group per method;
* J over normalised time (Vondrick et al. Fig. 5): each sequence's scored frames 1 .. T-2 are
  mapped to [0, 1] and put in ``TIME_BINS`` equal bins; per method, the mean J of each bin over
  the sequences (a sequence counts once per bin, its objects averaged);
* J per DAVIS attribute (Fig. 6), from ``db_info.yml``: mean J over the sequences that have the
  attribute, in points relative to the ``flow`` method when one of the inputs is a flow
  evaluation, else absolute;
* tracking failure vs colorization failure (Sec. 4.5), per method. On a subsample of frames
  (every ``color_step``-th frame, first and last excluded as in the J&F protocol), the frame's
  gray version is colourized from frame 0 (the only colour reference) with the method's own
  embedder (a checkpoint's; the training-free gray embedder for identity, flow and color),
  ``reference`` colourization at ``color_height`` pixels high. Colorization error of a frame:
  the mean over pixels of the Euclidean distance between predicted and true Lab ab.
  Tracking failure: the frame's J (mean over objects) < ``fail_j`` (0.5). Colorization failure:
  error above the median error of all analysed frames of that method. The 2x2 contingency
  table gives the odds ratio ad / bc with a 95% confidence interval exp(log OR +- 1.96 SE),
  SE = sqrt(1/a + 1/b + 1/c + 1/d), 0.5 added to every cell when one is zero (Haldane).
  Errors are cached in ``DIR/report_colorization.json``;
* contact sheets: a few frames of each sequence, ground truth and each method's overlay.

Per-frame J and F are computed from the PNGs and the ground truth with
:func:`colortrack.eval.metrics.davis.evaluate_sequence` and cached in ``DIR/report_frames.json``
(invalidated when ``results.json`` changes). Plots and figures are only computed on the
sequences that every input evaluated; the table shows them all.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colortrack.errors import InputError

TIME_BINS = 10
FAIL_J = 0.5
COLOR_HEIGHT = 240
COLOR_STEP = 3
SHEET_FRAMES = 4
SHEET_TILE_WIDTH = 200
FRAME_CACHE = "report_frames.json"
COLOR_CACHE = "report_colorization.json"
GRAY_METHODS = ("identity", "flow", "color")


# ----------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class OddsRatio:
    table: tuple[tuple[int, int], tuple[int, int]]  # ((a, b), (c, d)): rows track fail/ok, cols color fail/ok
    ratio: float
    low: float
    high: float
    corrected: bool


def odds_ratio(a: float, b: float, c: float, d: float, z: float = 1.96) -> OddsRatio:
    """Odds ratio ``ad / bc`` of the 2x2 table [[a, b], [c, d]] with its Wald interval
    ``exp(log OR +- z SE)``, SE = sqrt(1/a + 1/b + 1/c + 1/d); 0.5 is added to every cell when
    any cell is zero (Haldane-Anscombe correction)."""
    cells = np.array([a, b, c, d], float)
    if (cells < 0).any():
        raise ValueError(f"cells must be non-negative, got {cells.tolist()}")
    corrected = bool((cells == 0).any())
    if corrected:
        cells = cells + 0.5
    a_, b_, c_, d_ = cells
    ratio = (a_ * d_) / (b_ * c_)
    se = math.sqrt((1.0 / cells).sum())
    log_or = math.log(ratio)
    table = ((int(a), int(b)), (int(c), int(d)))
    return OddsRatio(table, ratio, math.exp(log_or - z * se), math.exp(log_or + z * se), corrected)


def failure_table(j: np.ndarray, errors: np.ndarray, fail_j: float = FAIL_J) -> tuple[int, int, int, int]:
    """(a, b, c, d): tracking failure (J < fail_j) x colorization failure (error > median)."""
    j, errors = np.asarray(j, float), np.asarray(errors, float)
    track_fail = j < fail_j
    color_fail = errors > np.median(errors)
    a = int(np.sum(track_fail & color_fail))
    b = int(np.sum(track_fail & ~color_fail))
    c = int(np.sum(~track_fail & color_fail))
    d = int(np.sum(~track_fail & ~color_fail))
    return a, b, c, d


def time_profile(per_frame_j: list[np.ndarray], bins: int = TIME_BINS) -> np.ndarray:
    """Mean J per normalised-time bin over sequences: (bins,), NaN where no sequence has a frame.
    per_frame_j: one array per sequence of the J of its scored frames, in time order."""
    sums, counts = np.zeros(bins), np.zeros(bins)
    for values in per_frame_j:
        values = np.asarray(values, float)
        if values.size == 0:
            continue
        position = np.arange(values.size) / max(values.size - 1, 1)
        index = np.minimum((position * bins).astype(int), bins - 1)
        for k in np.unique(index):
            sums[k] += values[index == k].mean()
            counts[k] += 1
    with np.errstate(invalid="ignore"):
        return sums / counts


# ----------------------------------------------------------------------------- inputs


@dataclass
class EvalRun:
    """One ``colortrack eval davis`` folder and what the report computes from it."""

    path: Path
    label: str
    results: dict
    config: dict
    frame_j: dict[str, np.ndarray] = field(default_factory=dict)  # seq -> (T-2,) mean over objects
    frame_f: dict[str, np.ndarray] = field(default_factory=dict)
    color_errors: dict[str, dict[int, float]] = field(default_factory=dict)  # seq -> frame -> error
    color_note: str = ""

    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def sequences(self) -> list[str]:
        if self.results.get("partial"):
            return list(self.results["finished"])
        return list(dict.fromkeys(row["sequence"] for row in self.results.get("sequences", [])))

    def sequence_scores(self, name: str) -> tuple[float, float]:
        rows = [row for row in self.results.get("sequences", []) if row["sequence"] == name]
        return float(np.mean([r["J"] for r in rows])), float(np.mean([r["F"] for r in rows]))


def load_run(path: Path, label: str | None = None) -> EvalRun:
    """An eval folder. One still being written (no ``results.json`` yet) is read as *partial*:
    the sequences whose progress record and PNGs are complete, scored by the report itself."""
    results_path = path / "results.json"
    if not results_path.is_file():
        return _load_partial(path, label)
    try:
        results = json.loads(results_path.read_text())
        config = results.get("config") or json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(results_path, f"unreadable results ({err})") from err
    return EvalRun(path, label or path.resolve().name, results, config)


def _load_partial(path: Path, label: str | None) -> EvalRun:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise InputError(path, "not an evaluation folder: no results.json nor config.json (run colortrack eval davis)")
    try:
        config = json.loads(config_path.read_text())
        finished = []
        for name in config.get("sequences", []):
            record = path / "progress" / f"{name}.json"
            if record.is_file():
                frames = int(json.loads(record.read_text())["frames"])
                if all((path / name / f"{t:05d}.png").is_file() for t in range(frames)):
                    finished.append(name)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(path, f"unreadable evaluation folder ({err})") from err
    if not finished:
        raise InputError(path, "evaluation folder has no finished sequence yet")
    total = len(config.get("sequences", []))
    results = {"partial": True, "finished": finished, "total": total, "sequences": []}
    return EvalRun(path, label or path.resolve().name, results, config)


def _complete_partial(run: EvalRun, objects: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> None:
    """Fill a partial run's per-object rows and means (percent) from its per-frame scores."""
    rows = []
    for name in run.results["finished"]:
        for k, (j, f) in enumerate(objects.get(name, []), start=1):
            jm, fm = 100 * float(np.nanmean(j)), 100 * float(np.nanmean(f))
            rows.append({"sequence": name, "object": k, "J": jm, "F": fm, "J&F": (jm + fm) / 2})
    run.results["sequences"] = rows
    if rows:
        run.results["J"] = float(np.mean([r["J"] for r in rows]))
        run.results["F"] = float(np.mean([r["F"] for r in rows]))
        run.results["J&F"] = (run.results["J"] + run.results["F"]) / 2


def resolve_root(runs: list[EvalRun], root: Path | None) -> Path:
    if root is not None:
        return root
    for run in runs:
        candidate = run.config.get("root")
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise InputError("--root", "the DAVIS root of the evaluations was not found; pass --root")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_digest(run: EvalRun) -> str:
    if not run.results.get("partial"):
        return _digest(run.path / "results.json")
    records = sorted((run.path / "progress").glob("*.json"))
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in records)).hexdigest()


def compute_frame_scores(run: EvalRun, dataset, names: list[str]) -> None:
    """Per-frame J and F (mean over objects) of ``names``, cached in the eval folder; for a
    partial run, of all its finished sequences, which also gives its per-sequence rows."""
    from colortrack.io.masks import read_mask
    from colortrack.eval.metrics.davis import evaluate_sequence

    partial = bool(run.results.get("partial"))
    if partial:
        names = list(dict.fromkeys([*names, *run.results["finished"]]))
    cache_path = run.path / FRAME_CACHE
    digest = _run_digest(run)
    cache = _read_cache(cache_path)
    if cache.get("results_sha256") != digest:
        cache = {"results_sha256": digest, "sequences": {}}
    changed = False
    objects = {}
    for name in names:
        if name not in cache["sequences"]:
            sequence = dataset[name]
            gt = sequence.read_masks()
            pred = np.stack([read_mask(run.path / name / f"{t:05d}.png", size=gt.shape[1:]) for t in range(len(gt))])
            scores = evaluate_sequence(name, pred, gt)
            cache["sequences"][name] = {
                "J": np.mean([s.J for s in scores], axis=0).tolist() if scores else [],
                "F": np.mean([s.F for s in scores], axis=0).tolist() if scores else [],
                "objects": [{"J": s.J.tolist(), "F": s.F.tolist()} for s in scores],
            }
            changed = True
        entry = cache["sequences"][name]
        run.frame_j[name] = np.asarray(entry["J"], float)
        run.frame_f[name] = np.asarray(entry["F"], float)
        objects[name] = [(np.asarray(o["J"], float), np.asarray(o["F"], float)) for o in entry.get("objects", [])]
    if changed:
        _write_json(cache_path, cache)
    if partial:
        _complete_partial(run, objects)


def _write_json(path: Path, data: dict) -> None:
    from colortrack.io.atomic import atomic_write_json

    try:
        atomic_write_json(path, data)
    except OSError:  # a read-only eval folder: the report still works, without the cache
        pass


def colorization_spec(run: EvalRun) -> str | None:
    """The embedder whose colorization errors stand for this method; None if unavailable."""
    if run.method in GRAY_METHODS:
        return "gray"
    return run.method if Path(run.method).exists() else None


def colorization_errors(
    sequence, spec: str, step: int, height: int, device, _embedders: dict = {}
) -> dict[int, float]:
    """Frame index -> mean ab error of colourizing the gray frame from frame 0 (``reference``
    method, frames resized to ``height``), for frames step, 2 step, ... < T - 1."""
    import cv2
    import torch

    from colortrack.tasks.colorize import ColorizeConfig, Colorizer, embedder_temperature, make_embedder
    from colortrack.io.video import read_image
    from colortrack.eval.metrics.color import rgb_to_ab

    if spec not in _embedders:
        _embedders[spec] = (make_embedder(spec, device), embedder_temperature(spec))
    embedder, temperature = _embedders[spec]
    config = ColorizeConfig.for_method("reference", temperature=temperature)
    colorizer = Colorizer(embedder, config, device)
    indices = [0] + list(range(step, len(sequence) - 1, step))
    frames = []
    for index in indices:
        rgb = read_image(sequence.frame_paths[index])
        h, w = rgb.shape[:2]
        width = max(8, int(round(w * height / h)))
        frames.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
    with torch.no_grad():
        out = list(colorizer.colorize(frames, {0: frames[0]}))
    errors = {}
    for index, frame, predicted in zip(indices, frames, out):
        if index == 0:
            continue
        diff = rgb_to_ab(predicted).astype(np.float64) - rgb_to_ab(frame).astype(np.float64)
        errors[index] = float(np.sqrt((diff**2).sum(axis=-1)).mean())
    return errors


def compute_color_errors(run: EvalRun, dataset, names: list[str], step: int, height: int, device, memo: dict) -> None:
    spec = colorization_spec(run)
    if spec is None:
        run.color_note = f"checkpoint {run.method} not found: no colorization analysis"
        return
    settings = {"embedder": spec, "method": "reference", "input_height": height, "step": step, "error": "mean ab L2"}
    cache_path = run.path / COLOR_CACHE
    cache = _read_cache(cache_path)
    if cache.get("settings") != settings:
        cache = {"settings": settings, "sequences": {}}
    changed = False
    for name in names:
        if name not in cache["sequences"]:
            key = (spec, str(dataset.root.resolve()), name, step, height)
            if key not in memo:
                memo[key] = colorization_errors(dataset[name], spec, step, height, device)
            cache["sequences"][name] = {str(k): v for k, v in memo[key].items()}
            changed = True
        run.color_errors[name] = {int(k): v for k, v in cache["sequences"][name].items()}
    if changed:
        _write_json(cache_path, cache)
    run.color_note = f"embedder {spec}"


def failure_statistics(run: EvalRun, names: list[str], fail_j: float = FAIL_J) -> OddsRatio | None:
    j, errors = [], []
    for name in names:
        frame_j = run.frame_j.get(name)
        for index, error in run.color_errors.get(name, {}).items():
            if frame_j is not None and 1 <= index <= len(frame_j):
                j.append(frame_j[index - 1])  # frame_j[0] is frame 1
                errors.append(error)
    if len(j) < 2:
        return None
    return odds_ratio(*failure_table(np.array(j), np.array(errors), fail_j))


# ----------------------------------------------------------------------------- figures


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


def _jpeg_uri(image: np.ndarray, quality: int = 70) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


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


def attribute_scores(runs: list[EvalRun], names: list[str], attributes: dict[str, list[str]]):
    """(attribute names, {label: values}, relative-to label or None); values in J points."""
    by_attribute: dict[str, list[str]] = {}
    for name in names:
        for attribute in attributes.get(name, []):
            by_attribute.setdefault(attribute, []).append(name)
    labels = sorted(by_attribute)
    base = next((run for run in runs if run.method == "flow"), None)
    values = {}
    for run in runs:
        row = []
        for attribute in labels:
            seqs = by_attribute[attribute]
            score = 100 * np.mean([run.frame_j[s].mean() for s in seqs if run.frame_j[s].size])
            if base is not None:
                score -= 100 * np.mean([base.frame_j[s].mean() for s in seqs if base.frame_j[s].size])
            row.append(score)
        values[run.label] = row
    counts = [len(by_attribute[a]) for a in labels]
    return labels, counts, values, (base.label if base is not None else None)


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


def contact_sheet(runs: list[EvalRun], sequence, frames: int = SHEET_FRAMES, tile_width: int = SHEET_TILE_WIDTH) -> np.ndarray:
    """Rows: a few frames; columns: ground truth then each method, overlays, labelled."""
    import cv2

    from colortrack.io.masks import read_mask
    from colortrack.io.video import read_image
    from colortrack.io.overlay import overlay_masks

    count = len(sequence)
    picks = sorted({int(round(x)) for x in np.linspace(count / frames, count - 1, frames)}) if count > 1 else [0]
    rows = []
    for t in picks:
        rgb = read_image(sequence.frame_paths[t])
        h, w = rgb.shape[:2]
        size = (tile_width, max(1, int(round(h * tile_width / w))))
        tiles = []
        sources = [("ground truth", sequence.mask_paths[t])] + [(run.label, run.path / sequence.name / f"{t:05d}.png") for run in runs]
        for caption, path in sources:
            ids = read_mask(path, size=(h, w)) if Path(path).is_file() else np.zeros((h, w), np.uint8)
            tile = cv2.resize(overlay_masks(rgb, ids), size, interpolation=cv2.INTER_AREA)
            text = f"{caption[:24]}  t={t}"
            cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
            tiles.append(np.full((size[1], 2, 3), 255, np.uint8))
        rows.append(np.concatenate(tiles[:-1], axis=1))
        rows.append(np.full((2, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


# ----------------------------------------------------------------------------- page

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f3f8}td:first-child,th:first-child{text-align:left}
table.sortable thead tr.keys th{cursor:pointer;user-select:none}
table.sortable thead tr.keys th:after{content:" \\2195";color:#999}
tr.mean td{font-weight:bold;background:#fafafa}
td.best{background:#dff3df}td.t{text-align:left;word-break:break-all;max-width:260px}
img.plot{max-width:100%;border:1px solid #eee;margin:6px 0}
img.sheet{max-width:100%;display:block;margin:4px 0 16px}
p.note{color:#555;font-size:13px;max-width:900px}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  var keys=table.querySelectorAll('thead tr.keys th');
  keys.forEach(function(th,col){
    th.addEventListener('click',function(){
      var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
      var asc=th.getAttribute('data-order')!=='asc';
      keys.forEach(function(k){k.removeAttribute('data-order');});
      th.setAttribute('data-order',asc?'asc':'desc');
      rows.sort(function(a,b){
        var x=a.cells[col].getAttribute('data-v'),y=b.cells[col].getAttribute('data-v');
        var nx=parseFloat(x),ny=parseFloat(y);
        var r=(isNaN(nx)||isNaN(ny))?String(x).localeCompare(String(y)):nx-ny;
        return asc?r:-r;});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
"""


def _esc(text) -> str:
    return html.escape(str(text))


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or not np.isfinite(value):
        return "<td data-v='-1'>&ndash;</td>"
    return f"<td data-v='{value:.4f}'>{value:.{digits}f}</td>"


def _summary_table(runs: list[EvalRun]) -> str:
    head = "<tr><th>method</th><th>folder</th><th>--method</th><th>preset</th><th>input height</th><th>sequences</th><th>J&amp;F</th><th>J</th><th>F</th><th>s/frame</th></tr>"
    rows = []
    for run in runs:
        r = run.results
        track = run.config.get("track") or {}
        partial = ""
        if r.get("partial"):
            partial = f" <em>(unfinished: {len(r['finished'])} of {r['total']} sequences)</em>"
        rows.append(
            f"<tr><td>{_esc(run.label)}{partial}</td><td class='t'>{_esc(run.path)}</td><td class='t'>{_esc(run.method)}</td>"
            f"<td>{_esc(run.config.get('preset', ''))}</td><td>{_esc(track.get('short_side', track.get('input_height')) or 'native')}</td>"
            f"<td data-v='{len(run.sequences)}'>{len(run.sequences)}</td>"
            + _num(r.get("J&F")) + _num(r.get("J")) + _num(r.get("F"))
            + _num(r.get("seconds_per_frame"), 3) + "</tr>"
        )
    return f"<table id='summary'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _sequence_table(runs: list[EvalRun], names: list[str], attributes: dict[str, list[str]]) -> str:
    groups = "".join(f"<th colspan='2'>{_esc(run.label)}</th>" for run in runs)
    keys = "<th>sequence</th><th style='text-align:left'>attributes</th>" + "<th>J</th><th>F</th>" * len(runs)
    body = []
    for name in names:
        cells = [f"<td data-v='{_esc(name)}'>{_esc(name)}</td>"]
        attrs = " ".join(attributes.get(name, []))
        cells.append(f"<td data-v='{_esc(attrs)}' style='text-align:left'>{_esc(attrs)}</td>")
        scores = [run.sequence_scores(name) if name in run.sequences else (None, None) for run in runs]
        best_j = max((s[0] for s in scores if s[0] is not None), default=None)
        for j, f in scores:
            cell = _num(j)
            if j is not None and j == best_j and len(runs) > 1:
                cell = cell.replace("<td ", "<td class='best' ", 1)
            cells.extend([cell, _num(f)])
        body.append(f"<tr class='seq'>{''.join(cells)}</tr>")
    mean = "<td>mean (dataset)</td><td></td>" + "".join(_num(run.results.get("J")) + _num(run.results.get("F")) for run in runs)
    return (
        "<table class='sortable' id='sequences'><thead>"
        f"<tr><th></th><th></th>{groups}</tr><tr class='keys'>{keys}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody><tfoot><tr class='mean'>{mean}</tr></tfoot></table>"
    )


def _failure_table(runs: list[EvalRun], stats: dict[str, OddsRatio | None]) -> str:
    head = (
        "<tr><th>method</th><th>colorization</th><th>frames</th><th>track fail &amp; color fail (a)</th>"
        "<th>track fail &amp; color ok (b)</th><th>track ok &amp; color fail (c)</th><th>both ok (d)</th>"
        "<th>odds ratio</th><th>95% CI</th></tr>"
    )
    rows = []
    for run in runs:
        s = stats.get(run.label)
        if s is None:
            rows.append(f"<tr><td>{_esc(run.label)}</td><td class='t'>{_esc(run.color_note or 'no frames')}</td>" + "<td>&ndash;</td>" * 7 + "</tr>")
            continue
        (a, b), (c, d) = s.table
        mark = " *" if s.corrected else ""
        rows.append(
            f"<tr><td>{_esc(run.label)}</td><td class='t'>{_esc(run.color_note)}</td><td>{a + b + c + d}</td>"
            f"<td>{a}</td><td>{b}</td><td>{c}</td><td>{d}</td><td>{s.ratio:.2f}{mark}</td>"
            f"<td>{s.low:.2f} &ndash; {s.high:.2f}</td></tr>"
        )
    return f"<table id='failures'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


@dataclass(frozen=True)
class ReportOptions:
    color_step: int = COLOR_STEP
    color_height: int = COLOR_HEIGHT
    fail_j: float = FAIL_J
    time_bins: int = TIME_BINS
    sheets: bool = True
    colorization: bool = True


def build_report(
    eval_dirs: list[Path],
    out: Path,
    root: Path | None = None,
    labels: list[str] | None = None,
    options: ReportOptions = ReportOptions(),
    device=None,
    progress: bool = True,
) -> Path:
    """Write the HTML page ``out``; returns its path."""
    from tqdm import tqdm

    from colortrack.io.atomic import atomic_write_text
    from colortrack.io.davis import DavisDataset
    from colortrack.core.tracker import pick_device

    if not eval_dirs:
        raise InputError("EVAL_DIR", "give at least one evaluation folder")
    if labels is not None and len(labels) != len(eval_dirs):
        raise InputError("--labels", f"{len(labels)} labels for {len(eval_dirs)} folders")
    runs = [load_run(Path(d), labels[k] if labels else None) for k, d in enumerate(eval_dirs)]
    seen = set()
    for run in runs:  # labels must be unique: they key the columns and plots
        base, k = run.label, 2
        while run.label in seen:
            run.label, k = f"{base} ({k})", k + 1
        seen.add(run.label)
    root = resolve_root(runs, root)
    all_names = list(dict.fromkeys(name for run in runs for name in run.sequences))
    common = [name for name in all_names if all(name in run.sequences for run in runs)]
    dataset = DavisDataset(root, sequences=all_names)
    attributes = {sequence.name: sequence.attributes for sequence in dataset}
    device = device or pick_device()

    for run in tqdm(runs, desc="per-frame J/F", unit="method", disable=not progress):
        compute_frame_scores(run, dataset, common)
    stats: dict[str, OddsRatio | None] = {}
    if options.colorization:
        memo: dict = {}
        for run in tqdm(runs, desc="colorization errors", unit="method", disable=not progress):
            compute_color_errors(run, dataset, common, options.color_step, options.color_height, device, memo)
            stats[run.label] = failure_statistics(run, common, options.fail_j)
    stats_shown = {k: v for k, v in stats.items() if v is not None}

    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>colortrack report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>colortrack: DAVIS evaluation report</h1>",
        f"<p class='note'>DAVIS root <code>{_esc(root)}</code>; {len(all_names)} sequence(s) in total, "
        f"{len(common)} evaluated by every method (the figures use those).</p>",
        "<h2>Methods</h2>",
        _summary_table(runs),
        "<h2>Per sequence</h2>",
        "<p class='note'>J and F in %, mean over the sequence's objects; click a column header to sort. "
        "Green: the best J of the row.</p>",
        _sequence_table(runs, all_names, attributes),
    ]
    if common:
        parts += [
            "<h2>Accuracy over time</h2>",
            f"<p class='note'>Scored frames (1 .. T-2) of each sequence mapped to normalised time and put in "
            f"{options.time_bins} equal bins; mean J per bin over sequences.</p>",
            f"<img class='plot' id='plot-time' alt='J over time' src='{plot_time(runs, common, options.time_bins)}'>",
        ]
        attribute_plot = plot_attributes(runs, common, attributes)
        parts.append("<h2>Per attribute</h2>")
        if attribute_plot:
            parts.append(f"<img class='plot' id='plot-attributes' alt='J per attribute' src='{attribute_plot}'>")
        else:
            parts.append("<p class='note'>No attributes: the DAVIS root has no db_info.yml.</p>")
    if options.colorization:
        parts += [
            "<h2>Tracking failure vs colorization failure</h2>",
            f"<p class='note'>Frames {options.color_step}, {2 * options.color_step}, ... (last excluded) are colourized from "
            f"frame 0 at {options.color_height} px high ('reference' method) with the method's embedder "
            "(the training-free gray embedder for identity, flow and color). Tracking failure: J &lt; "
            f"{options.fail_j:g}. Colorization failure: mean ab error above the median of that method's frames. "
            "Odds ratio ad/bc with a 95% Wald interval on log OR; * = 0.5 added to every cell (a zero cell). "
            "An odds ratio above 1 means that tracking fails more often where colorization fails "
            "(Vondrick et al. 2018, Sec. 4.5).</p>",
            _failure_table(runs, stats),
        ]
        failure_plot = plot_failures(runs, stats_shown)
        if failure_plot:
            parts.append(f"<img class='plot' id='plot-failures' alt='odds ratios' src='{failure_plot}'>")
    if options.sheets and common:
        parts.append("<h2>Contact sheets</h2><p class='note'>Columns: ground truth, then each method.</p>")
        for name in tqdm(common, desc="contact sheets", unit="seq", disable=not progress):
            sheet = contact_sheet(runs, dataset[name])
            parts.append(f"<h3>{_esc(name)}</h3><img class='sheet' alt='{_esc(name)}' src='{_jpeg_uri(sheet)}'>")
    parts.append(f"<script>{_JS}</script></body></html>")
    out = Path(out)
    if out.exists() and out.is_dir():
        raise InputError(out, "is a folder; --out names the HTML file")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(parts))
    return out


# ----------------------------------------------------------------------------- command line


def add_report_parser(commands) -> None:
    parser = commands.add_parser("report", help="self-contained HTML report comparing DAVIS evaluation folders")
    parser.add_argument("eval_dirs", type=Path, nargs="+", metavar="EVAL_DIR", help="folders of colortrack eval davis")
    parser.add_argument("--out", type=Path, required=True, help="output HTML file")
    parser.add_argument("--root", type=Path, help="DAVIS root (default: the one in the evaluations' config)")
    parser.add_argument("--labels", help="comma-separated names of the methods (default: folder names)")
    parser.add_argument("--color-step", type=int, default=COLOR_STEP, help="colorization analysis on every Nth frame")
    parser.add_argument("--color-height", type=int, default=COLOR_HEIGHT, help="frame height for the colorization analysis")
    parser.add_argument("--fail-j", type=float, default=FAIL_J, help="a frame is a tracking failure when J is below this")
    parser.add_argument("--no-colorization", action="store_true", help="skip the colorization-failure analysis")
    parser.add_argument("--no-sheets", action="store_true", help="no contact sheets")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from colortrack.core.tracker import pick_device

    if args.color_step < 1:
        raise InputError("--color-step", f"must be positive, got {args.color_step}")
    if args.color_height < 8:
        raise InputError("--color-height", f"must be at least 8, got {args.color_height}")
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    options = ReportOptions(
        color_step=args.color_step,
        color_height=args.color_height,
        fail_j=args.fail_j,
        sheets=not args.no_sheets,
        colorization=not args.no_colorization,
    )
    out = build_report(args.eval_dirs, args.out, args.root, labels, options, pick_device(args.device), not args.quiet)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)")
    return 0


def _read_cache(path: Path) -> dict:
    """A JSON cache, or an empty one when it is missing or unreadable (it is only a cache)."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}
