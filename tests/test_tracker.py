from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colortrack.core.affinity import AffinityConfig
from colortrack.models.baselines import FarnebackPropagator, FlowPropagator, IdentityPropagator
from colortrack.models.embedders.color import LabPatchEmbedder
from colortrack.io.masks import LabelMap
from colortrack.core.memory import MemoryConfig
from colortrack.tasks.masks import propagate_mask
from colortrack.demo.synthetic import block_texture, make_video, translated_texture
from colortrack.core.tracker import PRESETS, LabelTracker, TrackConfig
from colortrack.errors import InputError


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 1.0


def exact_tracker(recent=1):
    config = TrackConfig(
        affinity=AffinityConfig(temperature=0.01, topk=1, radius=2), memory=MemoryConfig(keep_first=True, recent=recent)
    )
    return LabelTracker(LabPatchEmbedder(stride=8, patch=3), config, torch.device("cpu"))


@pytest.mark.parametrize("shift", [(0, 8), (8, 0), (8, -8), (-8, 8)])
def test_color_embedder_propagates_translated_texture_exactly(shift):
    # The square keeps at least two cells from the border, where patches see replicated padding.
    video = translated_texture(num_frames=5, height=192, width=192, shift=shift, seed=3)
    label_map = LabelMap.from_mask(video.masks[0])
    predicted = list(exact_tracker().track(video.frames, label_map.to_onehot(video.masks[0])))
    assert len(predicted) == video.num_frames
    for index, (labels, truth) in enumerate(zip(predicted[1:], video.masks[1:]), start=1):
        np.testing.assert_allclose(labels, cell_exact(label_map.to_onehot(truth)), atol=1e-4, err_msg=f"frame {index}")


def cell_exact(onehot, stride=8):
    """What a perfect tracker at feature resolution yields: the truth averaged per cell, upsampled."""
    cells = F.avg_pool2d(torch.from_numpy(onehot)[None], stride)
    return F.interpolate(cells, size=onehot.shape[1:], mode="bilinear", align_corners=False)[0].numpy()


def test_soft_labels_stay_a_distribution():
    video = make_video(num_frames=8, height=64, width=96, num_objects=2, seed=1)
    first = np.stack([video.masks[0] == label for label in range(3)]).astype(np.float32)
    for labels in exact_tracker(recent=3).track(video.frames, first):
        assert labels.shape == (3, 64, 96)
        np.testing.assert_allclose(labels.sum(axis=0), 1.0, atol=1e-4)


def test_default_preset_tracks_synthetic_objects_better_than_identity():
    video = make_video(num_frames=16, height=96, width=128, num_objects=2, seed=5)
    tracker = LabelTracker(LabPatchEmbedder(), PRESETS["color"], torch.device("cpu"))
    tracked = list(propagate_mask(tracker, video.frames, video.masks[0]))
    still = list(propagate_mask(IdentityPropagator(), video.frames, video.masks[0]))
    score = np.mean([iou(m > 0, t > 0) for m, t in zip(tracked[1:], video.masks[1:])])
    baseline = np.mean([iou(m > 0, t > 0) for m, t in zip(still[1:], video.masks[1:])])
    assert score > baseline


@pytest.mark.parametrize("propagator", [FlowPropagator(), FarnebackPropagator()], ids=["dis", "farneback"])
def test_flow_follows_a_translated_texture(propagator):
    video = translated_texture(num_frames=5, height=96, width=128, shift=(0, 4), seed=2, block=4)
    predicted = list(propagate_mask(propagator, video.frames, video.masks[0]))
    for mask, truth in zip(predicted[1:], video.masks[1:]):
        assert iou(mask == 1, truth == 1) > 0.9


def test_input_size_scales_the_short_side_rounds_to_the_stride_and_keeps_the_aspect_ratio():
    tracker = LabelTracker(LabPatchEmbedder(stride=8), TrackConfig(short_side=240), torch.device("cpu"))
    assert tracker.input_size((480, 854)) == (240, 424)
    assert tracker.input_size((854, 480)) == (424, 240)  # portrait: the width is the short side
    assert tracker.input_size((1080, 1080)) == (240, 240)
    native = LabelTracker(LabPatchEmbedder(stride=8), TrackConfig(), torch.device("cpu"))
    assert native.input_size((99, 130)) == (96, 128)


def test_a_config_saved_with_input_height_loads_as_short_side():
    saved = {**PRESETS["default"].to_dict(), "input_height": 200}
    del saved["short_side"]
    assert TrackConfig.from_dict(saved).short_side == 200
    assert TrackConfig.from_dict(PRESETS["default"].to_dict()) == PRESETS["default"]


def test_portrait_video_is_tracked_as_the_transposed_landscape_one():
    video = make_video(num_frames=6, height=64, width=96, num_objects=2, seed=4)
    config = replace(PRESETS["color"], short_side=48)
    tracker = LabelTracker(LabPatchEmbedder(), config, torch.device("cpu"))
    landscape = list(propagate_mask(tracker, video.frames, video.masks[0]))
    portrait = list(propagate_mask(tracker, video.frames.transpose(0, 2, 1, 3), video.masks[0].T))
    assert tracker.input_size((96, 64)) == (72, 48)
    for index, (wide, tall) in enumerate(zip(landscape, portrait)):
        assert tall.shape == (96, 64)
        assert (tall.T != wide).mean() < 0.002, f"frame {index}"


@pytest.mark.parametrize("size", [(131, 197), (197, 131)])
@pytest.mark.parametrize("short_side", [None, 99])
def test_odd_sizes_round_trip_to_native_size_in_place(size, short_side):
    # A still video: every frame's mask must land where the first one is (no shift, crop or pad).
    height, width = size
    still = np.repeat(block_texture(height, width, seed=2)[None], 3, axis=0)
    mask = np.zeros(size, np.uint8)
    mask[height // 4 : 3 * height // 4, width // 3 : 3 * width // 4] = 1
    tracker = LabelTracker(LabPatchEmbedder(), replace(PRESETS["color"], short_side=short_side), torch.device("cpu"))
    tracked = list(propagate_mask(tracker, still, mask))
    assert [m.shape for m in tracked] == [size] * 3
    for predicted in tracked[1:]:
        assert iou(predicted == 1, mask == 1) > 0.9


def test_labels_of_the_wrong_size_are_rejected():
    video = make_video(num_frames=3, height=32, width=32, seed=0)
    with pytest.raises(InputError, match="do not match the frame"):
        list(exact_tracker().track(video.frames, np.ones((2, 16, 16), np.float32)))
