"""``colortrack reproduce``: both papers end to end on generated DAVIS / JHMDB layouts, resumed
without recomputing, the published rows beside ours, and the pieces they are made of."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from colortrack.cli.main import main
from colortrack.demo.synthetic import make_video
from colortrack.eval.colorize import reference_frames
from colortrack.eval.metrics.color import ColorScores
from colortrack.eval.report.runs import EvalRun
from colortrack.eval.reproduce.akimoto import outliers_over_time
from colortrack.eval.reproduce.published import AKIMOTO_TABLE1, VONDRICK_TABLE1, VONDRICK_TABLE2
from colortrack.eval.reproduce.vondrick import multi_object_note, multi_object_sequences
from colortrack.io.video import write_frames_png

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def jhmdb_root(tmp_path_factory):
    """One moving clip in the JHMDB layout (frames from 00001, 15 joints, 1-based pos_img)."""
    root = tmp_path_factory.mktemp("jhmdb")
    video = make_video(num_frames=6, height=48, width=64, num_objects=3, points_per_object=5, seed=7)
    write_frames_png(root / "Rename_Images" / "run" / "clip", video.frames, start_index=1)
    (root / "joint_positions" / "run" / "clip").mkdir(parents=True)
    pos_img = np.asarray(video.points, np.float64).transpose(2, 1, 0) + 1.0
    scipy.io.savemat(root / "joint_positions" / "run" / "clip" / "joint_positions.mat", {"pos_img": pos_img})
    return root


def _mtimes(folder: Path, pattern: str) -> dict[str, int]:
    """Modification times of the computed files (the keypoint evals' contact sheets are redrawn)."""
    return {str(path): path.stat().st_mtime_ns for path in sorted(folder.rglob(pattern)) if path.name != "contact_sheet.png"}


@pytest.fixture(scope="module")
def vondrick(tmp_path_factory, davis_root, jhmdb_root):
    out = tmp_path_factory.mktemp("vondrick") / "out"
    args = ["reproduce", "vondrick", "--davis", str(davis_root), "--jhmdb", str(jhmdb_root), "--out", str(out), "--short-side", "0", "--quiet"]
    assert main(args) == 0
    before = _mtimes(out, "*.png") | _mtimes(out, "keypoints.json") | _mtimes(out, "report_*.json") | _mtimes(out, "*.jpg")
    first = json.loads((out / "results.json").read_text())
    assert main(args) == 0
    return out, first, before, args


def test_vondrick_writes_every_table_and_figure_beside_the_published_rows(vondrick, davis_root):
    out, results, _, _ = vondrick
    page = (out / "index.html").read_text()
    assert "http://" not in page and "https://" not in page
    for anchor in ("id='table1'", "id='table2-jhmdb'", "id='multi-object'", "id='plot-time'", "id='plot-attributes'", "id='odds-ratio'", "Fig. 9"):
        assert anchor in page
    rows = results["table1"]["rows"]
    assert [row["name"] for row in rows] == [row.name for row in VONDRICK_TABLE1.rows]
    assert [row["published"] for row in rows] == [row.values for row in VONDRICK_TABLE1.rows]
    assert results["table1"]["published"]["dataset"].startswith("DAVIS-2017 validation")
    assert results["table1"]["ours"]["dataset"].startswith(davis_root.name)
    assert "DAVIS-2017 validation" in page and davis_root.name in page
    for role in ("identity", "image-colorization", "farneback", "flow", "ours"):
        evaluated = json.loads((out / "davis" / role / "results.json").read_text())
        row = next(row for row in rows if row["ours"] == role)
        assert row["measured"] == {"J": evaluated["J"], "F": evaluated["F"]}
    assert json.loads((out / "davis" / "image-colorization" / "config.json").read_text())["method"] == "image-colorization"
    assert json.loads((out / "davis" / "farneback" / "config.json").read_text())["method"] == "farneback"
    jhmdb = results["table2"]["jhmdb"]["rows"]
    assert [row["published"] for row in jhmdb] == [row.values for row in VONDRICK_TABLE2.rows]
    assert all(row["measured"]["PCK@0.5"] is not None for row in jhmdb)
    assert set(results["j_over_time"]["J"]) == {"identity", "image-colorization", "farneback", "flow", "ours"}
    assert results["attributes"]["relative_to"] == "flow" and results["attributes"]["attributes"] == ["FM", "OCC"]
    assert all(value == 0 for value in results["attributes"]["J"]["flow"])
    odds = results["odds_ratio"]["measured"]
    assert odds["low"] <= odds["ratio"] <= odds["high"]
    assert [Path(p).name for p in results["stills"]] == ["alpha.jpg", "beta.jpg"] and (out / "stills" / "beta.jpg").is_file()


def test_vondrick_multi_object_subset_is_the_sequences_with_two_objects(vondrick):
    out, results, _, _ = vondrick
    multi = results["multi_object"]
    assert multi["sequences"] == ["beta"] and multi["note"] == ""
    rows = json.loads((out / "davis" / "ours" / "results.json").read_text())["sequences"]
    beta = [row["J"] for row in rows if row["sequence"] == "beta"]
    ours = next(row for row in multi["rows"] if row["ours"] == "ours")
    assert len(beta) == 2 and ours["measured"]["J"] == pytest.approx(np.mean(beta)) and ours["published"]["J"] == 31.0


def test_vondrick_resumes_without_recomputing(vondrick):
    out, first, before, _ = vondrick
    after = _mtimes(out, "*.png") | _mtimes(out, "keypoints.json") | _mtimes(out, "report_*.json") | _mtimes(out, "*.jpg")
    assert before and after == before
    assert json.loads((out / "results.json").read_text()) == first


def test_vondrick_refuses_a_folder_of_another_configuration(vondrick):
    out, _, _, args = vondrick
    assert main([*args[:-1], "--method", "flow", "--quiet"]) != 0


def test_single_object_data_has_an_empty_multi_object_subset_said_plainly():
    rows = [{"sequence": "a", "object": 1, "J": 50.0}, {"sequence": "b", "object": 1, "J": 60.0}]
    run = EvalRun(Path("."), "x", {"sequences": rows}, {})
    assert multi_object_sequences(run) == []
    assert "empty" in multi_object_note([]) and multi_object_note(["b"]) == ""


@pytest.fixture(scope="module")
def akimoto(tmp_path_factory, davis_root):
    out = tmp_path_factory.mktemp("akimoto") / "out"
    args = ["reproduce", "akimoto", "--davis", str(davis_root), "--out", str(out), "--refs", "first,10th+N-10th",
            "--max-frames", "6", "--short-side", "0", "--quiet"]
    assert main(args) == 0
    before = _mtimes(out, "sequences/*.json")
    first = json.loads((out / "results.json").read_text())
    assert main(args) == 0
    return out, first, before


def test_akimoto_writes_table_1_outliers_over_time_and_refinement(akimoto, davis_root):
    out, results, _ = akimoto
    page = (out / "index.html").read_text()
    assert "http://" not in page and "https://" not in page
    for anchor in ("id='table1'", "id='table1-refined'", "id='refinement'", "id='plot-outliers-first'", "id='baselines'"):
        assert anchor in page
    rows = results["table1"]["rows"]
    assert [row["name"] for row in rows] == [row.name for row in AKIMOTO_TABLE1.rows]
    assert results["table1"]["published"]["table"] == "Table 1" and "not available" in results["table1"]["published"]["notes"][0]
    measured = {row["ours"]: row["measured"] for row in rows}
    evaluated = json.loads((out / "colorize" / "first" / "results.json").read_text())["methods"]
    assert measured["first/spatiotemporal+inst"]["PSNR"] == evaluated["spatiotemporal+inst"]["psnr"]
    assert measured["10th/reference"] is None  # a reference setting not run
    refined = {row["ours"]: row["measured"] for row in results["table1_refined"]["rows"]}
    assert refined["first/reference"]["PSNR"] == evaluated["reference+refine"]["psnr"]
    curve = results["outliers_over_time"]["first"]["spatiotemporal+inst"]
    assert len(curve) == 6 and curve[0] is None and all(value is not None for value in curve[1:])
    assert set(results["refinement"]["10th+N-10th"]) >= {"reference", "reference+refine", "flow"}


def test_akimoto_resumes_without_recomputing(akimoto):
    out, first, before = akimoto
    assert before and _mtimes(out, "sequences/*.json") == before
    assert json.loads((out / "results.json").read_text()) == first


def test_reference_settings_of_akimoto_et_al():
    assert reference_frames("10th+N-10th", 30) == [9, 19]
    assert reference_frames("10th+N-10th", 12) == [1, 9]
    assert reference_frames("10th+N-10th", 5) == [0, 4]


def test_outliers_are_recorded_per_frame_and_averaged_over_sequences():
    scores = ColorScores()
    truth = np.zeros((2, 2, 3), np.uint8)
    pred = truth.copy()
    pred[0, 0] = 40  # one of four pixels off by 40 > 16
    scores.add(truth, truth, scored=False)
    scores.add(pred, truth)
    assert scores.summary()["outliers_by_frame"] == [None, 25.0]
    sequences = {"a": {"m": {"outliers_by_frame": [None, 25.0, 0.0]}}, "b": {"m": {"outliers_by_frame": [None, 75.0]}}}
    assert outliers_over_time(sequences, "m") == [None, 50.0, 0.0]


def test_the_image_colorization_baseline_loads_strictly_by_name():
    from colortrack.models.registry import checkpoint_path, load_model
    from colortrack.train.checkpoint import read_meta

    model = load_model("image-colorization", torch.device("cpu"))
    meta = read_meta(checkpoint_path("image-colorization"))
    assert meta["train_config"]["objective"] == "image" and model.config.input_mode == "gray"
    assert not model.training


def test_vondrick_fine_weight_reaches_the_learned_methods_only():
    from colortrack.eval.reproduce.vondrick import VondrickConfig, _tracker

    config = VondrickConfig(davis="unused", fine_weight=30.0)
    assert _tracker("model", config, "cpu").for_points().config.fine_weight == 30.0
    assert _tracker("model", VondrickConfig(davis="unused"), "cpu").config.fine_weight == 100.0  # the preset's
    assert _tracker("model", VondrickConfig(davis="unused", embed_dims=0), "cpu").config.embed_dims is None
    assert _tracker("flow", config, "cpu").method == "flow"  # a training-free method has no fine weight to refuse
