from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colortrack.core.affinity import AffinityConfig, _native_bf16
from colortrack.models.baselines import FarnebackPropagator, FlowPropagator, IdentityPropagator
from colortrack.models.embedders.color import LabPatchEmbedder
from colortrack.io.masks import LabelMap
from colortrack.core.memory import MemoryConfig
from colortrack.tasks.masks import propagate_mask
from colortrack.demo.synthetic import block_texture, make_video, translated_texture
from colortrack.core.tracker import PRESETS, LabelTracker, TrackConfig, principal_basis, project
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


def fusion_tracker(**fusion):
    config = replace(PRESETS["color"], short_side=64, **fusion)
    return LabelTracker(LabPatchEmbedder(), config, torch.device("cpu"))


def first_onehot(video):
    return LabelMap.from_mask(video.masks[0]).to_onehot(video.masks[0])


def test_two_identical_views_fuse_to_the_single_view():
    video = make_video(num_frames=6, height=64, width=96, num_objects=2, seed=2)
    single = list(fusion_tracker().track(video.frames, first_onehot(video)))
    doubled = list(fusion_tracker(extra_short_sides=(64,)).track(video.frames, first_onehot(video)))
    for one, two in zip(single, doubled):
        np.testing.assert_allclose(one, two, atol=1e-5)


class LopsidedEmbedder(torch.nn.Module):
    """A random convolution: unlike the colour embedder, it sees a mirrored frame differently."""

    stride = 4

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 5, padding=2)

    def encode(self, images):
        return F.normalize(F.avg_pool2d(self.conv(images), self.stride), dim=1)


def test_flip_fusion_is_mirror_symmetric():
    video = make_video(num_frames=6, height=64, width=96, num_objects=2, seed=4)
    mirrored = [np.ascontiguousarray(frame[:, ::-1]) for frame in video.frames]
    first, first_mirrored = first_onehot(video), np.ascontiguousarray(first_onehot(video)[:, :, ::-1])

    def track(frames, labels, flip):
        config = replace(PRESETS["color"], affinity=AffinityConfig(temperature=0.05, topk=5, radius=4), flip=flip)
        return list(LabelTracker(LopsidedEmbedder(), config, torch.device("cpu")).track(frames, labels))

    for flip, symmetric in ((True, True), (False, False)):
        gaps = [np.abs(a - b[:, :, ::-1]).max() for a, b in zip(track(video.frames, first, flip), track(mirrored, first_mirrored, flip))]
        assert (max(gaps) < 1e-4) == symmetric, (flip, max(gaps))


def test_scale_fusion_tracks_at_every_scale():
    video = make_video(num_frames=6, height=64, width=96, num_objects=2, seed=2)
    fused = fusion_tracker(extra_short_sides=(96,))
    seen = []
    encode = fused.embedder.encode
    fused.embedder.encode = lambda image: seen.append(tuple(image.shape[-2:])) or encode(image)
    labels = list(fused.track(video.frames, first_onehot(video)))
    assert {(64, 96), (96, 144)} <= set(seen)
    assert all(frame.shape == (3, 64, 96) for frame in labels)
    np.testing.assert_allclose(labels[-1].sum(0), 1.0, atol=1e-4)


def test_fusion_settings_survive_a_saved_config():
    config = replace(PRESETS["default"], flip=True, extra_short_sides=(360,))
    assert TrackConfig.from_dict(config.to_dict()) == config
    assert TrackConfig.from_dict({k: v for k, v in PRESETS["default"].to_dict().items() if k not in ("flip", "extra_short_sides")}) == PRESETS["default"]


def test_fine_weight_is_checked_needs_a_trained_model_and_loads_as_0_from_older_configs():
    with pytest.raises(InputError, match="fine_weight"):
        TrackConfig(fine_weight=-1.0)
    with pytest.raises(InputError, match="embed_dims"):
        TrackConfig(embed_dims=0)
    with pytest.raises(InputError, match="fine_weight.*LabPatchEmbedder"):
        LabelTracker(LabPatchEmbedder(), TrackConfig(fine_weight=1.0), torch.device("cpu"))
    older = {k: v for k, v in PRESETS["default"].to_dict().items() if k not in ("fine_weight", "embed_dims")}
    assert TrackConfig.from_dict(older) == replace(PRESETS["default"], fine_weight=0.0, embed_dims=None)
    assert TrackConfig.from_dict(PRESETS["default"].to_dict()) == PRESETS["default"]


def test_a_projection_keeps_the_dot_products_of_an_embedding_of_that_rank_and_its_bf16_numbers():
    torch.manual_seed(0)
    embedding = (torch.randn(12, 3) @ torch.randn(3, 5 * 7)).reshape(12, 5, 7)  # rank 3 in 12 channels
    basis = principal_basis(embedding, 3)
    projected = project(embedding, basis)
    assert basis.shape == (3, 12) and projected.shape == (3, 5, 7)
    cells = lambda x: x.reshape(x.shape[0], -1).T  # noqa: E731
    torch.testing.assert_close(cells(projected) @ cells(projected).T, cells(embedding) @ cells(embedding).T, rtol=1e-4, atol=1e-3)
    assert principal_basis(embedding, 12) is None and project(embedding, None) is embedding
    rounded = embedding.bfloat16().float()
    assert torch.equal(project(rounded, basis).bfloat16().float(), project(rounded, basis))


def test_a_projection_onto_every_direction_tracks_as_the_embedding_itself():
    video = make_video(num_frames=5, height=48, width=64, num_objects=2, seed=1)
    first = LabelMap.from_mask(video.masks[0]).to_onehot(video.masks[0])
    plain = exact_tracker(recent=2)
    rotated = LabelTracker(plain.embedder, replace(plain.config, embed_dims=26), torch.device("cpu"))  # 27 channels: one dropped
    full = np.stack(list(plain.track(video.frames, first)))
    projected = np.stack(list(rotated.track(video.frames, first)))
    assert (full.argmax(1) == projected.argmax(1)).mean() > 0.98


def test_quality_preset_is_the_default_on_larger_frames():
    default, quality = PRESETS["default"], PRESETS["quality"]
    assert quality == replace(default, short_side=360, embed_dims=None)


@pytest.mark.skipif(not _native_bf16(), reason="bfloat16 scoring needs a CPU with bfloat16 instructions")
def test_the_shipped_model_tracks_the_same_with_its_embeddings_scored_in_bf16(monkeypatch):
    """The default preset's bf16 encoder makes bfloat16 embeddings; the tracker keeps them as such
    and the affinity scores them in bfloat16 with the float32 top-k (colortrack.core.affinity)."""
    import colortrack.core.tracker as tracker_module
    from colortrack.core import affinity
    from colortrack.models.registry import make_propagator, resolve_preset

    video = make_video(num_frames=8, height=240, width=400, num_objects=2, seed=4)
    grain = np.random.default_rng(0).integers(-8, 9, size=(8, 240, 400, 3))  # no two cells alike: no tied candidates
    frames = [np.clip(frame + noise, 0, 255).astype(np.uint8) for frame, noise in zip(video.frames, grain)]
    tracker = make_propagator("model", resolve_preset("default"), torch.device("cpu"))
    certified = []
    tile = affinity._CertifiedTiles.tile
    monkeypatch.setattr(affinity._CertifiedTiles, "tile", lambda self, *args: certified.append(args) or tile(self, *args))
    first = LabelMap.from_mask(video.masks[0]).to_onehot(video.masks[0])
    compact = np.stack(list(tracker.track(frames, first)))
    assert certified
    monkeypatch.setattr(tracker_module, "compact_embedding", lambda embedding: embedding)
    certified.clear()
    plain = np.stack(list(tracker.track(frames, first)))
    assert not certified
    np.testing.assert_allclose(compact, plain, atol=1e-5)  # float32 sums in another order
    assert (compact.argmax(1) != plain.argmax(1)).mean() < 1e-3


def reappearing_object(num_frames=5, size=128, side=32):
    """A textured square on a flat background at the left of frame 0, gone on frames 1-2, back at
    the right (far beyond a 2-cell window) from frame 3. Returns frames and its true masks."""
    patch = block_texture(side, side, seed=5)
    frames = np.full((num_frames, size, 2 * size, 3), 128, np.uint8)
    masks = np.zeros((num_frames, size, 2 * size), np.uint8)
    for t, left in [(0, 16)] + [(t, 2 * size - side - 16) for t in range(3, num_frames)]:
        frames[t, 48 : 48 + side, left : left + side] = patch
        masks[t, 48 : 48 + side, left : left + side] = 1
    return frames, masks


@pytest.mark.parametrize("anchors", [True, False])
def test_global_anchors_find_an_object_again_far_from_where_it_was_annotated(anchors):
    frames, masks = reappearing_object()
    config = replace(exact_tracker(recent=2).config, memory=MemoryConfig(keep_first=True, recent=2, global_anchors=anchors))
    tracker = LabelTracker(LabPatchEmbedder(stride=8, patch=3), config, torch.device("cpu"))
    label_map = LabelMap.from_mask(masks[0])
    predicted = list(tracker.track(frames, label_map.to_onehot(masks[0])))
    found = [iou(labels[1] > 0.5, truth > 0) for labels, truth in zip(predicted[3:], masks[3:])]
    assert min(found) > 0.8 if anchors else max(found) == 0.0
