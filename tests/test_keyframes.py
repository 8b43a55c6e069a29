import numpy as np
import pytest
import torch

from colortrack.core.affinity import AffinityConfig
from colortrack.core.memory import MemoryConfig
from colortrack.core.tracker import PRESETS, LabelTracker, TrackConfig
from colortrack.demo.synthetic import make_video, translated_texture
from colortrack.errors import InputError
from colortrack.io.masks import LabelMap
from colortrack.models.baselines import IdentityPropagator
from colortrack.models.embedders.color import LabPatchEmbedder
from colortrack.tasks.keyframes import (
    KeyframeSession,
    Segment,
    affected_frames,
    propagate_first_appearances,
    propagate_keyframe_masks,
    propagate_keyframes,
    split_segments,
)
from colortrack.tasks.masks import propagate_mask
from test_tracker import cell_exact, exact_tracker, iou


def mean_iou(predicted, truth, frames):
    return np.mean([np.mean([iou(predicted[t] == k, truth[t] == k) for k in np.unique(truth) if k]) for t in frames])


def color_tracker():
    return LabelTracker(LabPatchEmbedder(), PRESETS["color"], torch.device("cpu"))


class CountingPropagator:
    """Counts the frames a propagator is asked to predict (the annotated first one excluded)."""

    def __init__(self, inner):
        self.inner, self.predicted = inner, 0

    def track(self, frames, first_labels, pinned=()):
        for index, labels in enumerate(self.inner.track(frames, first_labels, pinned)):
            self.predicted += index > 0
            yield labels


def test_segments_cover_every_frame_that_is_not_a_keyframe():
    assert split_segments([3, 6], 10) == [Segment(None, 3, 0, 2), Segment(3, 6, 4, 5), Segment(6, None, 7, 9)]
    assert split_segments([0, 1, 9], 10) == [Segment(1, 9, 2, 8)]
    assert split_segments([0], 1) == []


def test_affected_frames_stop_at_the_neighbouring_keyframes():
    assert affected_frames([0, 10, 20], 10, 30) == range(1, 20)
    assert affected_frames([0, 10, 20], 20, 30) == range(11, 30)
    assert affected_frames([5], 5, 30) == range(0, 30)


def test_frames_between_two_keyframes_are_blended_by_temporal_distance():
    frames = np.zeros((5, 4, 4, 3), np.uint8)
    first, last = np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 4), np.float32)
    first[0], last[1] = 1.0, 1.0
    predicted = list(propagate_keyframes(IdentityPropagator(), frames, {0: first, 4: last}))
    for t, labels in enumerate(predicted):
        np.testing.assert_allclose(labels, (4 - t) / 4 * first + t / 4 * last, atol=1e-3, err_msg=f"frame {t}")


def test_one_keyframe_at_the_start_is_plain_propagation():
    video = make_video(num_frames=8, height=64, width=96, num_objects=2, seed=1)
    plain = list(propagate_mask(color_tracker(), video.frames, video.masks[0]))
    keyed = list(propagate_keyframe_masks(color_tracker(), video.frames, {0: video.masks[0]}))
    np.testing.assert_array_equal(np.stack(keyed), np.stack(plain))


def test_first_appearances_with_every_object_on_frame_0_are_plain_propagation():
    video = make_video(num_frames=6, height=64, width=96, num_objects=2, seed=1)
    plain = list(propagate_mask(color_tracker(), video.frames, video.masks[0]))
    appearances = list(propagate_first_appearances(color_tracker(), video.frames, {0: video.masks[0]}))
    np.testing.assert_array_equal(np.stack(appearances), np.stack(plain))


def test_an_object_given_where_it_first_appears_replaces_the_prediction_there_only():
    frames = np.zeros((6, 8, 8, 3), np.uint8)
    first, entering = np.zeros((8, 8), np.uint8), np.full((8, 8), 255, np.uint8)
    first[:2] = 1
    entering[4:, :4] = 2
    predicted = list(propagate_first_appearances(IdentityPropagator(), frames, {1: first, 3: entering}))
    assert not predicted[0].any()  # before the first annotation: background
    np.testing.assert_array_equal(predicted[1], first)
    assert not (np.stack(predicted[:3]) == 2).any()
    for t in (3, 4, 5):
        np.testing.assert_array_equal(predicted[t], np.where(entering == 2, 2, first), err_msg=f"frame {t}")


def test_frames_before_the_first_keyframe_are_propagated_backward_exactly():
    # The square ends 4 cells from the border at frame 4, clear of the patches' padded border.
    video = translated_texture(num_frames=5, height=192, width=256, shift=(0, 8), seed=3)
    label_map = LabelMap.from_mask(video.masks[4])
    predicted = list(propagate_keyframes(exact_tracker(), video.frames, {4: label_map.to_onehot(video.masks[4])}))
    assert len(predicted) == 5
    for t in range(4):
        np.testing.assert_allclose(predicted[t], cell_exact(label_map.to_onehot(video.masks[t])), atol=1e-3, err_msg=f"frame {t}")


def test_a_second_keyframe_beats_one_on_a_drifting_sequence():
    video = make_video(num_frames=24, height=96, width=128, num_objects=2, seed=5, scale_range=(0.6, 1.4))
    scored = [t for t in range(1, 23) if t != 12]
    one = list(propagate_keyframe_masks(color_tracker(), video.frames, {0: video.masks[0]}))
    two = list(propagate_keyframe_masks(color_tracker(), video.frames, {0: video.masks[0], 12: video.masks[12]}))
    assert mean_iou(two, video.masks, scored) > mean_iou(one, video.masks, scored) + 0.05


def test_an_object_first_annotated_at_a_later_keyframe_is_tracked_from_there():
    video = translated_texture(num_frames=8, height=192, width=256, shift=(0, 8), seed=3)
    keyframes = {0: np.zeros_like(video.masks[0]), 4: video.masks[4]}
    assert LabelMap.from_masks(keyframes.values()).object_ids == (1,)
    predicted = list(propagate_keyframe_masks(exact_tracker(), video.frames, keyframes))
    for t in range(5, 8):
        assert iou(predicted[t] == 1, video.masks[t] == 1) > 0.95, f"frame {t}"
    # Between the keyframe without it and the one with it, it fades with the blend weights.
    assert not predicted[1].any() and iou(predicted[3] == 1, video.masks[3] == 1) > 0.95


def test_a_correction_recomputes_only_the_frames_it_affects_and_equals_a_full_run():
    video = make_video(num_frames=14, height=48, width=64, num_objects=2, seed=4)
    counting = CountingPropagator(exact_tracker(recent=3))
    session = KeyframeSession(counting, video.frames)
    session.set_keyframe(0, video.masks[0])
    session.set_keyframe(7, video.masks[7])
    updates = list(session.propagate())
    assert [u.index for u in updates] == [t for t in range(14) if t not in (0, 7)]
    assert updates[-1].done == updates[-1].total == 12
    counting.predicted = 0
    corrected = np.where(video.masks[11] == 1, 3, video.masks[11])  # a new object id too
    assert session.set_keyframe(11, corrected) == range(8, 14)
    assert session.stale == [8, 9, 10, 12, 13]
    assert [u.index for u in session.propagate()] == [8, 9, 10, 12, 13]
    assert counting.predicted == 3 * 2 + 2  # 8..10 from both sides, 12..13 forward only
    fresh = KeyframeSession(exact_tracker(recent=3), video.frames)
    for t, mask in ((0, video.masks[0]), (7, video.masks[7]), (11, corrected)):
        fresh.set_keyframe(t, mask)
    list(fresh.propagate())
    np.testing.assert_array_equal(np.stack(session.masks), np.stack(fresh.masks))
    np.testing.assert_allclose(session.confidence, fresh.confidence)


def test_removing_a_keyframe_recomputes_the_merged_segment():
    video = make_video(num_frames=12, height=64, width=96, num_objects=1, seed=6)
    session = KeyframeSession(IdentityPropagator(), video.frames)
    for t in (0, 4, 8):
        session.set_keyframe(t, video.masks[t])
    list(session.propagate())
    assert session.remove_keyframe(4) == range(1, 8)
    assert session.stale == list(range(1, 8))
    list(session.propagate())
    assert session.stale == [] and set(session.keyframes) == {0, 8}
    assert 4 in session.least_confident(12)


@pytest.mark.parametrize(
    ("index", "shape", "problem"),
    [(20, (64, 96), "out of range"), (-1, (64, 96), "out of range"), (3, (32, 96), "96x32")],
)
def test_bad_keyframes_are_refused_with_a_clear_error(index, shape, problem):
    video = make_video(num_frames=20, height=64, width=96, num_objects=1, seed=6)
    with pytest.raises(InputError, match=problem):
        KeyframeSession(IdentityPropagator(), video.frames).set_keyframe(index, np.zeros(shape, np.uint8))
