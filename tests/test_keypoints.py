"""Keypoint propagation, point files, JHMDB joints, PCK, and the track --points / eval jhmdb commands."""

import json

import cv2
import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F

from colortrack.core.affinity import AffinityConfig
from colortrack.models.baselines import IdentityPropagator
from colortrack.models.registry import load_model
from colortrack.cli.main import main
from colortrack.models.embedders.color import LabPatchEmbedder
from colortrack.errors import InputError
from colortrack.eval.badja import badja_clips, evaluate_badja, find_badja_annotations
from colortrack.io.keypoints import (
    BADJA_JOINTS,
    JHMDB_EDGES,
    JHMDB_JOINTS,
    check_inside,
    read_badja,
    read_jhmdb_joints,
    read_points,
    read_track_json,
    write_track_json,
)
from colortrack.io.masks import write_mask
from colortrack.io.video import VideoReader, read_image, write_frames_png, write_video
from colortrack.tasks.points import (
    DEFAULT_SIGMA,
    FadeDetector,
    Keypoints,
    PointConfig,
    collect,
    decode_maps,
    feature_cell,
    iter_keyframe_points,
    iter_points,
    point_maps,
    point_sigma,
    propagate_points,
)
from colortrack.core.memory import MemoryConfig
from colortrack.eval.metrics.pck import PCK_ALPHAS, pck, pck_counts, person_size, silhouette_size
from colortrack.demo.synthetic import block_texture, make_video, translated_texture
from colortrack.core.tracker import PRESETS, LabelTracker, TrackConfig

SAMPLE_CLIP = "catch/Goal_Keeping_Tips_catch_f_cm_np1_fr_med_2"


def names(count):
    return tuple(f"p{index}" for index in range(count))


def exact_tracker():
    config = TrackConfig(AffinityConfig(temperature=0.01, topk=1, radius=2), MemoryConfig(keep_first=True, recent=1))
    return LabelTracker(LabPatchEmbedder(stride=8, patch=3), config, torch.device("cpu"))


# --------------------------------------------------------------------------- propagation


@pytest.mark.parametrize("shift", [(0, 8), (8, -8)])
def test_points_on_a_translated_texture_are_tracked_to_sub_pixel_accuracy(shift):
    video = translated_texture(num_frames=5, height=192, width=192, shift=shift, seed=3, num_points=8)
    track = propagate_points(exact_tracker(), video.frames, Keypoints(names(8), video.points[0]))
    assert track.xy.shape == (5, 8, 2) and track.visible.all()
    error = np.linalg.norm(track.xy - video.points, axis=-1)
    assert error.max() < 0.5, error.max()


def test_points_given_on_two_keyframes_are_tracked_between_them_to_sub_pixel_accuracy():
    video = translated_texture(num_frames=6, height=192, width=256, shift=(0, 8), seed=3, num_points=8)
    keyframes = {t: Keypoints(names(8), video.points[t]) for t in (1, 4)}
    track = collect(keyframes[1], list(iter_keyframe_points(exact_tracker(), video.frames, keyframes)))
    assert track.xy.shape == (6, 8, 2) and track.visible.all()
    assert np.linalg.norm(track.xy - video.points, axis=-1).max() < 0.5


def test_keyframe_points_must_have_the_same_names():
    video = translated_texture(num_frames=3, height=64, width=64, num_points=2)
    keyframes = {0: Keypoints(("a", "b"), video.points[0]), 2: Keypoints(("a", "c"), video.points[2])}
    with pytest.raises(InputError, match="points of frame 2: name other points than frame 0's: a, b"):
        list(iter_keyframe_points(IdentityPropagator(), video.frames, keyframes))


def test_default_preset_tracks_a_translated_texture_within_a_pixel():
    video = translated_texture(num_frames=5, height=192, width=192, shift=(0, 8), seed=3, num_points=8)
    tracker = LabelTracker(LabPatchEmbedder(), PRESETS["color"], torch.device("cpu"))
    track = propagate_points(tracker, video.frames, Keypoints(names(8), video.points[0]))
    assert track.visible.all()
    assert np.linalg.norm(track.xy - video.points, axis=-1).max() <= 1.0


def test_identity_gives_sub_pixel_points_back():
    video = make_video(num_frames=3, height=48, width=64, num_objects=1, seed=0)
    first = np.array([[10.3, 20.7], [40.5, 5.25], [63.0, 47.0]], np.float32)  # the last one on the corner pixel
    track = propagate_points(IdentityPropagator(), iter(video.frames), Keypoints(names(3), first))
    np.testing.assert_allclose(track.xy[0], first)
    np.testing.assert_allclose(track.xy[1:, 0], np.broadcast_to(first[0], (2, 2)), atol=0.01)
    # Near a border the window is cut short: within a tenth of a pixel; on the corner, exact.
    np.testing.assert_allclose(track.xy[1:], np.broadcast_to(first, (2, 3, 2)), atol=0.1)
    np.testing.assert_allclose(track.confidence, 1.0, atol=1e-4)


def test_point_maps_are_a_distribution_and_close_points_keep_their_centres():
    xy = np.array([[20.0, 20.0], [21.0, 20.0], [40.0, 10.0]])
    maps = point_maps(xy, 32, 64, sigma=4.0)
    assert maps.shape == (4, 32, 64) and maps.dtype == np.float32
    assert maps.min() >= 0.0
    np.testing.assert_allclose(maps.sum(axis=0), 1.0, atol=1e-5)
    located, _ = decode_maps(maps[:3], 4.0)
    np.testing.assert_allclose(located, xy, atol=0.05)


def test_decoding_survives_feature_cell_resampling():
    """Averaged into 8x8 cells and upsampled back (what a stride-8 tracker does), the centre is kept."""
    errors = []
    for ox in np.arange(0.0, 8.0, 0.5):
        for oy in (0.0, 3.0, 5.5):
            xy = np.array([[60.0 + ox, 60.0 + oy]])
            cells = F.avg_pool2d(torch.from_numpy(point_maps(xy, 128, 128, 4.0))[None], 8)
            maps = F.interpolate(cells, size=(128, 128), mode="bilinear", align_corners=False)[0].numpy()
            located, mass = decode_maps(maps[:1], 4.0)
            errors.append(np.linalg.norm(located - xy))
            assert 0.9 < mass[0] / decode_maps(point_maps(xy, 128, 128, 4.0)[:1], 4.0)[1][0] < 1.1
    assert max(errors) < 0.35


LANDSCAPE_PORTRAIT = [(240, 427), (480, 854), (1080, 1920), (854, 480), (1920, 1080)]


def still_points(frame, count=8, seed=0):
    height, width = frame.shape[:2]
    rng = np.random.default_rng(seed)
    xy = np.stack([rng.uniform(0.1 * width, 0.9 * width, count), rng.uniform(0.1 * height, 0.9 * height, count)], 1)
    return Keypoints(names(count), xy)


def texture_seen_at_240(height, width):
    """A textured frame drawn at a short side of 240 and scaled up: every size shows the shipped
    model (which embeds frames at a short side of 240) the same picture."""
    scale = 240 / min(height, width)
    small = make_video(num_frames=1, height=round(height * scale), width=round(width * scale), num_objects=0, seed=5)
    return cv2.resize(small.frames[0], (width, height), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def shipped_model():
    return load_model("model", torch.device("cpu"))


@pytest.mark.parametrize("size", LANDSCAPE_PORTRAIT, ids=lambda size: f"{size[0]}x{size[1]}")
def test_shipped_model_gives_still_points_back_within_a_fifth_of_a_cell(size, shipped_model, one_thread):
    """Points are sized in feature cells: 4 native pixels at 240p, 18 at 1080p (input short side 240)."""
    frame = texture_seen_at_240(*size)
    tracker = LabelTracker(shipped_model, PRESETS["default"], torch.device("cpu"))
    cell = feature_cell(tracker, size)
    assert cell == pytest.approx(min(size) / 60, rel=0.01)
    keypoints = still_points(frame)
    track = propagate_points(tracker, [frame] * 3, keypoints)
    assert track.visible.all()
    error = np.linalg.norm(track.xy - keypoints.xy, axis=-1)
    assert error.max() < 0.25 * cell, (error.max(), cell)
    assert track.confidence.min() > 0.5


@pytest.mark.parametrize("size", [(240, 427), (480, 854), (854, 480)], ids=lambda size: f"{size[0]}x{size[1]}")
def test_color_embedder_gives_still_points_back_within_half_a_cell(size, one_thread):
    """The colour embedder works at native resolution (8-pixel cells at every size), on a texture
    drawn at that resolution."""
    frame = make_video(num_frames=1, height=size[0], width=size[1], num_objects=0, seed=5).frames[0]
    tracker = LabelTracker(LabPatchEmbedder(), PRESETS["color"], torch.device("cpu"))
    assert feature_cell(tracker, size) == pytest.approx(8.0, rel=0.01)
    keypoints = still_points(frame)
    track = propagate_points(tracker, [frame] * 3, keypoints)
    assert track.visible.all()
    assert np.linalg.norm(track.xy - keypoints.xy, axis=-1).max() < 4.0
    assert track.confidence.min() > 0.2


def test_point_sigma_is_half_a_cell_a_given_sigma_or_the_default_without_cells():
    tracker = LabelTracker(LabPatchEmbedder(stride=8), TrackConfig(short_side=240), torch.device("cpu"))
    assert point_sigma(tracker, (1080, 1920)) == pytest.approx(0.5 * 1080 / 30, rel=0.01)  # 240 / 8 = 30 rows
    assert point_sigma(tracker, (1080, 1920), PointConfig(sigma=3.0)) == 3.0
    assert point_sigma(IdentityPropagator(), (1080, 1920)) == DEFAULT_SIGMA


def test_a_finer_grid_does_not_shrink_a_point_below_half_a_cell_of_the_240_grid():
    """At a short side of 480 a half-cell point would be 2 native pixels at 480p: it keeps 4, one
    cell, as at 240 rows (where it is half a cell), and a fraction of the frame at any size."""
    size = (480, 854)
    coarse, fine = (LabelTracker(LabPatchEmbedder(stride=4), TrackConfig(short_side=side), torch.device("cpu")) for side in (240, 480))
    assert point_sigma(fine, size) == pytest.approx(point_sigma(coarse, size), rel=0.01)
    assert point_sigma(fine, size) == pytest.approx(feature_cell(fine, size), rel=0.01)
    assert point_sigma(fine, (1080, 1920)) == pytest.approx(1080 / 120)
    assert point_sigma(fine, size, PointConfig(sigma_fraction=0.0)) == pytest.approx(0.5 * feature_cell(fine, size))


def test_a_stray_spike_does_not_win_over_the_bulk_of_a_map():
    maps = point_maps(np.array([[20.0, 20.0]]), 48, 96, sigma=4.0)[:1]
    maps[0, 30, 80] = 1.5  # one pixel higher than the Gaussian's peak, far from it
    located, mass = decode_maps(maps, 4.0)
    np.testing.assert_allclose(located[0], [20.0, 20.0], atol=0.05)
    assert mass[0] == pytest.approx(2 * np.pi * 16, rel=0.02)  # the Gaussian's mass, not the spike's


# --------------------------------------------------------------------------- occlusion

SCENE_H, SCENE_W, SIDE = 240, 320, 64
ON_OBJECT = np.array([[10.0, 10.0], [30.0, 32.0], [50.0, 50.0]])  # xy within the object


def scene(object_xs, occluder_xs=None):
    """Frames of a high-contrast textured square (top-left at (x, 90), None: gone) on a smooth
    background, and an occluder of another texture (96 x 96, top-left at (x, 74)) in front."""
    background = make_video(num_frames=1, height=SCENE_H, width=SCENE_W, num_objects=0, seed=5).frames[0]
    square, occluder = block_texture(SIDE, SIDE, 8, seed=11), block_texture(96, 96, 16, seed=23)
    frames = []
    for t, x in enumerate(object_xs):
        frame = background.copy()
        if x is not None and x < SCENE_W:
            frame[90 : 90 + SIDE, x : min(x + SIDE, SCENE_W)] = square[:, : SCENE_W - x]
        o = occluder_xs[t] if occluder_xs else None
        if o is not None and -96 < o < SCENE_W:
            frame[74:170, max(o, 0) : min(o + 96, SCENE_W)] = occluder[:, max(-o, 0) : min(96, SCENE_W - o)]
        frames.append(frame)
    return frames


def check_lost_while_hidden_and_found_again(track, truth, hidden, cell, strict):
    """Hidden: reported lost (``strict``), or at least never with a confidence above 0.3 (while a
    point in view keeps 0.8 here); shown: right; at the end: found again."""
    error = np.linalg.norm(track.xy - truth, axis=-1)
    placed = track.visible & hidden
    assert not (placed if strict else placed & (track.confidence > 0.3)).any(), np.argwhere(placed)
    shown = track.visible & ~hidden
    assert (error[shown & (track.confidence > 0.3)] < cell).all()
    assert track.visible[-2:].all() and error[-2:].max() < 0.5 * cell


@pytest.mark.parametrize("fade_below", [PointConfig().fade_below, 0.4])
def test_a_point_that_leaves_the_frame_is_lost_then_found_again(fade_below, one_thread):
    """The square slides out to the right (16 px a frame), stays out, and slides back home (the
    first frame, kept in the context, brings the points back). Colour embedder: a unit test's
    budget; the shipped model behaves alike on this clip but for one frame (docs/benchmarks.md)."""
    out = [200 + 16 * k for k in range(1, 9)]
    object_xs = [200] * 2 + out + [None] * 3 + out[::-1] + [200] * 4
    truth = np.stack([ON_OBJECT + [200 if x is None else x, 90] for x in object_xs])
    hidden = np.array([[x is None or 200 + 10 + (x - 200) + dx >= SCENE_W - 0.5 for dx in ON_OBJECT[:, 0] - 10] for x in object_xs])
    tracker = LabelTracker(LabPatchEmbedder(), PRESETS["color"], torch.device("cpu"))
    track = propagate_points(tracker, scene(object_xs), Keypoints(names(3), truth[0]), PointConfig(fade_below=fade_below))
    assert hidden.any(axis=0).all()
    check_lost_while_hidden_and_found_again(track, truth, hidden, feature_cell(tracker, (SCENE_H, SCENE_W)), fade_below >= 0.4)


@pytest.mark.parametrize("fade_below", [PointConfig().fade_below, 0.4])
def test_an_occluded_point_is_lost_then_found_again(fade_below, one_thread):
    """An occluder passes in front of the still square (24 px a frame), covering every point for a while."""
    occluder_xs = [None] * 3 + [-96 + 24 * k for k in range(1, 17)] + [None] * 4
    truth = np.repeat((ON_OBJECT + [120, 90])[None], len(occluder_xs), axis=0)
    margin = 4  # the occluder covers the point and its neighbourhood
    hidden = np.array([[o is not None and o + margin <= x <= o + 96 - margin for x in truth[0, :, 0]] for o in occluder_xs])
    tracker = LabelTracker(LabPatchEmbedder(), PRESETS["color"], torch.device("cpu"))
    frames = scene([120] * len(occluder_xs), occluder_xs)
    track = propagate_points(tracker, frames, Keypoints(names(3), truth[0]), PointConfig(fade_below=fade_below))
    assert hidden.sum(axis=0).min() >= 3
    check_lost_while_hidden_and_found_again(track, truth, hidden, feature_cell(tracker, (SCENE_H, SCENE_W)), fade_below >= 0.4)


def test_fade_detector_needs_a_drop_not_a_low_level():
    fading = FadeDetector(2, fade_below=0.4, memory=3)
    for confidence in ([0.9, 0.1], [0.8, 0.09], [0.85, 0.1]):
        visible = fading.not_faded(np.array(confidence))
        assert visible.all()  # point 1 is low but steady: followed loosely, not lost
        fading.remember(np.array(confidence), visible)
    assert fading.not_faded(np.array([0.3, 0.05])).tolist() == [False, True]  # 0.3 < 0.4 x 0.9
    fading.remember(np.array([0.3, 0.05]), np.array([False, True]))
    assert fading.not_faded(np.array([0.35, 0.05])).tolist() == [False, True]  # level frozen while lost
    assert fading.not_faded(np.array([0.7, 0.05])).tolist() == [True, True]


class FadingPropagator:
    """Point 1's map vanishes after frame 0; point 0 stays."""

    def track(self, frames, first_labels):
        for index, _ in enumerate(frames):
            labels = first_labels.copy()
            if index:
                labels[1] = 0.0
            yield labels


def test_a_vanished_point_is_reported_lost_never_at_the_origin(tmp_path):
    frames = [np.zeros((32, 48, 3), np.uint8)] * 3
    keypoints = Keypoints(("kept", "gone"), np.array([[10.0, 12.0], [30.0, 20.0]]))
    track = propagate_points(FadingPropagator(), frames, keypoints)
    assert track.visible[:, 0].all() and track.visible[0, 1] and not track.visible[1:, 1].any()
    assert np.isnan(track.xy[1:, 1]).all()
    assert (track.confidence[1:, 1] == 0.0).all()
    write_track_json(tmp_path / "keypoints.json", track)
    frames_json = json.loads((tmp_path / "keypoints.json").read_text())
    assert frames_json[2][1] == {"name": "gone", "x": None, "y": None, "confidence": 0.0, "visible": False}
    assert frames_json[2][0]["x"] == pytest.approx(10.0, abs=0.05)
    read_names, xy, _, visible = read_track_json(tmp_path / "keypoints.json")
    assert read_names == ("kept", "gone") and np.isnan(xy[2, 1]).all() and not visible[2, 1]


def test_points_are_streamed_frame_by_frame():
    video = make_video(num_frames=4, height=32, width=32, num_objects=1, seed=1)
    pulled = []

    def frames():
        for index, frame in enumerate(video.frames):
            pulled.append(index)
            yield frame

    decoded = []
    for index, frame_points in enumerate(iter_points(IdentityPropagator(), frames(), Keypoints(("a",), [[5.0, 5.0]]))):
        decoded.append(frame_points)
        assert pulled[-1] == index  # frame i's points come out before frame i + 1 is read
    assert len(decoded) == 4


# --------------------------------------------------------------------------- PCK


def test_person_size_is_0_6_of_the_joint_box_diagonal():
    gt = np.array([[[0.0, 0.0], [30.0, 40.0], [10.0, 10.0]]])
    np.testing.assert_allclose(person_size(gt), [30.0])


def test_pck_by_hand():
    # Box 30 x 40 -> diagonal 50 -> size 30 in both frames; frame 0 is not scored.
    gt = np.array([[[0.0, 0.0], [30.0, 40.0], [10.0, 10.0]]] * 2)
    pred = gt.copy()
    pred[0] = 1000.0  # frame 0 is ignored, however wrong
    pred[1, 0] = [3.0, 0.0]  # distance 3 = 0.1 * 30: on the boundary, correct at alpha 0.1
    pred[1, 1] = [30.0, 49.0]  # distance 9: correct from alpha 0.3
    pred[1, 2] = np.nan  # lost: always incorrect
    counts = pck_counts(pred, gt)
    np.testing.assert_array_equal(counts.total, [1, 1, 1])
    np.testing.assert_array_equal(counts.correct[:, 0], [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(counts.correct[:, 1], [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(counts.correct[:, 2], [0, 0, 0, 0, 0])
    np.testing.assert_allclose(counts.mean(), [100 / 3, 100 / 3, 200 / 3, 200 / 3, 200 / 3])
    assert pck(pred, gt)[0.3] == pytest.approx(200 / 3)


def test_pck_just_beyond_the_boundary_is_incorrect_and_clips_pool_per_joint():
    gt = np.array([[[0.0, 0.0], [30.0, 40.0]]] * 3)
    pred = gt.copy()
    pred[1:, 0, 0] += 3.0001  # just over 0.1 * 30
    first = pck_counts(pred, gt, (0.1,))
    assert first.correct.tolist() == [[0, 2]]
    both = first + pck_counts(gt, gt, (0.1,))
    assert both.total.tolist() == [4, 4]
    assert both.mean().tolist() == [pytest.approx((50.0 + 100.0) / 2)]
    result = both.as_dict(("a", "b"))
    assert result["PCK@0.1"] == pytest.approx(75.0)
    assert result["per_joint"]["a"]["PCK@0.1"] == pytest.approx(50.0)


# --------------------------------------------------------------------------- files


def write_pos_img(path, xy_0based):
    """xy (T, 15, 2) 0-based -> JHMDB pos_img (2, 15, T) 1-based."""
    scipy.io.savemat(path, {"pos_img": np.asarray(xy_0based, np.float64).transpose(2, 1, 0) + 1.0})


def test_jhmdb_mat_is_read_0_based_in_joint_order(tmp_path):
    xy = np.stack([np.stack([np.arange(15) * 10.0 + t, np.arange(15) + 100.0 + t], axis=1) for t in range(3)])
    write_pos_img(tmp_path / "joint_positions.mat", xy)
    joints = read_jhmdb_joints(tmp_path / "joint_positions.mat")
    assert joints.shape == (3, 15, 2) and joints.dtype == np.float32
    np.testing.assert_allclose(joints, xy)
    keypoints = read_points(tmp_path / "joint_positions.mat")
    assert keypoints.names == JHMDB_JOINTS and keypoints.names[2] == "face" and keypoints.names[14] == "left ankle"
    np.testing.assert_allclose(keypoints.xy, xy[0])
    assert len(keypoints.edges) == len(JHMDB_EDGES) == 14


def test_jhmdb_mat_of_one_frame_and_bad_mats(tmp_path):
    scipy.io.savemat(tmp_path / "one.mat", {"pos_img": np.ones((2, 15))})
    assert read_jhmdb_joints(tmp_path / "one.mat").shape == (1, 15, 2)
    scipy.io.savemat(tmp_path / "nopos.mat", {"pos_world": np.ones((2, 15, 3))})
    scipy.io.savemat(tmp_path / "shape.mat", {"pos_img": np.ones((2, 14, 3))})
    scipy.io.savemat(tmp_path / "nan.mat", {"pos_img": np.full((2, 15, 3), np.nan)})
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all")
    for name in ("nopos.mat", "shape.mat", "nan.mat", "junk.mat"):
        with pytest.raises(InputError, match=name):
            read_jhmdb_joints(tmp_path / name)


def test_the_real_jhmdb_sample(shared_data):
    path = shared_data / "jhmdb-sample" / "joint_positions" / SAMPLE_CLIP / "joint_positions.mat"
    joints = read_jhmdb_joints(path)
    assert joints.shape == (40, 15, 2)
    first = dict(zip(JHMDB_JOINTS, joints[0]))
    np.testing.assert_allclose(first["neck"], [285.5, 105.5])  # pos_img 286.5, 106.5 (1-based)
    # Anatomy fixes the order: face above neck above belly above the hips; ankles lowest; the
    # keeper faces the camera, so his right side is on the image's left.
    assert first["face"][1] < first["neck"][1] < first["belly"][1] < first["right hip"][1]
    assert min(first["right ankle"][1], first["left ankle"][1]) > max(first["right knee"][1], first["left knee"][1])
    assert first["right shoulder"][0] < first["left shoulder"][0] and first["right wrist"][0] < first["left wrist"][0]


def test_point_files_json_and_csv(tmp_path):
    (tmp_path / "first.json").write_text(
        json.dumps({"points": [{"name": "nose", "x": 10.5, "y": 20}, {"name": "tail", "x": 3, "y": 4}], "edges": [["nose", "tail"]]})
    )
    points = read_points(tmp_path / "first.json")
    assert points.names == ("nose", "tail") and points.edges == ((0, 1),)
    np.testing.assert_allclose(points.xy, [[10.5, 20.0], [3.0, 4.0]])
    (tmp_path / "first.csv").write_text("name,x,y\nnose,10.5,20\ntail, 3 ,4\n")
    points = read_points(tmp_path / "first.csv")
    assert points.names == ("nose", "tail") and points.edges == ()
    np.testing.assert_allclose(points.xy, [[10.5, 20.0], [3.0, 4.0]])


BAD_FILES = {
    "nan.json": '{"points": [{"name": "a", "x": NaN, "y": 1}]}',
    "inf.csv": "name,x,y\na,inf,1\n",
    "empty.json": '{"points": []}',
    "empty.csv": "name,x,y\n",
    "malformed.json": '{"points": [',
    "noheader.csv": "a,1,2\n",
    "columns.csv": "name,x,y\na,1\n",
    "word.csv": "name,x,y\na,one,2\n",
    "duplicate.json": '{"points": [{"name": "a", "x": 1, "y": 1}, {"name": "a", "x": 2, "y": 2}]}',
    "edge.json": '{"points": [{"name": "a", "x": 1, "y": 1}], "edges": [["a", "b"]]}',
    "shape.json": '{"points": [{"name": "a", "x": 1}]}',
    "string.json": '{"points": [{"name": "a", "x": "1", "y": 1}]}',
    "points.txt": "a 1 2",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_point_files_name_the_file(tmp_path, name):
    (tmp_path / name).write_text(BAD_FILES[name])
    with pytest.raises(InputError, match=name.replace(".", r"\.")):
        read_points(tmp_path / name)


def test_points_outside_the_frame_are_refused(tmp_path):
    inside = Keypoints(("a", "b"), [[-0.5, 0.0], [63.5, 47.5]])
    check_inside(inside, 48, 64, "first.json")
    with pytest.raises(InputError, match=r"first\.json: point 'b'"):
        check_inside(Keypoints(("a", "b"), [[0.0, 0.0], [64.0, 10.0]]), 48, 64, "first.json")


# --------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def clip15(tmp_path_factory):
    """A generated clip with 15 tracked points, as an mp4, a JSON of its first points and a .mat."""
    folder = tmp_path_factory.mktemp("points")
    video = make_video(num_frames=8, height=64, width=96, num_objects=3, points_per_object=5, seed=4)
    write_video(folder / "video.mp4", video.frames, video.fps)
    points = [{"name": f"p{k}", "x": float(x), "y": float(y)} for k, (x, y) in enumerate(video.points[0])]
    (folder / "first.json").write_text(json.dumps({"points": points, "edges": [["p0", "p1"], ["p1", "p2"]]}))
    write_pos_img(folder / "joint_positions.mat", video.points)
    return folder, video


@pytest.mark.parametrize("points_file", ["first.json", "joint_positions.mat"])
def test_track_points_writes_keypoints_config_and_overlay(clip15, tmp_path, points_file):
    folder, video = clip15
    args = ["track", str(folder / "video.mp4"), "--points", str(folder / points_file), "--out", str(tmp_path), "--quiet"]
    assert main(args + ["--method", "flow"]) == 0
    frames = json.loads((tmp_path / "keypoints.json").read_text())
    assert len(frames) == 8 and len(frames[0]) == 15
    assert set(frames[3][0]) == {"name", "x", "y", "confidence", "visible"}
    assert frames[0][0]["x"] == pytest.approx(float(video.points[0, 0, 0]), abs=1e-4)
    assert VideoReader(tmp_path / "overlay.mp4").info.num_frames == 8
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["method"] == "flow" and config["points"]["sigma"] is None and config["sigma_pixels"] == 4.0


def test_track_points_from_two_keyframes(clip15, tmp_path):
    folder, video = clip15
    sixth = [{"name": f"p{k}", "x": float(x), "y": float(y)} for k, (x, y) in enumerate(video.points[5])]
    (tmp_path / "sixth.json").write_text(json.dumps({"points": sixth}))
    args = ["track", str(folder / "video.mp4"), "--points", str(folder / "first.json"), "--points", f"{tmp_path / 'sixth.json'}@5"]
    assert main([*args, "--out", str(tmp_path / "out"), "--quiet", "--method", "flow", "--no-overlay"]) == 0
    frames = json.loads((tmp_path / "out" / "keypoints.json").read_text())
    assert len(frames) == 8
    np.testing.assert_allclose([[p["x"], p["y"]] for p in frames[5]], video.points[5], atol=1e-4)


def test_mask_and_points_together_are_refused(clip15, tmp_path, capsys):
    folder, _ = clip15
    with pytest.raises(SystemExit) as exit_info:
        main(["track", str(folder / "video.mp4"), "--mask", "a.png", "--points", str(folder / "first.json"), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_track_points_outside_the_video_fail_with_one_line(clip15, tmp_path, capsys):
    folder, _ = clip15
    (tmp_path / "far.csv").write_text("name,x,y\na,500,3\n")
    code = main(["track", str(folder / "video.mp4"), "--points", str(tmp_path / "far.csv"), "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("colortrack: error: ") and "far.csv" in err and len(err.splitlines()) == 1


@pytest.fixture(scope="module")
def jhmdb_root(tmp_path_factory):
    """Two clips in the JHMDB layout (frames numbered from 00001), one of them static."""
    root = tmp_path_factory.mktemp("jhmdb")
    moving = make_video(num_frames=6, height=48, width=64, num_objects=3, points_per_object=5, seed=7)
    still = make_video(num_frames=1, height=48, width=64, num_objects=3, points_per_object=5, seed=8)
    for action, name, frames, points in (
        ("run", "clip_a", moving.frames, moving.points),
        ("wave", "clip_b", np.repeat(still.frames, 4, axis=0), np.repeat(still.points, 4, axis=0)),
    ):
        write_frames_png(root / "Rename_Images" / action / name, frames, start_index=1)
        (root / "joint_positions" / action / name).mkdir(parents=True)
        write_pos_img(root / "joint_positions" / action / name / "joint_positions.mat", points)
    return root


def test_eval_jhmdb_with_two_workers_equals_one_process(jhmdb_root, tmp_path):
    """The clips shared between two torchrun ranks: the same results.json apart from timing."""
    results = []
    for out, extra in ((tmp_path / "one", []), (tmp_path / "two", ["--workers", "2"])):
        argv = ["eval", "jhmdb", "--root", str(jhmdb_root), "--method", "color", "--out", str(out), "--quiet"]
        assert main([*argv, *extra]) == 0
        results.append(json.loads((out / "results.json").read_text()))
    for rows in results:
        for row in rows["clips"]:
            row.pop("seconds")
        rows.pop("seconds_per_frame")
    assert results[1] == results[0]
    assert [row["clip"] for row in results[1]["clips"]] == ["clip_a", "clip_b"]


def test_eval_jhmdb_writes_keypoints_and_results(jhmdb_root, tmp_path, capsys):
    assert main(["eval", "jhmdb", "--root", str(jhmdb_root), "--method", "identity", "--out", str(tmp_path), "--quiet"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    keys = [f"PCK@{alpha:g}" for alpha in PCK_ALPHAS]
    assert set(keys) <= set(results) and results["method"] == "identity"
    assert [clip["clip"] for clip in results["clips"]] == ["clip_a", "clip_b"]
    assert results["clips"][1]["PCK@0.1"] == pytest.approx(100.0)  # a still clip, identity is perfect
    assert list(results["per_joint"]) == list(JHMDB_JOINTS)
    assert results["seconds_per_frame"] > 0.0 and "track" in results["config"]
    assert len(json.loads((tmp_path / "clip_a" / "keypoints.json").read_text())) == 6
    out = capsys.readouterr().out
    assert "Overall" in out and "left ankle" in out


def test_eval_jhmdb_scores_what_it_wrote_and_tracking_beats_identity(jhmdb_root, tmp_path):
    """results.json holds the PCK of the written keypoints against the .mat (recomputed here), and
    on the moving clip the colour tracker is far ahead of repeating the first frame."""
    gt = read_jhmdb_joints(jhmdb_root / "joint_positions" / "run" / "clip_a" / "joint_positions.mat")
    scores = {}
    for method in ("identity", "color"):
        out = tmp_path / method
        assert main(["eval", "jhmdb", "--root", str(jhmdb_root), "--clips", "clip_a", "--method", method, "--out", str(out), "--quiet"]) == 0
        results = json.loads((out / "results.json").read_text())
        _, xy, _, _ = read_track_json(out / "clip_a" / "keypoints.json")
        np.testing.assert_allclose([results[f"PCK@{alpha:g}"] for alpha in PCK_ALPHAS], pck_counts(xy, gt).mean())
        assert results["scored"] == 5 * 15 and results["lost"]["visible"] == 75
        assert results["seconds_per_frame"] > 0.0
        scores[method] = results
    assert scores["color"]["PCK@0.5"] >= scores["identity"]["PCK@0.5"] + 15.0


def test_eval_jhmdb_bad_root_is_an_input_error(tmp_path, capsys):
    assert main(["eval", "jhmdb", "--root", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "Rename_Images" in capsys.readouterr().err


# --------------------------------------------------------------------------- BADJA


def test_silhouette_size_and_pck_with_a_given_size():
    mask = np.zeros((10, 10), np.uint8)
    mask[:5, :5] = 255  # 25 pixels -> size 5
    assert silhouette_size(mask) == pytest.approx(5.0)
    gt = np.array([[[0.0, 0.0], [0.0, 0.0]]] * 2)
    pred = gt.copy()
    pred[1] = [[1.0, 0.0], [0.0, 1.5]]  # 0.1 x 10 = 1: correct; 1.5 > 1: only at 0.2
    counts = pck_counts(pred, gt, (0.1, 0.2), size=np.array([99.0, 10.0]))
    assert counts.correct.tolist() == [[1, 0], [1, 1]]
    with pytest.raises(ValueError, match="one per frame"):
        pck_counts(pred, gt, (0.1,), size=np.array([10.0]))


def test_pooled_pck_weighs_joints_by_how_often_they_are_scored():
    gt = np.zeros((4, 2, 2))
    gt[1:3, 1] = np.nan  # joint 1 scored in frame 3 only
    pred = gt.copy()
    pred[1, 0] = 100.0  # joint 0 wrong once out of 3
    counts = pck_counts(pred, gt, (0.2,), size=np.full(4, 10.0))
    assert counts.total.tolist() == [3, 1]
    assert counts.pooled().tolist() == [pytest.approx(75.0)]  # 3 of 4 pairs
    assert counts.mean().tolist() == [pytest.approx((200 / 3 + 100) / 2)]
    assert counts.as_dict(("a", "b"), pooled=True)["PCK@0.2"] == pytest.approx(75.0)


def badja_entry(frame, xy, visible, height, width):
    """One BADJA entry: xy (37, 2) at a frame of height x width -> [row, col] at 1920x1080."""
    cols = (np.asarray(xy)[:, 0] + 0.5) * 1920 / width - 0.5
    rows = (np.asarray(xy)[:, 1] + 0.5) * 1080 / height - 0.5
    joints = [[float(r), float(c)] if v else [0, 0] for r, c, v in zip(rows, cols, visible)]
    return {
        "image_path": f"DAVIS/JPEGImages/Full-Resolution/seq/{frame:05d}.jpg",
        "segmentation_path": f"DAVIS/Annotations/Full-Resolution/seq/{frame:05d}.png",
        "joints": joints,
        "visibility": [bool(v) for v in visible],
    }


def test_badja_json_is_read_as_row_col_at_1920x1080_scaled_to_the_frames(tmp_path):
    joints = [[0, 0]] * 37
    joints[33] = [100, 200]  # nose tip: row 100, col 200
    joints[0] = [1079, 1919]  # the last full-resolution pixel
    visibility = [False] * 37
    visibility[0] = visibility[33] = True
    entries = [{"image_path": "x/bear/00007.jpg", "joints": joints, "visibility": visibility},
               {"image_path": "x/bear/00002.jpg", "joints": joints, "visibility": [False] * 37}]
    (tmp_path / "bear.json").write_text(json.dumps(entries))
    annotations = read_badja(tmp_path / "bear.json", 540, 960)
    assert annotations.sequence == "bear" and annotations.frames == (2, 7)
    assert not annotations.visible[0].any() and annotations.visible[1].tolist() == visibility
    np.testing.assert_allclose(annotations.xy[1, 33], [99.75, 49.75])  # (200.5 / 2 - 0.5, 100.5 / 2 - 0.5)
    # The last full-resolution pixel covers the outer half of the last half-resolution one.
    np.testing.assert_allclose(annotations.xy[1, 0], [959.25, 539.25])
    assert np.isnan(annotations.xy[1, 1]).all()
    assert BADJA_JOINTS[33] == "nose tip" and len(BADJA_JOINTS) == 37


BAD_BADJA = {
    "short.json": [{"image_path": "a/00001.jpg", "joints": [[0, 0]] * 36, "visibility": [True] * 36}],
    "keys.json": [{"image_path": "a/00001.jpg", "joints": [[0, 0]] * 37}],
    "name.json": [{"image_path": "a/first.jpg", "joints": [[0, 0]] * 37, "visibility": [True] * 37}],
    "nan.json": [{"image_path": "a/00001.jpg", "joints": [["x", 0]] * 37, "visibility": [True] * 37}],
    "twice.json": [{"image_path": "a/00001.jpg", "joints": [[0, 0]] * 37, "visibility": [True] * 37}] * 2,
    "empty.json": [],
}


@pytest.mark.parametrize("name", sorted(BAD_BADJA))
def test_bad_badja_files_name_the_file(tmp_path, name):
    (tmp_path / name).write_text(json.dumps(BAD_BADJA[name]))
    with pytest.raises(InputError, match=name.replace(".", r"\.")):
        read_badja(tmp_path / name, 36, 64)


HEIGHT, WIDTH = 36, 64  # 16:9, 1920x1080 / 30


@pytest.fixture(scope="module")
def badja_root(tmp_path_factory):
    """A still DAVIS sequence 'seq' (7 frames) and its BADJA file: frames 1, 3, 5 annotated; joint 2
    invisible in frame 1 (never tracked), joint 3 in frame 3; in frame 5 joint 0's truth lies
    0.15 x size from where it started and joint 1's 0.25 x size."""
    root = tmp_path_factory.mktemp("badja")
    still = make_video(num_frames=1, height=HEIGHT, width=WIDTH, num_objects=1, points_per_object=5, seed=2)
    write_frames_png(root / "davis" / "JPEGImages" / "480p" / "seq", np.repeat(still.frames, 7, axis=0))
    for t in range(7):
        write_mask(root / "davis" / "Annotations" / "480p" / "seq" / f"{t:05d}.png", still.masks[0])
    size = silhouette_size(still.masks[0])
    xy = np.zeros((37, 2))
    xy[:5] = still.points[0]
    moved = xy.copy()
    moved[0, 0] += 0.15 * size
    moved[1, 1] += 0.25 * size
    visible = np.arange(37) < 5
    entries = [
        badja_entry(1, xy, visible & (np.arange(37) != 2), HEIGHT, WIDTH),
        badja_entry(3, xy, visible & (np.arange(37) != 3), HEIGHT, WIDTH),
        badja_entry(5, moved, visible, HEIGHT, WIDTH),
    ]
    (root / "badja").mkdir()
    (root / "badja" / "seq.json").write_text(json.dumps(entries))
    return root


def test_eval_badja_scores_by_hand(badja_root, tmp_path, capsys):
    args = ["eval", "badja", "--root", str(badja_root / "davis"), "--annotations", str(badja_root / "badja")]
    assert main(args + ["--method", "identity", "--out", str(tmp_path), "--quiet"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    # Tracked: joints 0, 1, 3, 4 (2 is hidden at the start). Scored: frame 3 (0, 1, 4), frame 5 (0, 1, 3, 4).
    assert results["scored"] == 7
    assert results["PCK@0.1"] == pytest.approx(100 * 5 / 7) and results["PCK@0.2"] == pytest.approx(100 * 6 / 7)
    assert results["per_joint"]["smal 0"] == {"PCK@0.1": 50.0, "PCK@0.2": 100.0, "scored": 2}
    assert results["per_joint"]["smal 1"]["PCK@0.2"] == 50.0 and results["per_joint"]["smal 2"]["scored"] == 0
    sequence = results["clips"][0]
    assert sequence["clip"] == "seq" and sequence["first_frame"] == 1 and sequence["frames"] == 6
    assert len(json.loads((tmp_path / "seq" / "keypoints.json").read_text())) == 6
    sheet = read_image(tmp_path / "contact_sheet.png")
    assert sheet.shape[0] == 240 and sheet.shape[1] >= 2 * 240 * WIDTH // HEIGHT  # frames 3 and 5
    out = capsys.readouterr().out
    assert "Overall" in out and "smal 0" in out and "smal 2" not in out


class CountingPropagator(IdentityPropagator):
    def __init__(self):
        self.calls = 0

    def track(self, frames, first_labels):
        self.calls += 1
        yield from super().track(frames, first_labels)


def test_eval_badja_resumes_finished_sequences_and_refuses_another_configuration(badja_root, tmp_path):
    clips = badja_clips(badja_root / "davis", find_badja_annotations(badja_root / "badja"))
    propagator = CountingPropagator()
    first = evaluate_badja(clips, propagator, PointConfig(), {"method": "identity"}, tmp_path, progress=False)
    again = evaluate_badja(clips, propagator, PointConfig(), {"method": "identity"}, tmp_path, progress=False)
    assert propagator.calls == 1 and again["PCK@0.2"] == first["PCK@0.2"]
    with pytest.raises(InputError, match="another configuration"):
        evaluate_badja(clips, propagator, PointConfig(), {"method": "flow"}, tmp_path, progress=False)


def test_eval_badja_missing_sequence_is_an_input_error(badja_root, tmp_path, capsys):
    args = ["eval", "badja", "--root", str(badja_root / "davis"), "--annotations", str(badja_root / "badja")]
    assert main(args + ["--sequences", "bear", "--out", str(tmp_path)]) == 2
    assert "bear" in capsys.readouterr().err


def test_the_real_badja_annotations_lie_on_their_masks(shared_data):
    """[row, col] order and the 1080p -> 480p scale: the visible joints fall on the animal."""
    clips = badja_clips(shared_data / "davis2016-train", find_badja_annotations(shared_data / "badja"))
    assert [clip.name for clip in clips] == ["bear", "dog-agility"]
    bear = clips[0]
    assert bear.info == {"first_frame": 2, "scored_frames": 16, "joints": 20}
    from colortrack.io.masks import read_mask

    mask = read_mask(bear.frame_paths[0].parents[2] / ".." / "Annotations" / "480p" / "bear" / "00002.png")
    x, y = np.rint(bear.keypoints.xy).astype(int).T
    assert mask[y.clip(0, 479), x.clip(0, 853)].astype(bool).mean() >= 0.9
