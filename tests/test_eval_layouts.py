"""``colortrack eval davis`` on layouts whose masks cover only some frames: objects that enter
later, 1-based file names, sparse annotations (DAVIS test-dev, YouTube-VOS style)."""

import json

import numpy as np
import pytest

from colortrack.cli.main import main
from colortrack.demo.synthetic import make_video
from colortrack.io.masks import read_mask, write_mask
from colortrack.io.video import write_frames_png


def write_sequence(root, name, frames, masks, annotated, first_number):
    write_frames_png(root / "JPEGImages" / "480p" / name, frames, start_index=first_number)
    for t in annotated:
        write_mask(root / "Annotations" / "480p" / name / f"{t + first_number:05d}.png", masks[t])


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """'still': one frame repeated 9 times, named from 00001, object 2 entering on frame 3,
    annotations on frames 0, 3, 5 and 8 only. 'moving': 8 frames from 00000, object 2 entering
    the scene on frame 3, every frame annotated."""
    root = tmp_path_factory.mktemp("layout")
    video = make_video(num_frames=8, height=96, width=128, num_objects=2, seed=3, cross=False)
    still = np.repeat(video.masks[:1], 9, axis=0)
    still[:3][still[:3] == 2] = 0
    write_sequence(root, "still", np.repeat(video.frames[:1], 9, axis=0), still, [0, 3, 5, 8], first_number=1)
    without = make_video(num_frames=8, height=96, width=128, num_objects=1, seed=3, cross=False)  # same, no object 2
    frames = np.concatenate([without.frames[:3], video.frames[3:]])
    moving = np.concatenate([without.masks[:3], video.masks[3:]])
    write_sequence(root, "moving", frames, moving, range(8), first_number=0)
    return root, still, moving


def evaluate(root, out, sequences, method="identity"):
    args = ["eval", "davis", "--root", str(root), "--sequences", sequences, "--method", method, "--out", str(out)]
    assert main([*args, "--quiet"]) == 0
    return json.loads((out / "results.json").read_text())


def test_outputs_are_named_after_the_source_frames_and_only_annotated_frames_are_scored(layout, tmp_path):
    root, still, _ = layout
    results = evaluate(root, tmp_path, "still")
    assert sorted(p.name for p in (tmp_path / "still").glob("*.png")) == [f"{t:05d}.png" for t in range(1, 10)]
    assert results["J&F"] == pytest.approx(100.0)
    assert [(row["sequence"], row["object"]) for row in results["sequences"]] == [("still", 1), ("still", 2)]


def test_an_object_is_given_where_it_first_appears_and_not_before(layout, tmp_path):
    root, still, _ = layout
    evaluate(root, tmp_path, "still")
    predicted = np.stack([read_mask(tmp_path / "still" / f"{t:05d}.png") for t in range(1, 10)])
    assert not (predicted[:3] == 2).any()
    np.testing.assert_array_equal(predicted[3:], still[3:])


def test_a_tracker_follows_an_object_that_enters_later(layout, tmp_path):
    root, _, moving = layout
    tracked = evaluate(root, tmp_path / "color", "moving", method="color")
    still = evaluate(root, tmp_path / "identity", "moving", method="identity")
    assert [row["object"] for row in tracked["sequences"]] == [1, 2]
    assert tracked["sequences"][1]["J"] > still["sequences"][1]["J"]
    predicted = read_mask(tmp_path / "color" / "moving" / "00002.png")
    assert not (predicted == 2).any()


def test_the_report_reads_evaluations_of_sparse_layouts(layout, tmp_path):
    root, _, _ = layout
    evaluate(root, tmp_path / "identity", "still,moving")
    report = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "identity"), "--out", str(report), "--color-step", "4", "--quiet"]) == 0
    frames = json.loads((tmp_path / "identity" / "report_frames.json").read_text())["sequences"]
    assert len(frames["still"]["J"]) == 2  # annotated frames 3 and 5 (0 is given, 8 is the last)
    assert len(frames["moving"]["J"]) == 6  # frames 1 .. 6, object 2 on 4 .. 6 only
