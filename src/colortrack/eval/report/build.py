"""Assemble the report page from evaluation folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from colortrack.errors import InputError
from colortrack.eval.report.page import CSS, JS, esc, failure_table_html, sequence_table, summary_table
from colortrack.eval.report.plots import contact_sheet, jpeg_uri, plot_attributes, plot_failures, plot_time
from colortrack.eval.report.runs import load_run, resolve_root
from colortrack.eval.report.scores import (
    COLOR_HEIGHT,
    COLOR_STEP,
    compute_color_errors,
    compute_frame_scores,
    failure_statistics,
)
from colortrack.eval.report.stats import FAIL_J, TIME_BINS, OddsRatio


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
        f"<style>{CSS}</style></head><body>",
        "<h1>colortrack: DAVIS evaluation report</h1>",
        f"<p class='note'>DAVIS root <code>{esc(root)}</code>; {len(all_names)} sequence(s) in total, "
        f"{len(common)} evaluated by every method (the figures use those).</p>",
        "<h2>Methods</h2>",
        summary_table(runs),
        "<h2>Per sequence</h2>",
        "<p class='note'>J and F in %, mean over the sequence's objects; click a column header to sort. "
        "Green: the best J of the row.</p>",
        sequence_table(runs, all_names, attributes),
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
            failure_table_html(runs, stats),
        ]
        failure_plot = plot_failures(runs, stats_shown)
        if failure_plot:
            parts.append(f"<img class='plot' id='plot-failures' alt='odds ratios' src='{failure_plot}'>")
    if options.sheets and common:
        parts.append("<h2>Contact sheets</h2><p class='note'>Columns: ground truth, then each method.</p>")
        for name in tqdm(common, desc="contact sheets", unit="seq", disable=not progress):
            sheet = contact_sheet(runs, dataset[name])
            parts.append(f"<h3>{esc(name)}</h3><img class='sheet' alt='{esc(name)}' src='{jpeg_uri(sheet)}'>")
    parts.append(f"<script>{JS}</script></body></html>")
    out = Path(out)
    if out.exists() and out.is_dir():
        raise InputError(out, "is a folder; --out names the HTML file")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(parts))
    return out
