"""DAVIS J / F metrics: hand-computed cases of the official davis2017-evaluation protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest

from colortrack.eval.metrics.davis import (
    ObjectScores,
    boundary_f,
    boundary_precision_recall,
    boundary_tolerance,
    decay,
    decay_bins,
    evaluate_sequence,
    format_table,
    jaccard,
    seg2bmap,
    summarize,
)


def box(shape, r0, r1, c0, c1):
    """Mask with rows r0..r1-1 and cols c0..c1-1 set."""
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


# --------------------------------------------------------------------------- J


def test_jaccard_of_two_overlapping_squares():
    # two 4x4 squares overlapping in a 2x2 block: 4 / (16 + 16 - 4) = 1/7
    pred, gt = box((10, 10), 0, 4, 0, 4), box((10, 10), 2, 6, 2, 6)
    assert jaccard(pred, gt) == pytest.approx(1 / 7)
    assert jaccard(gt, pred) == pytest.approx(1 / 7)


def test_jaccard_empty_cases():
    empty, some = np.zeros((5, 7), bool), box((5, 7), 1, 3, 1, 3)
    assert jaccard(empty, empty) == 1.0
    assert jaccard(some, empty) == 0.0
    assert jaccard(empty, some) == 0.0


def test_jaccard_void_pixels_are_left_out():
    pred, gt = box((10, 10), 0, 4, 0, 4), box((10, 10), 2, 6, 2, 6)
    void = box((10, 10), 0, 10, 0, 2)  # removes 8 pred pixels (cols 0-1), no gt pixel
    # pred becomes rows 0-3 x cols 2-3 (8 px): 4 / (8 + 16 - 4) = 0.2
    assert jaccard(pred, gt, void) == pytest.approx(0.2)
    # both non-empty only inside void -> empty union -> 1
    assert jaccard(void, void, void) == 1.0


def test_jaccard_shape_mismatch():
    with pytest.raises(ValueError):
        jaccard(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


# --------------------------------------------------------------------------- seg2bmap


def test_seg2bmap_of_a_square_is_a_ring_shifted_towards_the_origin():
    mask = box((6, 6), 1, 4, 1, 4)  # 3x3 square at rows/cols 1..3
    expected = np.array(
        [
            [1, 1, 1, 1, 0, 0],
            [1, 0, 0, 1, 0, 0],
            [1, 0, 0, 1, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        bool,
    )
    np.testing.assert_array_equal(seg2bmap(mask), expected)


def test_seg2bmap_image_border_rules():
    # a full mask has no boundary (last row/column compare only along the border)
    assert not seg2bmap(np.ones((4, 5), bool)).any()
    # object in the last column: the boundary is the column before it, all rows;
    # the object pixels themselves are not boundary (same as the pixel below / corner rule)
    mask = box((4, 4), 0, 4, 3, 4)
    np.testing.assert_array_equal(seg2bmap(mask), box((4, 4), 0, 4, 2, 3))
    # a single pixel in the bottom-right corner: its left neighbour (last-row rule),
    # the pixel above it (last-column rule) and the diagonal one
    mask = box((3, 3), 2, 3, 2, 3)
    expected = np.array([[0, 0, 0], [0, 1, 1], [0, 1, 0]], bool)
    np.testing.assert_array_equal(seg2bmap(mask), expected)


# --------------------------------------------------------------------------- F


def test_boundary_tolerance_from_the_diagonal():
    # sqrt(480^2 + 854^2) = sqrt(959716) = 979.65; * 0.008 = 7.84 -> 8 px
    assert boundary_tolerance((480, 854)) == 8
    # sqrt(2) * 100 * 0.008 = 1.13 -> 2 px
    assert boundary_tolerance((100, 100)) == 2
    # >= 1 is a radius in pixels
    assert boundary_tolerance((480, 854), 3) == 3


@pytest.mark.parametrize("shift", [1, 2])
def test_boundary_f_shift_within_tolerance_is_perfect(shift):
    gt = box((100, 100), 20, 60, 20, 60)  # tolerance 2 px
    pred = box((100, 100), 20, 60, 20 + shift, 60 + shift)
    assert jaccard(pred, gt) < 1
    assert boundary_f(pred, gt) == pytest.approx(1.0)


def test_boundary_f_shift_beyond_tolerance_hand_computed():
    # 40x40 square shifted 5 px right, tolerance 2 px (disk of radius 2).
    # each boundary ring has 160 px (rows 19/59 x 41 px, cols x 39 px). Matched pred pixels:
    # top and bottom rows x = 24..61 (2 x 38), left column rows 20, 21, 57, 58 (4) -> 80.
    # By symmetry recall is 80 / 160 too: P = R = F = 0.5.
    gt = box((100, 100), 20, 60, 20, 60)
    pred = box((100, 100), 20, 60, 25, 65)
    assert seg2bmap(gt).sum() == seg2bmap(pred).sum() == 160
    assert boundary_precision_recall(pred, gt) == pytest.approx((0.5, 0.5))
    assert boundary_f(pred, gt) == pytest.approx(0.5)
    # an extra far-away 3x3 blob adds a 12 px ring to pred only: P = 160 / 172, R = 1
    pred = gt | box((100, 100), 80, 83, 80, 83)
    p = 160 / 172
    assert boundary_precision_recall(pred, gt) == pytest.approx((p, 1.0))
    assert boundary_f(pred, gt) == pytest.approx(2 * p / (p + 1))
    pred = box((100, 100), 20, 60, 25, 65)
    # with a 6 px radius everything matches
    assert boundary_f(pred, gt, bound_th=6) == pytest.approx(1.0)


def test_boundary_f_uses_ceil_of_diagonal_tolerance_at_davis_size():
    # 854x480 -> 8 px: a 8 px shift still matches, a 9 px shift leaves the far sides unmatched
    gt = box((480, 854), 100, 300, 200, 500)
    assert boundary_f(box((480, 854), 100, 300, 208, 508), gt) == pytest.approx(1.0)
    assert boundary_f(box((480, 854), 100, 300, 209, 509), gt) < 1.0


def test_boundary_f_special_cases():
    empty, some, full = np.zeros((20, 20), bool), box((20, 20), 5, 10, 5, 10), np.ones((20, 20), bool)
    assert boundary_precision_recall(empty, empty) == (1.0, 1.0)
    assert boundary_precision_recall(empty, some) == (1.0, 0.0)
    assert boundary_precision_recall(some, empty) == (0.0, 1.0)
    assert boundary_f(empty, empty) == 1.0
    assert boundary_f(empty, some) == 0.0
    assert boundary_f(some, empty) == 0.0
    assert boundary_f(full, full) == 1.0  # no boundary at all on either side
    # both boundaries exist but none matches: P = R = 0 -> F = 0
    assert boundary_f(box((40, 40), 0, 3, 0, 3), box((40, 40), 30, 33, 30, 33)) == 0.0


def test_boundary_f_void_removed_from_both_masks():
    gt = np.zeros((20, 20), bool)
    pred = box((20, 20), 5, 10, 5, 10)
    void = box((20, 20), 0, 20, 0, 12)
    assert boundary_f(pred, gt) == 0.0
    assert boundary_f(pred, gt, void) == 1.0  # pred entirely void -> both empty


# --------------------------------------------------------------------------- statistics


def test_decay_bins_official_boundaries():
    # linspace(1, 10, 5) = 1, 3.25, 5.5, 7.75, 10 -> rounded - 1 = 0, 2, 5, 7, 9; end-inclusive
    assert decay_bins(10) == [slice(0, 3), slice(2, 6), slice(5, 8), slice(7, 10)]
    assert decay_bins(5) == [slice(0, 2), slice(1, 3), slice(2, 4), slice(3, 5)]
    # the 1e-10 rounds the .5 cases up (np.round alone rounds 2.5 -> 2):
    # n = 3: 1, 1.5, 2, 2.5, 3 -> 0, 1, 1, 2, 2;  n = 7: 1, 2.5, 4, 5.5, 7 -> 0, 2, 3, 5, 6
    assert decay_bins(3) == [slice(0, 2), slice(1, 2), slice(1, 3), slice(2, 3)]
    assert decay_bins(7) == [slice(0, 3), slice(2, 4), slice(3, 6), slice(5, 7)]


def test_decay_on_hand_made_sequence():
    values = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    # mean(1, .9, .8) - mean(.3, .2, .1) = .9 - .2 (array_split into 4 would give .75)
    assert decay(values) == pytest.approx(0.7)
    assert decay(np.array([1.0, 0.5, 0.5, 0.5, 0.0])) == pytest.approx(0.75 - 0.25)
    assert decay(np.array([0.3])) == 0.0
    assert decay(np.array([1.0, 0.5, 0.0])) == pytest.approx(0.75)  # mean(1, .5) - mean(0)


def test_object_scores_statistics():
    s = ObjectScores("seq", 1, J=np.array([0.5, 0.6, 0.4, 1.0]), F=np.array([1.0, 1.0, 0.0, 0.0]))
    assert s.J_mean == pytest.approx(0.625)
    assert s.J_recall == pytest.approx(0.5)  # strictly greater than 0.5
    # n = 4: boundaries 0, 1, 2, 2, 3 (rounded 1.75 -> 2, 2.5 -> 3 with the 1e-10) ...
    assert decay_bins(4) == [slice(0, 2), slice(1, 3), slice(2, 3), slice(2, 4)]
    assert s.J_decay == pytest.approx(0.55 - 0.7)
    assert s.F_mean == pytest.approx(0.5)
    assert s.F_recall == pytest.approx(0.5)
    assert s.F_decay == pytest.approx(1.0 - 0.0)


# --------------------------------------------------------------------------- sequences


def test_first_and_last_frames_are_not_scored():
    gt = np.zeros((4, 10, 10), np.uint8)
    gt[:, 2:6, 2:6] = 1
    pred = gt.copy()
    pred[0] = 0  # wrong on the first and the last frame only
    pred[3] = 0
    (s,) = evaluate_sequence("seq", pred, gt)
    assert (s.sequence, s.object_id) == ("seq", 1)
    np.testing.assert_array_equal(s.J, [1.0, 1.0])
    np.testing.assert_array_equal(s.F, [1.0, 1.0])
    pred[1] = 0
    (s,) = evaluate_sequence("seq", pred, gt)
    np.testing.assert_array_equal(s.J, [0.0, 1.0])


def test_number_of_objects_is_the_max_id_annotated():
    gt = np.zeros((3, 10, 10), np.uint8)
    gt[0, 0:2, 0:2] = 1
    gt[0, 5:7, 5:7] = 3  # id 2 absent: still objects 1, 2, 3
    gt[0, 9, 9] = 255  # void is no object
    gt[1, 0:2, 0:2] = 1
    gt[1, 8:10, 0:2] = 4  # appears on frame 1: scored from frame 2, the last one, so not at all
    pred = np.zeros_like(gt)
    pred[1, 0:2, 0:2] = 1
    scores = evaluate_sequence("s", pred, gt)
    assert [s.object_id for s in scores] == [1, 2, 3, 4]
    assert [float(s.J[0]) for s in scores[:3]] == [1.0, 1.0, 1.0]  # 2 and 3 absent in both
    assert not scores[3].scored
    pred[1, 5, 5] = 3  # a false positive of object 3
    assert evaluate_sequence("s", pred, gt)[2].J[0] == 0.0


def test_an_object_that_appears_later_is_scored_after_its_first_annotation():
    gt = np.zeros((6, 10, 10), np.uint8)
    gt[:, 0:3, 0:3] = 1
    gt[2:, 6:9, 6:9] = 2
    pred = gt.copy()
    pred[2] = 0  # object 2's given frame: not scored
    pred[4, 6:9, 6:9] = 0
    one, two = evaluate_sequence("s", pred, gt)
    np.testing.assert_array_equal(one.J, [1.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(two.J, [1.0, 0.0])


def test_sparse_annotations_are_scored_on_their_own_frames_only():
    gt = np.zeros((4, 10, 10), np.uint8)
    gt[:, 0:3, 0:3] = 1
    pred = gt.copy()
    pred[1] = 0
    pred[3] = 0  # frame 20, the video's last: not scored
    (s,) = evaluate_sequence("s", pred, gt, frames=[0, 5, 10, 20], num_frames=21)
    np.testing.assert_array_equal(s.J, [0.0, 1.0])
    (s,) = evaluate_sequence("s", pred, gt, frames=[0, 5, 10, 20], num_frames=40)
    np.testing.assert_array_equal(s.J, [0.0, 1.0, 0.0])


def test_evaluate_sequence_rejects_bad_input():
    gt = np.zeros((3, 10, 10), np.uint8)
    gt[0, 1:3, 1:3] = 1
    with pytest.raises(ValueError):
        evaluate_sequence("s", np.zeros((3, 10, 11), np.uint8), gt)
    with pytest.raises(ValueError):
        evaluate_sequence("s", np.zeros((2, 10, 10), np.uint8), gt)
    pred = np.zeros_like(gt)
    pred[1, 0, 0] = 2  # an id no frame has
    with pytest.raises(ValueError):
        evaluate_sequence("s", pred, gt)


def test_void_in_gt_is_background_by_default_and_excluded_on_request():
    gt = np.zeros((3, 10, 10), np.uint8)
    gt[:, 0:4, 0:4] = 1
    gt[:, 0:4, 4:6] = 255
    pred = np.zeros_like(gt)
    pred[:, 0:4, 0:6] = 1  # object plus the void band
    (s,) = evaluate_sequence("s", pred, gt)  # official: void counts as background
    assert s.J[0] == pytest.approx(16 / 24)
    (s,) = evaluate_sequence("s", pred, gt, exclude_void=True)
    assert s.J[0] == 1.0


# --------------------------------------------------------------------------- summary


def _two_objects():
    a = ObjectScores("a", 1, J=np.ones(4), F=np.full(4, 0.5))
    b = ObjectScores("b", 1, J=np.array([0.0, 0.5]), F=np.ones(2))
    return a, b


def test_summarize_averages_per_object_means():
    summary = summarize(list(_two_objects()))
    # J: mean(1, 0.25) = 0.625 (pooling the 6 frames would give 0.75)
    assert summary.J_mean == pytest.approx(62.5)
    assert summary.F_mean == pytest.approx(75.0)
    assert summary.JF_mean == pytest.approx(68.75)
    assert summary.J_recall == pytest.approx(50.0)  # a: 1, b: 0 (0.5 is not > 0.5)
    assert summary.F_recall == pytest.approx(50.0)  # a: 0 (0.5 is not > 0.5), b: 1
    # decay: a 0; b (n = 2: bins [0:1], [0:2], [1:2], [1:2]) = 0 - 0.5
    assert summary.J_decay == pytest.approx(-25.0)
    assert summary.F_decay == pytest.approx(0.0)
    assert summary.per_sequence == [
        {"sequence": "a", "object": 1, "J": 100.0, "F": 50.0, "J&F": 75.0},
        {"sequence": "b", "object": 1, "J": 25.0, "F": 100.0, "J&F": 62.5},
    ]


def test_summary_json_and_table():
    summary = summarize(list(_two_objects()))
    out = summary.to_json()
    assert set(out) == {"J&F", "J", "F", "J-Recall", "J-Decay", "F-Recall", "F-Decay", "sequences", "unscored"}
    assert out["J&F"] == pytest.approx(68.75)
    assert out["J-Decay"] == pytest.approx(-25.0)
    assert json.loads(json.dumps(out))["sequences"][1]["J&F"] == pytest.approx(62.5)
    table = format_table(summary)
    lines = table.splitlines()
    assert any(line.split()[:2] == ["a", "1"] and "75.0" in line for line in lines)
    overall = next(line for line in lines if line.startswith("Overall"))
    assert overall.split()[1:] == ["68.8", "62.5", "75.0"]


def test_nothing_to_score_is_an_error_not_nan():
    with pytest.raises(ValueError, match="no object has a frame to score"):
        summarize([])
    two_frames = evaluate_sequence("short", np.zeros((2, 8, 8), np.uint8), np.ones((2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="no object has a frame to score"):
        summarize(two_frames)


def test_a_two_frame_sequence_is_listed_not_averaged():
    gt = np.zeros((2, 8, 8), np.uint8)
    gt[:, 2:6, 2:6] = 1
    short = evaluate_sequence("short", gt, gt)
    summary = summarize([*_two_objects(), *short])
    assert summary.JF_mean == pytest.approx(68.75)  # a and b alone
    assert summary.unscored == [{"sequence": "short", "object": 1}]
    out = json.dumps(summary.to_json(), allow_nan=False)  # raises on NaN
    assert json.loads(out)["unscored"] == [{"sequence": "short", "object": 1}]
    table = format_table(summary)
    assert "nan" not in table.lower()
    assert table.splitlines()[-1] == "Not scored, no annotated frame between the first and the last: short (object 1)"
