"""Synthetic videos: determinism, exact motion, occlusion-consistent masks and points."""

from __future__ import annotations

import numpy as np
import pytest

from colortrack.demo.synthetic import make_video, pixel_of, translated_texture


def test_shapes_and_dtypes() -> None:
    v = make_video(num_frames=6, height=40, width=56, num_objects=3, points_per_object=4)
    assert v.frames.shape == (6, 40, 56, 3) and v.frames.dtype == np.uint8
    assert v.masks.shape == (6, 40, 56) and v.masks.dtype == np.uint8
    assert v.points.shape == (6, 12, 2) and v.points.dtype == np.float32
    assert v.visible.shape == (6, 12) and v.visible.dtype == bool
    assert v.point_ids.tolist() == [1] * 4 + [2] * 4 + [3] * 4
    assert set(np.unique(v.masks)) <= {0, 1, 2, 3} and v.fps == 24.0


def test_deterministic_in_seed() -> None:
    a, b, c = (make_video(num_frames=5, height=32, width=32, seed=s) for s in (4, 4, 5))
    for field in ("frames", "masks", "points", "visible"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert not np.array_equal(a.frames, c.frames)
    t1, t2 = translated_texture(seed=2), translated_texture(seed=2)
    assert np.array_equal(t1.frames, t2.frames) and np.array_equal(t1.points, t2.points)


def test_colorful_and_textured() -> None:
    v = make_video(num_frames=2, height=64, width=64, seed=1)
    frame = v.frames[0].astype(float)
    assert frame.std(axis=(0, 1)).min() > 15  # every channel varies
    assert np.abs(np.diff(frame, axis=1)).mean() > 2  # fine texture, not flat
    for obj in v.objects:  # objects differ in colour from the background
        inside = v.masks[0] == obj.obj_id
        assert inside.any()
        assert np.abs(frame[inside].mean(0) - frame[v.masks[0] == 0].mean(0)).max() > 20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masks_follow_depth_order(seed: int) -> None:
    v = make_video(num_frames=12, height=48, width=64, num_objects=3, seed=seed, scale_range=(0.7, 1.3))
    overlap_seen = False
    for t in range(v.num_frames):
        sil = np.stack([o.silhouette(t, 48, 64) for o in v.objects])  # (K, H, W)
        expected = np.zeros((48, 64), np.uint8)
        for obj, s in zip(v.objects, sil):
            expected[s] = obj.obj_id  # later (higher id) = nearer
        assert np.array_equal(v.masks[t], expected), t
        overlap_seen |= bool((sil.sum(0) > 1).any())
    assert overlap_seen, "crossing paths should make objects overlap"


def test_visible_points_lie_on_their_object_and_some_get_occluded() -> None:
    occluded = 0
    for seed in range(4):
        v = make_video(num_frames=16, height=48, width=64, num_objects=3, seed=seed, pan=(0.5, -0.25))
        px = pixel_of(v.points).astype(int)
        for t, p in zip(*np.nonzero(v.visible)):
            x, y = px[t, p]
            assert v.masks[t, y, x] == v.point_ids[p], (seed, t, p)
        assert v.visible[0].all()  # sampled where visible in frame 0
        occluded += int((~v.visible).sum())
    assert occluded > 0


def test_points_follow_exact_affine_motion() -> None:
    v = make_video(num_frames=10, height=64, width=64, num_objects=2, scale_range=(0.5, 1.5), seed=7)
    for p, obj_id in enumerate(v.point_ids):
        obj = v.objects[obj_id - 1]
        for t in (0, 4, 9):
            offset = v.points[t, p] - obj.center(t)
            assert np.allclose(offset, obj.scale(t) * (v.points[0, p] - obj.center(0)), atol=1e-4)
    assert any(abs(o.scale_end - 1) > 0.05 for o in v.objects)


def test_scaling_changes_area() -> None:
    v = make_video(num_frames=5, height=128, width=128, num_objects=1, scale_range=(1.5, 1.5))
    last = v.masks[4] == 1
    assert not (last[0].any() or last[-1].any() or last[:, 0].any() or last[:, -1].any())
    area0, area1 = (v.masks[0] == 1).sum(), last.sum()
    assert area1 / area0 == pytest.approx(2.25, rel=0.1)


def test_integer_camera_pan_moves_background_exactly() -> None:
    v = make_video(num_frames=3, height=32, width=40, num_objects=0, pan=(1, 2))
    assert np.array_equal(v.frames[1][1:, 2:], v.frames[0][:-1, :-2])
    assert v.points.shape == (3, 0, 2)


def test_translated_texture_moves_exactly() -> None:
    v = translated_texture(num_frames=4, height=64, width=48, shift=(8, -16), seed=3)
    for t in range(4):
        assert np.array_equal(v.frames[t], np.roll(v.frames[0], (8 * t, -16 * t), axis=(0, 1)))
        assert np.array_equal(v.masks[t], np.roll(v.masks[0], (8 * t, -16 * t), axis=(0, 1)))
        px = pixel_of(v.points[t]).astype(int)
        assert (v.masks[t][px[:, 1], px[:, 0]] == 1).all()
    assert v.masks[0].sum() == 32 * 24 and v.visible.all()


def test_translated_texture_cells_are_distinctive() -> None:
    v = translated_texture(num_frames=1, height=64, width=64)
    cells = v.frames[0].astype(float).reshape(8, 8, 8, 8, 3).mean(axis=(1, 3))  # (8, 8, 3)
    padded = np.pad(cells, ((1, 1), (1, 1), (0, 0)), mode="wrap")
    patches = np.stack(
        [padded[i : i + 3, j : j + 3].ravel() for i in range(8) for j in range(8)]
    )  # (64, 27): each cell's 3x3 neighbourhood of pooled colours
    dist = np.linalg.norm(patches[:, None] - patches[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    assert dist.min() > 50
