import json

import numpy as np
import pytest

from colortrack.cli.main import main
from colortrack.errors import InputError
from colortrack.eval.compare import compare_runs, load_units


def davis_results(path, scores):
    """scores: {sequence: [J&F of each object]} (J = F = J&F)."""
    rows = [{"sequence": s, "object": i + 1, "J": v, "F": v, "J&F": v} for s, values in scores.items() for i, v in enumerate(values)]
    mean = float(np.mean([row["J&F"] for row in rows]))
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps({"J&F": mean, "J": mean, "F": mean, "sequences": rows}))
    return path


def keypoint_results(path, joints, pooled):
    """joints: {name: (correct, scored)} at one alpha."""
    per_joint = {n: {"PCK@0.1": 100.0 * c / s if s else None, "scored": s} for n, (c, s) in joints.items()}
    scored = [(c, s) for c, s in joints.values() if s]
    headline = 100.0 * sum(c for c, _ in scored) / sum(s for _, s in scored) if pooled else float(np.mean([100.0 * c / s for c, s in scored]))
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps({"PCK@0.1": headline, "scored": sum(s for _, s in scored), "per_joint": per_joint}))
    return path


def test_davis_headline_is_the_mean_over_objects_and_units_are_sequences(tmp_path):
    units = load_units(davis_results(tmp_path / "a", {"x": [60.0, 80.0], "y": [40.0]}))
    assert units.names == ("x", "y")
    assert units.headline("J&F") == pytest.approx(60.0)
    assert units.headline("J&F", np.array([[0, 0], [1, 1]])).tolist() == pytest.approx([70.0, 40.0])


@pytest.mark.parametrize("pooled", [True, False])
def test_keypoint_headlines_pooled_or_averaged_are_recovered_from_the_joints(tmp_path, pooled):
    joints = {"a": (1, 2), "b": (3, 4), "never": (0, 0)}
    units = load_units(keypoint_results(tmp_path / "r", joints, pooled))
    assert units.names == ("a", "b")
    assert units.headline("PCK@0.1") == pytest.approx(100 * 4 / 6 if pooled else 62.5)


def test_a_uniform_gain_has_a_point_interval_and_identical_runs_differ_by_nothing(tmp_path):
    first = load_units(davis_results(tmp_path / "a", {"x": [60.0], "y": [40.0], "z": [50.0]}))
    better = load_units(davis_results(tmp_path / "b", {"x": [70.0], "y": [50.0], "z": [60.0]}))
    gain = compare_runs(first, better, resamples=200)[0]
    assert (gain.metric, gain.difference, gain.low, gain.high) == ("J&F", pytest.approx(10.0), pytest.approx(10.0), pytest.approx(10.0))
    same = compare_runs(first, first, resamples=200)[0]
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)


def test_the_interval_widens_with_disagreement_between_units_and_holds_the_difference(tmp_path):
    first = load_units(davis_results(tmp_path / "a", {s: [50.0] for s in "abcdef"}))
    mixed = load_units(davis_results(tmp_path / "b", dict(zip("abcdef", ([80.0], [20.0], [60.0], [40.0], [70.0], [30.0])))))
    c = compare_runs(first, mixed, resamples=2000)[0]
    assert c.difference == pytest.approx(0.0)
    assert c.low < -5.0 and c.high > 5.0


def test_runs_of_other_units_or_benchmarks_are_refused_in_one_line(tmp_path):
    a = load_units(davis_results(tmp_path / "a", {"x": [60.0]}))
    b = load_units(davis_results(tmp_path / "b", {"y": [60.0]}))
    k = load_units(keypoint_results(tmp_path / "k", {"j": (1, 2)}, pooled=True))
    for other in (b, k):
        with pytest.raises(InputError, match="cannot be paired"):
            compare_runs(a, other)
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(InputError, match="is not the results.json"):
        load_units(tmp_path / "bad.json")
    with pytest.raises(InputError, match="no such results file"):
        load_units(tmp_path / "missing")


def test_command_line_prints_and_writes_what_the_library_computes(tmp_path, capsys):
    a = davis_results(tmp_path / "a", {"x": [60.0], "y": [40.0], "z": [55.0]})
    b = davis_results(tmp_path / "b", {"x": [65.0], "y": [41.0], "z": [50.0]})
    assert main(["eval", "compare", str(a), str(b), "--resamples", "500", "--out", str(tmp_path / "c.json")]) == 0
    written = json.loads((tmp_path / "c.json").read_text())
    expected = compare_runs(load_units(a), load_units(b), resamples=500)
    assert written["metrics"] == [c.to_dict() for c in expected]
    assert "3 sequences" in capsys.readouterr().out
