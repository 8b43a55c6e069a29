"""Vondrick et al. 2018 from one command: Table 1 (DAVIS J and F), Table 2 (JHMDB, BADJA PCK),
Fig. 5 (J over time), Fig. 6 (J per attribute, relative to flow), the multi-object subset
(Sec. 4.3), Fig. 9 (PCA of the embeddings) and Fig. 10 / Sec. 4.5 (tracking vs colorization
failure odds ratio), each beside the published numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from colortrack.defaults import IMAGE_COLORIZATION, SHIPPED_MODEL
from colortrack.eval.report.page import esc, failure_table_html
from colortrack.eval.report.plots import jpeg_uri, plot_attributes, plot_time
from colortrack.eval.report.runs import EvalRun, load_run
from colortrack.eval.report.scores import (
    COLOR_HEIGHT, COLOR_STEP, compute_color_errors, compute_frame_scores, failure_statistics,
)
from colortrack.eval.report.stats import TIME_BINS, attribute_scores, time_profile
from colortrack.eval.reproduce.common import Page, Steps, claim_output, comparison_html, comparison_json, write_outputs
from colortrack.eval.reproduce.published import (
    PCK_COLUMNS, VONDRICK_MULTI_OBJECT, VONDRICK_ODDS_RATIO, VONDRICK_TABLE1, VONDRICK_TABLE2,
)
from colortrack.io.atomic import atomic_write
from colortrack.io.davis import DavisDataset

STILL_WIDTH = 320


@dataclass(frozen=True)
class VondrickConfig:
    """What a reproduction computes; saved as ``config.json`` of its folder.

    method: ours (``model`` or a checkpoint); baseline: the single-image colorization weights.
    short_side: the embedding short side of the learned methods (None: their preset's).
    fine_weight, embed_dims: the learned methods' fine-feature weight and projection (None: their
    preset's; 0 and 0: as measured before the sixth session).
    jhmdb: a JHMDB root; badja: a folder of BADJA ``<sequence>.json`` files on the DAVIS frames.
    """

    davis: str
    jhmdb: str | None = None
    badja: str | None = None
    sequences: list[str] | None = None
    method: str = SHIPPED_MODEL
    baseline: str = IMAGE_COLORIZATION
    short_side: int | None = None
    fine_weight: float | None = None
    embed_dims: int | None = None
    resolution: str = "480p"
    color_step: int = COLOR_STEP
    color_height: int = COLOR_HEIGHT
    stills: int = 2

    def table1_methods(self) -> list[tuple[str, str]]:
        """(--method, subfolder) in the order of the paper's Table 1."""
        return [("identity", "identity"), (self.baseline, "image-colorization"), ("farneback", "farneback"),
                ("flow", "flow"), (self.method, "ours")]

    def table2_methods(self) -> list[tuple[str, str]]:
        return [("identity", "identity"), ("flow", "flow"), (self.method, "ours")]


def reproduce_vondrick(config: VondrickConfig, out: Path, device: str = "auto", progress: bool = True) -> dict:
    """Run (or resume) every measurement into ``out`` and write ``out/results.json`` and
    ``out/index.html``; returns the results."""
    from colortrack.core.tracker import pick_device

    out = Path(out)
    claim_output(out, {"paper": "vondrick", **asdict(config)})
    dataset = DavisDataset(config.davis, config.resolution, config.sequences)
    badja = _badja_annotations(config, dataset)
    steps = Steps(len(config.table1_methods()) + 3 * bool(config.jhmdb) + 3 * bool(badja) + 2, progress)
    runs = _davis_runs(config, dataset, out, device, steps, progress)
    keypoints = {"jhmdb": _jhmdb_runs(config, out, device, steps, progress) if config.jhmdb else None,
                 "badja": _badja_runs(config, badja, out, device, steps, progress) if badja else None}
    steps.start("per-frame J, colorization errors of ours (odds ratio)")
    names = dataset.names
    for run in runs.values():
        compute_frame_scores(run, dataset, names)
    ours = runs["ours"]
    compute_color_errors(ours, dataset, names, config.color_step, config.color_height, pick_device(device), {})
    odds = failure_statistics(ours, names)
    steps.start("embedding stills (Fig. 9)", out / "stills")
    stills = _stills(config, dataset, out, device)
    results = _results(config, dataset, runs, keypoints, odds, stills)
    write_outputs(out, results, _page(results, runs, dataset, odds, stills))
    return results


def _tracker(method: str, config: VondrickConfig, device: str):
    from colortrack.api import Tracker
    from colortrack.models.registry import TRAINING_FREE_METHODS

    learned = {} if method in TRAINING_FREE_METHODS else {"fine_weight": config.fine_weight, "embed_dims": config.embed_dims}
    return Tracker.pretrained(method, device, short_side=config.short_side, **learned)


def _davis_runs(config, dataset, out, device, steps, progress) -> dict[str, EvalRun]:
    from colortrack.eval.davis import run_davis_eval

    runs = {}
    for method, folder in config.table1_methods():
        steps.start(f"eval davis --method {method}", out / "davis" / folder)
        run_davis_eval(dataset, _tracker(method, config, device), out / "davis" / folder, config.davis, progress)
        runs[folder] = load_run(out / "davis" / folder, folder)
    return runs


def _jhmdb_runs(config, out, device, steps, progress) -> dict[str, dict]:
    from colortrack.eval.jhmdb import run_jhmdb_eval
    from colortrack.io.jhmdb import find_jhmdb_clips

    clips = find_jhmdb_clips(config.jhmdb)
    results = {}
    for method, folder in config.table2_methods():
        steps.start(f"eval jhmdb --method {method}", out / "jhmdb" / folder)
        results[folder] = run_jhmdb_eval(clips, config.jhmdb, _tracker(method, config, device).for_points(), out / "jhmdb" / folder, progress)
    return results


def _badja_annotations(config: VondrickConfig, dataset: DavisDataset) -> list[Path]:
    """The BADJA files whose sequence is among the evaluated ones."""
    from colortrack.eval.badja import find_badja_annotations

    if not config.badja:
        return []
    return [path for path in find_badja_annotations(config.badja) if path.stem in dataset.names]


def _badja_runs(config, annotations, out, device, steps, progress) -> dict[str, dict]:
    from colortrack.eval.badja import badja_clips, run_badja_eval

    clips = badja_clips(config.davis, annotations, config.resolution)
    results = {}
    for method, folder in config.table2_methods():
        steps.start(f"eval badja --method {method}", out / "badja" / folder)
        tracker = _tracker(method, config, device).for_points()
        results[folder] = run_badja_eval(config.davis, config.badja, config.resolution, clips, tracker, out / "badja" / folder, progress)
    return results


def multi_object_sequences(run: EvalRun) -> list[str]:
    """The sequences of an eval folder with more than one scored object."""
    objects: dict[str, int] = {}
    for row in run.results.get("sequences", []):
        objects[row["sequence"]] = objects.get(row["sequence"], 0) + 1
    return [name for name, count in objects.items() if count > 1]


def multi_object_note(sequences: list[str]) -> str:
    if sequences:
        return ""
    return "no sequence of this dataset has more than one object (DAVIS-2016 is single-object): the subset is empty"


def _mean_j(run: EvalRun, names: list[str]) -> float | None:
    values = [row["J"] for row in run.results.get("sequences", []) if row["sequence"] in names]
    return float(np.mean(values)) if values else None


def _stills(config: VondrickConfig, dataset: DavisDataset, out: Path, device: str) -> list[Path]:
    """Fig. 9: the first, middle and last frame of the first ``stills`` sequences, each beside its
    embedding by ours projected to RGB by one PCA per sequence. Written once."""
    from colortrack.tasks.embed import PCAProjection, side_by_side

    embed = getattr(_tracker(config.method, config, device).propagator, "embed", None)
    paths = []
    for sequence in dataset.sequences[: config.stills if embed else 0]:
        path = out / "stills" / f"{sequence.name}.jpg"
        paths.append(path)
        if path.is_file():
            continue
        frames = sequence.read_frames()
        picked = [frames[t] for t in sorted({0, len(frames) // 2, len(frames) - 1})]
        with torch.no_grad():
            cells = [embed(frame).float().cpu().numpy() for frame in picked]
        projection = PCAProjection.fit(np.concatenate([c.reshape(c.shape[0], -1).T for c in cells]))
        rows = [_fit_width(side_by_side(frame, projection.project(c))) for frame, c in zip(picked, cells)]
        with atomic_write(path) as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR))
    return paths


def _fit_width(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.resize(image, (2 * STILL_WIDTH, max(1, round(height * 2 * STILL_WIDTH / width))), interpolation=cv2.INTER_AREA)


def _transductive(config: VondrickConfig) -> bool:
    """Whether ours was trained on frames of the DAVIS root (its checkpoint's data folders)."""
    from colortrack.errors import InputError
    from colortrack.eval.protocol import seen_in_training
    from colortrack.models.registry import checkpoint_path
    from colortrack.train.checkpoint import read_meta

    try:
        data = read_meta(checkpoint_path(config.method)).get("train_config", {}).get("data", [])
    except InputError:  # a training-free method: no training data
        return False
    frames = Path(config.davis) / "JPEGImages"
    return seen_in_training(data, frames) or any(Path(d).parent.name == Path(config.davis).name for d in data)


def _our_dataset(config: VondrickConfig, dataset: DavisDataset) -> str:
    seen = " (ours was trained on these frames, unlabeled: transductive)" if _transductive(config) else ""
    return f"{Path(config.davis).name}, {len(dataset)} sequence(s), {config.resolution}{seen}"


def _results(config, dataset, runs, keypoints, odds, stills) -> dict:
    names = dataset.names
    measured = {folder: {"J": run.results.get("J"), "F": run.results.get("F")} for folder, run in runs.items()}
    protocol = "DAVIS semi-supervised protocol (colortrack eval davis), J and F in %, mean over objects"
    multi = multi_object_sequences(runs["ours"])
    attribute_labels, counts, values, base = attribute_scores(list(runs.values()), names, dataset.attributes)
    results = {
        "paper": "vondrick",
        "config": asdict(config),
        "table1": comparison_json(VONDRICK_TABLE1, measured, _our_dataset(config, dataset), protocol),
        "folders": {folder: f"davis/{folder}" for _, folder in config.table1_methods()},
        "j_over_time": {"bins": TIME_BINS, "J": {label: _percent(time_profile([run.frame_j[n] for n in names], TIME_BINS))
                                                 for label, run in runs.items()}},
        "attributes": {"attributes": attribute_labels, "sequences": counts, "relative_to": base, "J": values},
        "multi_object": {
            "sequences": multi,
            "note": multi_object_note(multi),
            **comparison_json(
                VONDRICK_MULTI_OBJECT,
                {folder: {"J": _mean_j(run, multi)} for folder, run in runs.items()},
                f"{Path(config.davis).name}, {len(multi)} multi-object sequence(s)", "J in %, mean over objects",
            ),
        },
        "odds_ratio": comparison_json(
            VONDRICK_ODDS_RATIO,
            {"ours": {"odds ratio": odds.ratio} if odds else None},
            _our_dataset(config, dataset),
            f"frames {config.color_step}, {2 * config.color_step}, ... colourized from frame 0 at {config.color_height} px "
            "by ours ('reference' method); tracking failure J < 0.5, colorization failure: error above the median",
        ),
        "stills": [str(path.relative_to(path.parents[1])) for path in stills],
    }
    if odds:
        results["odds_ratio"]["measured"] = {"table": odds.table, "ratio": odds.ratio, "low": odds.low, "high": odds.high}
    results["table2"] = {
        key: comparison_json(
            VONDRICK_TABLE2,
            {folder: {c: found[folder].get(c) for c in PCK_COLUMNS} for _, folder in config.table2_methods()},
            _keypoint_dataset(key, config, found),
            found[config.table2_methods()[0][1]].get("protocol", ""),
        )
        for key, found in keypoints.items() if found
    }
    return results


def _percent(values: np.ndarray) -> list[float | None]:
    return [float(100 * v) if np.isfinite(v) else None for v in values]


def _keypoint_dataset(key: str, config: VondrickConfig, found: dict) -> str:
    clips = len(next(iter(found.values()))["clips"])
    if key == "jhmdb":
        return f"JHMDB at {Path(config.jhmdb).name}: {clips} clip(s)"
    return f"BADJA on {Path(config.davis).name}: {clips} sequence(s) (PCK@0.1/0.2 of sqrt(mask area); @0.3-0.5 not scored)"


def _page(results: dict, runs: dict[str, EvalRun], dataset: DavisDataset, odds, stills: list[Path]) -> Page:
    names = dataset.names
    page = Page("Vondrick et al. 2018, reproduced with colortrack")
    page.parts.append(page.note(
        "Every table puts the paper's numbers beside ours; the two are measured on different data "
        "(the paper: DAVIS-2017 val, all of JHMDB; here: the folders named in each table) and are not comparable "
        "number for number: compare our rows with each other. Each measurement is an eval folder under this one."
    ))
    page.section("Table 1: video object segmentation (DAVIS)", comparison_html(results["table1"], table_id="table1"))
    for key, label in (("jhmdb", "JHMDB"), ("badja", "BADJA")):
        if key in results["table2"]:
            page.section(f"Table 2: keypoint propagation ({label})", comparison_html(results["table2"][key], table_id=f"table2-{key}"))
    multi = results["multi_object"]
    page.section("Multiple objects (Sec. 4.3)", page.note(multi["note"]) if multi["note"] else "",
                 comparison_html(multi, table_id="multi-object"))
    shown = list(runs.values())
    page.section("Fig. 5: J over time", f"<img class='plot' id='plot-time' alt='J over time' src='{plot_time(shown, names, TIME_BINS)}'>")
    attributes = plot_attributes(shown, names, dataset.attributes)
    page.section("Fig. 6: J per attribute, relative to flow",
                 f"<img class='plot' id='plot-attributes' alt='J per attribute' src='{attributes}'>" if attributes
                 else page.note("No attributes: the DAVIS root has no db_info.yml."))
    images = "".join(
        f"<h3>{esc(path.stem)}</h3><img class='sheet' alt='{esc(path.stem)}' src='{jpeg_uri(_read_rgb(path))}'>" for path in stills
    )
    page.section("Fig. 9: embeddings (first three PCA components as RGB)",
                 page.note("First, middle and last frame; one PCA per sequence, so a colour means the same embedding "
                           "across its frames.") + (images or page.note("ours has no embedding to show")))
    page.section("Fig. 10 / Sec. 4.5: tracking failure vs colorization failure",
                 comparison_html(results["odds_ratio"], digits=2, table_id="odds-ratio"),
                 failure_table_html([runs["ours"]], {runs["ours"].label: odds}))
    return page


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
