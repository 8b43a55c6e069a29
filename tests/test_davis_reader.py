"""DavisDataset / DavisSequence on a tiny generated DAVIS tree and on the real DAVIS-2016 data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colortrack.errors import InputError
from colortrack.io.davis import DavisDataset
from colortrack.io.masks import write_mask

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DAVIS16 = DATA / "davis2016-train"
H, W = 16, 24


def make_tree(root: Path, sequences: dict[str, int], db_info: bool = True) -> Path:
    """A DAVIS layout with ``{name: num_frames}``; object 1 is a box moving right; id 2 in 'b'."""
    rng = np.random.default_rng(0)
    for name, count in sequences.items():
        frames = root / "JPEGImages" / "480p" / name
        masks = root / "Annotations" / "480p" / name
        frames.mkdir(parents=True)
        for t in range(count):
            Image.fromarray(rng.integers(0, 256, (H, W, 3), np.uint8)).save(frames / f"{t:05d}.jpg")
            ids = np.zeros((H, W), np.uint8)
            ids[4:10, t : t + 6] = 1
            if name == "b":
                ids[12:, :4] = 2
            write_mask(masks / f"{t:05d}.png", ids)
    if db_info:
        (root / "db_info.yml").write_text(
            "sequences:\n- name: a\n  attributes: [OCC, FM]\n- name: b\n  attributes: []\n"
        )
    return root


def test_lists_sequences_and_attributes(tmp_path: Path) -> None:
    data = DavisDataset(make_tree(tmp_path, {"b": 2, "a": 3}))
    assert data.names == ["a", "b"] and len(data) == 2
    assert data.attributes == {"a": ["OCC", "FM"], "b": []}
    a = data["a"]
    assert a.attributes == ["OCC", "FM"]
    assert [p.name for p in a.frame_paths] == ["00000.jpg", "00001.jpg", "00002.jpg"]
    assert [p.name for p in a.mask_paths] == ["00000.png", "00001.png", "00002.png"]


def test_reads_frames_and_masks(tmp_path: Path) -> None:
    seq = DavisDataset(make_tree(tmp_path, {"a": 1, "b": 3}))["b"]
    frames, masks = seq.read_frames(), seq.read_masks()
    assert frames.shape == (3, H, W, 3) and frames.dtype == np.uint8
    assert masks.shape == (3, H, W) and masks.dtype == np.uint8
    assert masks[2, 5, 2] == 1 and masks[2, 5, 1] == 0 and masks[0, 13, 1] == 2
    assert np.array_equal(seq.first_mask(), masks[0])


def test_sequence_selection_and_unknown_name(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"a": 1, "b": 1}, db_info=False)
    data = DavisDataset(root, sequences=["b"])
    assert data.names == ["b"] and data.attributes == {}
    with pytest.raises(InputError, match=f"no sequence 'x' in {root}"):
        DavisDataset(root, sequences=["a", "x"])


def test_missing_root_and_layout(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such DAVIS folder"):
        DavisDataset(tmp_path / "nope")
    (tmp_path / "JPEGImages" / "480p").mkdir(parents=True)
    with pytest.raises(InputError, match="no Annotations/480p"):
        DavisDataset(tmp_path)


def test_masks_of_some_frames_are_paired_with_their_frames_by_name(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"a": 2, "b": 5})
    (root / "Annotations" / "480p" / "b" / "00001.png").unlink()
    (root / "Annotations" / "480p" / "b" / "00003.png").unlink()
    seq = DavisDataset(root)["b"]
    assert seq.mask_frames == [0, 2, 4] and not seq.dense and DavisDataset(root)["a"].dense
    assert seq.read_masks().shape == (3, H, W)
    assert seq.output_name(3) == "00003.png"


def test_a_mask_without_its_frame_or_a_sequence_without_masks_is_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"a": 2, "b": 3})
    stray = root / "Annotations" / "480p" / "b" / "00007.png"
    write_mask(stray, np.zeros((H, W), np.uint8))
    with pytest.raises(InputError, match="no frame named 00007 for this mask"):
        DavisDataset(root)
    stray.unlink()
    for mask in (root / "Annotations" / "480p" / "a").glob("*.png"):
        mask.unlink()
    with pytest.raises(InputError, match="sequence 'a' has no masks"):
        DavisDataset(root)


def test_first_appearances_give_each_object_where_it_first_appears(tmp_path: Path) -> None:
    seq = DavisDataset(make_tree(tmp_path, {"b": 4}))["b"]
    masks = seq.read_masks()
    masks[:2][masks[:2] == 2] = 0  # object 2 enters on frame 2
    appearances = seq.first_appearances(masks)
    assert sorted(appearances) == [0, 2]
    np.testing.assert_array_equal(appearances[0], masks[0])
    np.testing.assert_array_equal(appearances[2], np.where(masks[2] == 2, 2, 255))


def test_mask_of_wrong_size(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"a": 2})
    bad = root / "Annotations" / "480p" / "a" / "00001.png"
    write_mask(bad, np.zeros((H, W + 1), np.uint8))
    seq = DavisDataset(root)["a"]
    seq.first_mask()  # frame 0 is fine
    with pytest.raises(InputError, match="expected 24x16") as info:
        seq.read_masks()
    assert info.value.where == str(bad)


def test_bad_db_info(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"a": 1}, db_info=False)
    (root / "db_info.yml").write_text("sequences: [unclosed\n")
    with pytest.raises(InputError, match="db_info.yml"):
        DavisDataset(root)


@pytest.mark.davis
def test_real_davis2016() -> None:
    if not DAVIS16.is_dir():
        pytest.skip(f"real data absent: {DAVIS16} (needs ../shared/data)")
    data = DavisDataset(DAVIS16, sequences=["dog-agility", "bear"])
    assert data.names == ["dog-agility", "bear"]
    assert len(data["bear"]) == 82 and data["bear"].attributes == ["DEF"]
    assert len(DavisDataset(DAVIS16).sequences) == 19
    dog = data["dog-agility"]
    masks = dog.read_masks()
    assert masks.shape == (25, 480, 854) and set(np.unique(masks)) == {0, 1}
    assert dog.read_frames().shape == (25, 480, 854, 3)
