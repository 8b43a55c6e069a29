"""Mask reading in every DAVIS flavour, palette PNG writing, LabelMap, and mask overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colortrack.errors import InputError
from colortrack.io.masks import DAVIS_PALETTE, VOID_ID, LabelMap, read_mask, write_mask
from colortrack.io.overlay import draw_points, mask_contours, overlay_masks

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DAVIS16 = DATA / "davis2016-train" / "Annotations" / "480p"


def ids_example() -> np.ndarray:
    """(6, 8) uint8 with ids 0..5 and void 255."""
    ids = np.zeros((6, 8), np.uint8)
    ids[0, :6] = [0, 1, 2, 3, 4, 5]
    ids[2:4, 2:5] = 3
    ids[5, :] = VOID_ID
    return ids


def save(tmp_path: Path, array: np.ndarray, name: str = "m.png", mode: str | None = None) -> Path:
    im = Image.fromarray(array)
    if mode is not None:
        im = im.convert(mode)
    im.save(tmp_path / name)
    return tmp_path / name


# -- palette ---------------------------------------------------------------------------------


def test_palette_is_the_voc_davis_palette() -> None:
    assert DAVIS_PALETTE.shape == (256, 3) and DAVIS_PALETTE.dtype == np.uint8
    assert DAVIS_PALETTE[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert DAVIS_PALETTE[8].tolist() == [64, 0, 0]
    assert DAVIS_PALETTE[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in DAVIS_PALETTE.tolist()}) == 256


# -- read/write ------------------------------------------------------------------------------


def test_palette_png_roundtrip_with_void(tmp_path: Path) -> None:
    ids = ids_example()
    path = write_mask(tmp_path / "out" / "00000.png", ids)
    with Image.open(path) as im:
        assert im.mode == "P"
        assert np.array_equal(np.array(im.getpalette()[:768]).reshape(256, 3), DAVIS_PALETTE)
    back = read_mask(path)
    assert back.dtype == np.uint8 and np.array_equal(back, ids)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.png"]


def test_davis2016_grey_0_255_becomes_object_1(tmp_path: Path) -> None:
    grey = np.zeros((5, 7), np.uint8)
    grey[1:3, 2:5] = 255
    assert np.array_equal(read_mask(save(tmp_path, grey)), grey // 255)
    assert np.array_equal(read_mask(save(tmp_path, grey, "b.png", mode="1")), grey // 255)


def test_grey_ids_kept_and_void_stays_void(tmp_path: Path) -> None:
    ids = ids_example()
    assert np.array_equal(read_mask(save(tmp_path, ids)), ids)


def test_grey_alpha_uses_first_channel(tmp_path: Path) -> None:
    grey = np.zeros((4, 4), np.uint8)
    grey[1, 1] = 255
    la = np.stack([grey, np.full_like(grey, 255)], axis=-1)
    path = tmp_path / "la.png"
    Image.fromarray(la).save(path)
    assert Image.open(path).mode == "LA"
    assert np.array_equal(read_mask(path), grey // 255)


def test_rgb_and_rgba_palette_colors_map_to_ids(tmp_path: Path) -> None:
    ids = ids_example()
    rgb = DAVIS_PALETTE[ids]
    assert np.array_equal(read_mask(save(tmp_path, rgb)), ids)
    rgba = np.concatenate([rgb, np.full(ids.shape + (1,), 255, np.uint8)], axis=-1)
    assert np.array_equal(read_mask(save(tmp_path, rgba, "rgba.png")), ids)


def test_rgb_color_not_in_palette(tmp_path: Path) -> None:
    rgb = DAVIS_PALETTE[ids_example()].copy()
    rgb[4, 6] = (1, 2, 3)
    with pytest.raises(InputError, match=r"color \(1,2,3\) at x=6, y=4 is not in the DAVIS palette"):
        read_mask(save(tmp_path, rgb))


def test_16bit_ids(tmp_path: Path) -> None:
    ids = ids_example().astype(np.uint16)
    assert np.array_equal(read_mask(save(tmp_path, ids)), ids)
    ids[0, 0] = 300
    with pytest.raises(InputError, match="mask ids above 255"):
        read_mask(save(tmp_path, ids, "big.png"))


def test_all_zero_mask_is_valid(tmp_path: Path) -> None:
    empty = read_mask(save(tmp_path, np.zeros((3, 4), np.uint8)))
    assert empty.shape == (3, 4) and not empty.any()


def test_bad_mask_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such mask"):
        read_mask(tmp_path / "missing.png")
    path = write_mask(tmp_path / "t.png", np.tile(np.arange(64, dtype=np.uint8), (64, 1)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt"):
        read_mask(path)
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match="corrupt"):
        read_mask(tmp_path / "junk.png")


def test_wrong_size(tmp_path: Path) -> None:
    path = write_mask(tmp_path / "m.png", ids_example())
    with pytest.raises(InputError, match="mask is 8x6, expected 9x6"):
        read_mask(path, size=(6, 9))


# -- LabelMap --------------------------------------------------------------------------------


def test_labelmap_onehot_ids_roundtrip() -> None:
    ids = np.zeros((4, 5), np.uint8)
    ids[0, :2] = 7
    ids[2, 1:4] = 3
    ids[3, 4] = VOID_ID
    labels = LabelMap.from_mask(ids)
    assert labels.ids == (0, 3, 7) and labels.num_channels == 3
    onehot = labels.to_onehot(ids)
    assert onehot.shape == (3, 4, 5) and onehot.dtype == np.float32
    assert np.array_equal(onehot.sum(axis=0), (ids != VOID_ID).astype(np.float32))
    assert not onehot[:, 3, 4].any()  # void carries no label
    expected = np.where(ids == VOID_ID, 0, ids)
    assert np.array_equal(labels.to_ids(onehot.argmax(axis=0)), expected)


def test_labelmap_check_unknown_ids() -> None:
    labels = LabelMap.from_mask(np.array([[0, 2], [255, 2]], np.uint8))
    labels.check(np.array([[2, 255], [0, 0]], np.uint8), "ok.png")
    with pytest.raises(InputError, match=r"f\.png: object ids \[5\]"):
        labels.check(np.array([[5, 2]], np.uint8), "f.png")
    with pytest.raises(ValueError):
        labels.to_onehot(np.array([[5]], np.uint8))
    with pytest.raises(ValueError):
        labels.to_ids(np.array([[2]]))


# -- overlay ---------------------------------------------------------------------------------


def test_overlay_colors_objects_and_darkens_contours() -> None:
    frame = np.full((10, 10, 3), 100, np.uint8)
    ids = np.zeros((10, 10), np.uint8)
    ids[2:8, 2:8] = 1
    out = overlay_masks(frame, ids, alpha=0.5)
    assert np.array_equal(out[0, 0], frame[0, 0])  # background untouched
    assert out[5, 5].tolist() == [114, 50, 50]  # (100 + (128, 0, 0)) / 2
    assert out[2, 5].tolist() == [64, 0, 0]  # contour: half the object colour
    assert out.dtype == np.uint8 and out.shape == frame.shape


def test_overlay_equals_palette_blend_for_every_id() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    ids = np.kron(rng.integers(0, 256, (11, 16)), np.ones((3, 3), np.int64))[:33, :47].astype(np.uint8)
    colors = DAVIS_PALETTE.astype(np.float64)[ids]
    expected = np.where((ids != 0)[..., None], np.rint(0.5 * frame + 0.5 * colors), frame)
    edge = mask_contours(ids)
    expected[edge] = (colors[edge] + 1) // 2
    out = overlay_masks(frame, ids, alpha=0.5)
    assert np.abs(out.astype(np.int64) - expected).max() <= 1  # cv2 rounds halves its own way
    assert np.array_equal(out[ids == 0], frame[ids == 0])


def test_draw_points_skips_lost_points() -> None:
    frame = np.zeros((40, 40, 3), np.uint8)
    points = np.array([[10.0, 10.0], [30.0, 30.0], [np.nan, 5.0]])
    out = draw_points(frame, points, np.array([True, False, True]), edges=[(0, 1)])
    assert out[10, 10].any() and not out[30, 30].any()
    assert not out[20, 20].any()  # edge to a lost point not drawn
    assert not frame.any()  # input untouched


# -- real data quirks ------------------------------------------------------------------------


def need_davis16() -> None:
    if not DAVIS16.is_dir():
        pytest.skip(f"real data absent: {DAVIS16} (needs ../shared/data)")


@pytest.mark.davis
def test_real_la_mask_bear_00077() -> None:
    need_davis16()
    path = DAVIS16 / "bear" / "00077.png"
    assert Image.open(path).mode == "LA"
    ids = read_mask(path)
    assert ids.shape == (480, 854) and set(np.unique(ids)) == {0, 1}


@pytest.mark.davis
def test_real_empty_surf_mask() -> None:
    need_davis16()
    empty = [p for p in sorted((DAVIS16 / "surf").glob("*.png")) if not read_mask(p).any()]
    assert len(empty) >= 1, "expected the known empty surf mask"
    ids = read_mask(empty[0])
    assert ids.shape == (480, 854)
    assert LabelMap.from_mask(ids).ids == (0,)
