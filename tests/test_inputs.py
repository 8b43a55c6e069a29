"""Real-world inputs: rotated phone video, EXIF-oriented frames, empty and one-frame videos."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from colortrack.cli.main import main
from colortrack.core.tracker import PRESETS, LabelTracker
from colortrack.demo.synthetic import make_video
from colortrack.errors import InputError
from colortrack.io.davis import write_sequence
from colortrack.io.masks import DAVIS_PALETTE, LabelMap, read_mask, read_masks, write_mask
from colortrack.io.video import VideoReader, image_size, read_image, write_frames_png
from colortrack.models.baselines import FlowPropagator, IdentityPropagator
from colortrack.models.embedders.color import LabPatchEmbedder
from colortrack.tasks.masks import propagate_mask


def blocks(height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """``(H, W, 3) uint8`` of 16-pixel blocks of random colours: no symmetry, codec friendly."""
    cells = np.random.default_rng(seed).integers(0, 256, (height // 16, width // 16, 3))
    return np.repeat(np.repeat(cells, 16, axis=0), 16, axis=1).astype(np.uint8)


def write_rotated(path: Path, frames: np.ndarray, degrees: int, hflip: bool = False) -> Path:
    """Stored frames ``(T, H, W, 3)`` as a near-lossless H.264 file whose display matrix turns them
    ``degrees`` counter-clockwise (then mirrors them), as a phone records portrait video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "0"}
        stream.set_display_rotation(degrees, hflip=hflip)
        for index, frame in enumerate(frames):
            av_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            av_frame.pts = index
            for packet in stream.encode(av_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize(("degrees", "hflip", "turns"), [(90, False, 1), (-90, False, -1), (180, False, 2), (90, True, 1)])
def test_rotated_video_is_read_upright(tmp_path, degrees, hflip, turns):
    stored = np.stack([blocks(seed=1), blocks(seed=2)])
    reader = VideoReader(write_rotated(tmp_path / "phone.mp4", stored, degrees, hflip))
    upright = np.rot90(stored, turns, axes=(1, 2))
    if hflip:
        upright = upright[:, :, ::-1]
    assert (reader.info.height, reader.info.width) == upright.shape[1:3]
    frames = reader.read_all()
    assert frames.shape == upright.shape
    assert np.abs(frames.astype(int) - upright).mean() < 2


def test_exif_oriented_frames_are_read_upright(tmp_path):
    stored = blocks(seed=3)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("00000.png", "00001.png"):
        Image.fromarray(stored).save(folder / name, exif=exif)
    assert image_size(folder / "00000.png") == (96, 64)
    np.testing.assert_array_equal(read_image(folder / "00000.png"), np.rot90(stored, -1))
    reader = VideoReader(folder)
    assert (reader.info.height, reader.info.width) == (96, 64)
    assert reader.read_all().shape == (2, 96, 64, 3)


def test_tracking_a_rotated_video_writes_upright_masks(tmp_path, capsys):
    stored = np.stack([blocks(seed=4)] * 3)
    video = write_rotated(tmp_path / "phone.mp4", stored, 90)
    upright_mask = np.zeros((96, 64), np.uint8)
    upright_mask[10:40, 5:30] = 3
    write_mask(tmp_path / "first.png", upright_mask)
    code = main(["track", str(video), "--mask", str(tmp_path / "first.png"), "--out", str(tmp_path / "out"),
                 "--method", "identity", "--quiet"])
    assert code == 0
    masks = sorted((tmp_path / "out" / "masks").glob("*.png"))
    assert len(masks) == 3
    np.testing.assert_array_equal(read_mask(masks[-1]), upright_mask)
    assert VideoReader(tmp_path / "out" / "overlay.mp4").info.height == 96

    write_mask(tmp_path / "sideways.png", upright_mask.T.copy())
    code = main(["track", str(video), "--mask", str(tmp_path / "sideways.png"), "--out", str(tmp_path / "o2"),
                 "--method", "identity", "--quiet"])
    assert code == 2
    assert "sideways.png: mask is 96x64 but the video is 64x96" in capsys.readouterr().err


def test_a_video_file_without_frames_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height = 64, 32
        container.start_encoding()
    write_mask(tmp_path / "first.png", np.zeros((32, 64), np.uint8))
    code = main(["track", str(path), "--mask", str(tmp_path / "first.png"), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"colortrack: error: {path}:") and "\n" not in err


@pytest.mark.parametrize(
    "propagator",
    [IdentityPropagator(), FlowPropagator(), LabelTracker(LabPatchEmbedder(), PRESETS["color"], torch.device("cpu"))],
    ids=["identity", "flow", "tracker"],
)
def test_no_frames_is_an_input_error_and_one_frame_gives_the_first_mask(propagator):
    mask = np.zeros((32, 48), np.uint8)
    mask[4:20, 8:30] = 7
    with pytest.raises(InputError, match="has no frames"):
        list(propagate_mask(propagator, [], mask))
    (only,) = propagate_mask(propagator, [blocks(32, 48)], mask)
    np.testing.assert_array_equal(only, mask)


def write_davis(root: Path, lengths: dict[str, int]) -> Path:
    for name, length in lengths.items():
        video = make_video(num_frames=length, height=48, width=64, num_objects=1, seed=length)
        write_sequence(root, name, video.frames, video.masks)
    return root


def test_a_two_frame_sequence_leaves_the_dataset_scores_free_of_nan(tmp_path, capsys):
    root = write_davis(tmp_path / "davis", {"long": 6, "short": 2})
    code = main(["eval", "davis", "--root", str(root), "--method", "identity", "--out", str(tmp_path / "eval"), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "nan" not in printed.lower() and "short (object 1)" in printed
    results = json.loads((tmp_path / "eval" / "results.json").read_text(), parse_constant=_refuse)
    assert results["unscored"] == [{"sequence": "short", "object": 1}]
    assert [row["sequence"] for row in results["sequences"]] == ["long"]
    assert results["J&F"] == pytest.approx(results["sequences"][0]["J&F"])


def test_a_dataset_with_nothing_to_score_is_a_one_line_error(tmp_path, capsys):
    root = write_davis(tmp_path / "davis", {"one": 1, "two": 2})
    code = main(["eval", "davis", "--root", str(root), "--method", "identity", "--out", str(tmp_path / "eval"), "--quiet"])
    assert code == 2
    assert "no sequence has a frame to score" in capsys.readouterr().err


def _refuse(constant: str):
    raise ValueError(f"{constant} in results.json")


# -- grey masks and void ------------------------------------------------------------------


def save_grey(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)
    return path


def square(size: int = 16, value: int = 255) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[4:12, 4:12] = value
    return mask


def test_grey_0_255_mask_is_object_1(tmp_path):
    ids = read_mask(save_grey(tmp_path / "m.png", square()))
    np.testing.assert_array_equal(ids, square(value=1))


@pytest.mark.parametrize("edge", [128, 64, 200])
def test_anti_aliased_grey_mask_keeps_its_object(tmp_path, edge):
    mask = square()
    mask[3, 4:12] = mask[12, 4:12] = 128  # the anti-aliased ring: half covered
    mask[4:12, 3] = mask[4:12, 12] = edge
    ids = read_mask(save_grey(tmp_path / "m.png", mask))
    assert set(np.unique(ids)) == {0, 1}
    np.testing.assert_array_equal(ids == 1, mask >= 128)


def test_grey_ids_with_void_are_ids(tmp_path):
    mask = np.zeros((16, 24), np.uint8)
    mask[2:6, 2:8], mask[8:12, 2:8], mask[2:12, 12:20] = 1, 3, 7
    mask[6:8, 2:8] = 255
    np.testing.assert_array_equal(read_mask(save_grey(tmp_path / "m.png", mask)), mask)
    palette = write_mask(tmp_path / "p.png", mask)
    np.testing.assert_array_equal(read_mask(palette), mask)
    assert LabelMap.from_mask(read_mask(palette)).object_ids == (1, 3, 7)


def test_a_sequence_of_grey_ids_reads_a_0_255_frame_as_void(tmp_path):
    ids = square(value=3)
    ids[0, :] = 255
    only_void = np.where(ids == 255, 255, 0).astype(np.uint8)
    paths = [save_grey(tmp_path / "0.png", ids), save_grey(tmp_path / "1.png", only_void)]
    masks = read_masks(paths)
    np.testing.assert_array_equal(masks[1], only_void)  # alone it would read as object 1
    np.testing.assert_array_equal(read_mask(paths[1]), only_void == 255)
    mattes = read_masks([save_grey(tmp_path / "2.png", square()), save_grey(tmp_path / "3.png", square())])
    np.testing.assert_array_equal(mattes, np.stack([square(value=1)] * 2))


def test_ids_and_an_anti_aliased_matte_in_one_sequence_is_an_error(tmp_path):
    matte = square()
    matte[3, 4:12] = 128
    paths = [save_grey(tmp_path / "0.png", square(value=3)), save_grey(tmp_path / "1.png", matte)]
    with pytest.raises(InputError, match="1.png: anti-aliased grey matte, but 0.png holds object ids"):
        read_masks(paths)


def test_void_carries_no_label():
    label_map = LabelMap((0, 1, 3, 7))
    mask = np.array([[0, 1, 255], [3, 7, 255]], np.uint8)
    onehot = label_map.to_onehot(mask)
    assert onehot[:, :, 2].sum() == 0
    np.testing.assert_array_equal(onehot[:, :, :2].sum(axis=0), 1)


def test_void_in_the_first_mask_is_decided_by_its_neighbours():
    # A still video: a red textured object on blue. The first mask marks the object's outer 8
    # pixels void, as annotators mark uncertain edges. Taught as background, the ring stays
    # background; unknown, it is decided by appearance: mostly object (the colour embedder's
    # 3x3-cell patches of the ring also see the blue, hence not all of it).
    rng = np.random.default_rng(0)
    frame = np.empty((96, 128, 3), np.uint8)
    frame[:] = (30, 60, 200) + rng.integers(0, 40, (96, 128, 3))
    frame[16:80, 24:104] = (200, 40, 30) + rng.integers(0, 40, (64, 80, 3))
    first = np.zeros((96, 128), np.uint8)
    first[16:80, 24:104] = 255
    first[24:72, 32:96] = 3
    ring = first == 255
    tracker = LabelTracker(LabPatchEmbedder(), PRESETS["color"], torch.device("cpu"))
    given, *tracked = propagate_mask(tracker, [frame] * 3, first)
    np.testing.assert_array_equal(given, first)
    as_background = list(propagate_mask(tracker, [frame] * 3, np.where(ring, 0, first).astype(np.uint8)))
    for index, (mask, old) in enumerate(zip(tracked, as_background[1:]), start=1):
        assert set(np.unique(mask)) == {0, 3}
        assert (mask[ring] == 3).mean() > 0.7, f"frame {index}"
        assert (old[ring] == 3).mean() < 0.1, f"frame {index}"


def test_transparent_pixels_of_an_rgba_mask_are_background(tmp_path):
    ids = np.zeros((8, 8), np.uint8)
    ids[2:6, 2:6] = 7
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 90  # what a tool leaves under transparent pixels: any colour
    rgba[ids == 7] = (*DAVIS_PALETTE[7], 255)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), ids)


def test_track_names_masks_after_the_source_frames(tmp_path: Path) -> None:
    """1-based frame files give 1-based masks, so they line up with ground truth named the same."""
    video = make_video(num_frames=4, height=32, width=48, seed=0)
    frames = tmp_path / "frames"
    write_frames_png(frames, video.frames)
    for index in reversed(range(4)):  # renamed to 00001.png .. 00004.png
        (frames / f"{index:05d}.png").rename(frames / f"{index + 1:05d}.png")
    write_mask(tmp_path / "first.png", video.masks[0])
    out = tmp_path / "out"
    assert main(["track", str(frames), "--mask", str(tmp_path / "first.png"), "--out", str(out), "--method", "identity", "--quiet", "--no-overlay"]) == 0
    names = sorted(path.name for path in (out / "masks").iterdir())
    assert names == ["00001.png", "00002.png", "00003.png", "00004.png"]
    np.testing.assert_array_equal(read_mask(out / "masks" / "00001.png"), video.masks[0])
    assert main(["track", str(frames), "--mask", str(tmp_path / "first.png"), "--out", str(out), "--method", "identity", "--quiet", "--no-overlay"]) == 0
    assert sorted(path.name for path in (out / "masks").iterdir()) == names  # a re-run is complete, nothing added
