"""Akimoto et al. 2020 from one command: Table 1 (PSNR over the frame, inside and outside the
instance masks, for four reference settings and four ways of restricting the correspondences),
the % of outlier pixels over time, and the effect of the refinement stage.

Their "without tracking / instance / dense / instance + dense" are our ``eval colorize`` methods
``reference``, ``reference+inst``, ``spatiotemporal``, ``spatiotemporal+inst``; each is also
measured refined (``+refine``). One ``eval colorize`` folder per reference setting."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from colortrack.defaults import AKIMOTO_FRAME_SHORT_SIDE, AKIMOTO_SHORT_SIDE, SHIPPED_MODEL, SHIPPED_REFINER
from colortrack.eval.report.page import esc
from colortrack.eval.reproduce.common import Page, Steps, claim_output, comparison_html, comparison_json, write_outputs
from colortrack.eval.reproduce.published import AKIMOTO_METHODS, AKIMOTO_REFS, AKIMOTO_TABLE1, PSNR_COLUMNS
from colortrack.io.davis import DavisDataset

REFINE = "+refine"
CURVE_METHODS = ("spatiotemporal+inst", "spatiotemporal+inst+refine", "reference", "flow", "copy")
_FIELDS = {"PSNR": "psnr", "PSNR in": "psnr_inside", "PSNR out": "psnr_outside"}


@dataclass(frozen=True)
class AkimotoConfig:
    """What a reproduction computes; saved as ``config.json`` of its folder.

    embedder: ours (``model`` or a checkpoint); short_side: its embedding short side (None: the
    embedder's default, 0: native); max_frames: only the first frames of each sequence (a quick run);
    frame_short_side: the frames are resized to this shorter side and colourized and scored at that
    size (0: native; the default keeps the full grid affordable on a CPU, docs/reproduce.md).
    """

    davis: str
    sequences: list[str] | None = None
    embedder: str = SHIPPED_MODEL
    refiner: str = SHIPPED_REFINER
    short_side: int | None = AKIMOTO_SHORT_SIDE
    max_frames: int | None = None
    resolution: str = "480p"
    refs: tuple[str, ...] = AKIMOTO_REFS
    frame_short_side: int = AKIMOTO_FRAME_SHORT_SIDE

    def methods(self) -> list[str]:
        warps = [method for _, method in AKIMOTO_METHODS]
        return warps + [method + REFINE for method in warps]


def reproduce_akimoto(config: AkimotoConfig, out: Path, device: str = "auto", progress: bool = True) -> dict:
    """Run (or resume) one ``eval colorize`` per reference setting into ``out/colorize/<refs>``
    (all settings of a sequence at once, sharing its frames, embeddings, instance tracks and dense
    tracking steps: :func:`colortrack.eval.colorize.evaluate_colorize_grid`) and write
    ``out/results.json`` and ``out/index.html``; returns the results."""
    from colortrack.core.tracker import pick_device
    from colortrack.eval.colorize import run_colorize_grid
    from colortrack.tasks.colorize import colorize_overrides, default_short_side

    out = Path(out)
    claim_output(out, {"paper": "akimoto", **asdict(config)})
    dataset = DavisDataset(config.davis, config.resolution, config.sequences)
    short_side = default_short_side(config.embedder) if config.short_side is None else (config.short_side or None)
    folders = {out / "colorize" / refs: refs for refs in config.refs}
    Steps(1, progress).start(
        f"eval colorize --refs {','.join(config.refs)} --method {','.join(config.methods())}", out / "colorize"
    )
    grid = run_colorize_grid(
        dataset, folders, config.methods(), config.embedder, pick_device(device), colorize_overrides(config.embedder),
        short_side, config.max_frames, config.refiner, progress, frame_short_side=config.frame_short_side or None,
    )
    found = {refs: grid[folder] for folder, refs in folders.items()}
    results = _results(config, dataset, found)
    write_outputs(out, results, _page(results))
    return results


def outliers_over_time(per_sequence: dict, method: str) -> list[float | None]:
    """Mean over sequences of the % of outlier pixels of each frame index (None where no sequence
    scores that frame: a reference, or past the shorter sequences' ends)."""
    curves = [row[method].get("outliers_by_frame") or [] for row in per_sequence.values() if method in row]
    length = max((len(curve) for curve in curves), default=0)
    means = []
    for t in range(length):
        values = [curve[t] for curve in curves if t < len(curve) and curve[t] is not None]
        means.append(float(np.mean(values)) if values else None)
    return means


def _measured(found: dict, suffix: str = "") -> dict:
    return {
        f"{refs}/{method}": {column: results["methods"][method + suffix].get(key) for column, key in _FIELDS.items()}
        for refs, results in found.items()
        for _, method in AKIMOTO_METHODS
    }


def _our_dataset(config: AkimotoConfig, dataset: DavisDataset) -> str:
    frames = f", first {config.max_frames} frames of each" if config.max_frames else ""
    scaled = f" resized to short side {config.frame_short_side}" if config.frame_short_side else ""
    return f"{Path(config.davis).name}, {len(dataset)} sequence(s){frames}, {config.resolution}{scaled}"


def _results(config: AkimotoConfig, dataset: DavisDataset, found: dict) -> dict:
    protocol = ("colortrack eval colorize: the gray frames colourized from the colour reference frames by the shipped "
                "embedder; PSNR (dB) on RGB per frame, mean over frames then sequences; instances: the DAVIS masks, "
                "carried from the (first) reference by our tracker for +inst; references are not scored")
    ours = _our_dataset(config, dataset)
    refine = {
        refs: {method: {key: results["methods"][name].get(key) for key in ("psnr", "outliers", "flicker")}
               for method in config.methods() + ["flow", "copy"] for name in [method]}
        for refs, results in found.items()
    }
    return {
        "paper": "akimoto",
        "config": asdict(config),
        "table1": comparison_json(AKIMOTO_TABLE1, _measured(found), ours + ", without refinement", protocol),
        "table1_refined": comparison_json(AKIMOTO_TABLE1, _measured(found, REFINE), ours + ", refined", protocol),
        "refinement": refine,
        "outliers_over_time": {
            refs: {method: outliers_over_time(results["sequences"], method) for method in CURVE_METHODS}
            for refs, results in found.items()
        },
        "baselines": {refs: {name: {column: results["methods"][name].get(key) for column, key in _FIELDS.items()}
                             for name in ("copy", "flow", "cells")} for refs, results in found.items()},
        "folders": {refs: f"colorize/{refs}" for refs in found},
    }


def _plot_outliers(curves: dict[str, list[float | None]], refs: str) -> str:
    from colortrack.eval.report.plots import _png_uri, _pyplot

    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 3.4))
    for k, (method, curve) in enumerate(curves.items()):
        points = [(t, v) for t, v in enumerate(curve) if v is not None]
        if points:
            axes.plot(*zip(*points), color=f"C{k}", label=method, linewidth=1.2)
    axes.set_xlabel("frame")
    axes.set_ylabel("% outlier pixels (error > 16)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    axes.set_title(f"outliers over time, references: {refs}")
    return _png_uri(figure)


def _refinement_table(refine: dict) -> str:
    head = "<tr><th>references</th><th>method</th><th>PSNR</th><th>PSNR refined</th><th>&gt;16 %</th><th>&gt;16 % refined</th><th>flicker</th><th>flicker refined</th></tr>"
    rows = []
    for refs, methods in refine.items():
        for _, method in AKIMOTO_METHODS:
            plain, refined = methods[method], methods[method + REFINE]
            cells = "".join(
                _num(plain[key], digits) + _num(refined[key], digits)
                for key, digits in (("psnr", 2), ("outliers", 1), ("flicker", 2))
            )
            rows.append(f"<tr><td>{esc(refs)}</td><td>{esc(method)}</td>{cells}</tr>")
    return f"<table id='refinement'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _num(value, digits: int) -> str:
    return "<td>&ndash;</td>" if value is None else f"<td>{value:.{digits}f}</td>"


def _baseline_table(baselines: dict) -> str:
    head = "<tr><th>references</th><th>baseline</th>" + "".join(f"<th>{c}</th>" for c in PSNR_COLUMNS) + "</tr>"
    rows = [
        f"<tr><td>{esc(refs)}</td><td>{esc(name)}</td>" + "".join(_num(values[c], 2) for c in PSNR_COLUMNS) + "</tr>"
        for refs, found in baselines.items() for name, values in found.items()
    ]
    return f"<table id='baselines'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _page(results: dict) -> Page:
    page = Page("Akimoto et al. 2020, reproduced with colortrack")
    page.parts.append(page.note(
        "Published numbers beside ours, measured on different data (see each table); compare our rows with each other. "
        "Our instance masks are the DAVIS annotations of the reference frame carried by our own tracker (a stand-in "
        "for the paper's instance segmentation); 'dense' is our spatiotemporal method. Each reference setting is "
        "one eval colorize folder under this one."
    ))
    page.section("Table 1: PSNR by reference frames and tracking (without refinement)",
                 comparison_html(results["table1"], digits=2, table_id="table1"))
    page.section("Table 1 with refinement", comparison_html(results["table1_refined"], digits=2, table_id="table1-refined"))
    page.section("Baselines measured in the same runs",
                 page.note("copy: the nearest reference's colours at the same pixel; flow: DIS optical flow from the "
                           "nearest reference; cells: the true colours averaged over the feature cells (a ceiling)."),
                 _baseline_table(results["baselines"]))
    page.section("The refinement's effect", page.note("Each method without and with the shipped refiner; flicker in ab "
                                                      "units (0 = as steady as the original)."),
                 _refinement_table(results["refinement"]))
    plots = "".join(
        f"<img class='plot' id='plot-outliers-{esc(refs)}' alt='outliers over time, {esc(refs)}' src='{_plot_outliers(curves, refs)}'>"
        for refs, curves in results["outliers_over_time"].items()
    )
    page.section("% outlier pixels over time", page.note("Mean over sequences of each frame's % of pixels whose RGB error "
                                                         "exceeds 16 (references are not scored)."), plots)
    return page
