"""VideoReader / VideoWriter / atomic writes: roundtrips, frame folders and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write, atomic_write_json, atomic_write_text
from colortrack.io.video import VideoReader, VideoWriter, write_frames_png, write_video
from colortrack.demo.synthetic import make_video

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def smooth_frames(t: int = 12, h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth textured frames (T, H, W, 3) uint8 that H.264 keeps close to the original."""
    return make_video(num_frames=t, height=h, width=w, num_objects=1, seed=3).frames


def noise_frames(t: int = 30, h: int = 48, w: int = 64) -> np.ndarray:
    """Random frames: large packets, so damage to the file lands inside frame data."""
    return np.random.default_rng(0).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- VideoWriter + VideoReader roundtrip -----------------------------------------------------


def test_mp4_roundtrip_count_size_colors(tmp_path: Path) -> None:
    frames = smooth_frames()
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=12.5) as writer:
        writer.write_all(frames)
    reader = VideoReader(path)
    assert len(reader) == reader.info.num_frames == len(frames)
    assert (reader.info.height, reader.info.width) == frames.shape[1:3]
    assert reader.info.fps == pytest.approx(12.5)
    back = reader.read_all()
    assert back.shape == frames.shape and back.dtype == np.uint8
    err = np.abs(back.astype(int) - frames.astype(int)).mean(axis=(1, 2, 3))
    assert err.max() < 6, err


def test_flat_colors_survive_exactly_within_a_few_levels(tmp_path: Path) -> None:
    colors = np.array([[200, 30, 40], [20, 180, 60], [30, 40, 220], [128, 128, 128]], np.uint8)
    frames = np.broadcast_to(colors[:, None, None, :], (4, 16, 16, 3))
    back = VideoReader(write_video(tmp_path / "flat.mp4", frames, fps=24)).read_all()
    assert np.abs(back.astype(int) - frames).max() <= 3


def test_iteration_streams_one_frame_at_a_time(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", smooth_frames(t=5), fps=24)
    it = iter(VideoReader(path))
    first = next(it)
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    assert sum(1 for _ in it) == 4


def test_odd_size_padded_to_even_by_edge_replication(tmp_path: Path) -> None:
    frames = smooth_frames(t=3, h=33, w=47)
    path = write_video(tmp_path / "odd.mp4", frames, fps=24, crf=0)
    back = VideoReader(path).read_all()
    assert back.shape == (3, 34, 48, 3)
    assert np.abs(back[:, :33, :47].astype(int) - frames).mean() < 8  # 4:2:0 chroma
    assert np.abs(back[:, 33].astype(int) - back[:, 32]).mean() < 4  # replicated last row
    assert np.abs(back[:, :, 47].astype(int) - back[:, :, 46]).mean() < 4


def test_mkv_without_container_frame_count_is_counted(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mkv", smooth_frames(t=7), fps=24)
    reader = VideoReader(path)
    assert len(reader) == 7 and reader.read_all().shape[0] == 7


def test_a_damaged_frame_count_is_not_trusted(tmp_path: Path) -> None:
    """One byte of the sample table's count set to 2 makes the container claim 33554436 frames
    (the fuzz test found it: reading all frames then asked for 36 GiB); the reader counts them."""
    video = make_video(num_frames=4, height=16, width=24, seed=1)
    write_video(tmp_path / "real.mp4", video.frames, video.fps)
    data = bytearray((tmp_path / "real.mp4").read_bytes())
    entries = data.index(b"stts") + 12  # box type, version and flags, entry count: the first entry's sample count
    assert data[entries : entries + 4] == bytes([0, 0, 0, 4])
    data[entries] = 2
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    reader = VideoReader(tmp_path / "damaged.mp4")
    assert reader.info.num_frames == 4
    assert reader.read_all().shape == (4, 16, 24, 3)


def test_writer_is_atomic_and_cleans_up_on_error(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with VideoWriter(path, fps=24) as writer:
            writer.write_all(noise_frames(t=60))  # past x264 lookahead: packets reach the file
            raise RuntimeError("killed")
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path) == ["out.mp4"]
    with VideoWriter(path, fps=24) as writer:
        writer.write(smooth_frames(t=1)[0])
        assert path.read_bytes() == b"old"  # nothing at path until close
    assert len(VideoReader(path)) == 1
    assert leftovers(tmp_path) == ["out.mp4"]


def test_writer_rejects_bad_frames_and_extension(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot write"):
        VideoWriter(tmp_path / "x.gif", fps=24)
    with pytest.raises(ValueError, match="uint8"):
        with VideoWriter(tmp_path / "x.mp4", fps=24) as writer:
            writer.write(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="no frames"):
        with VideoWriter(tmp_path / "y.mp4", fps=24):
            pass
    assert leftovers(tmp_path) == []


# -- frame folders ---------------------------------------------------------------------------


def test_folder_sorted_naturally_images_only(tmp_path: Path) -> None:
    frames = smooth_frames(t=3)
    for value, name in zip(frames, ["f2.png", "f10.jpg", "f1.png"]):
        Image.fromarray(value).save(tmp_path / name, quality=98)
    (tmp_path / "notes.txt").write_text("not a frame")
    reader = VideoReader(tmp_path)
    assert [p.name for p in reader.frame_paths] == ["f1.png", "f2.png", "f10.jpg"]
    assert reader.info.fps == 24.0 and VideoReader(tmp_path, fps=10).info.fps == 10.0
    back = reader.read_all()
    assert np.array_equal(back[0], frames[2]) and np.array_equal(back[1], frames[0])
    assert np.abs(back[2].astype(int) - frames[1]).mean() < 6  # JPEG


def test_write_frames_png_then_read(tmp_path: Path) -> None:
    frames = smooth_frames(t=4)
    paths = write_frames_png(tmp_path / "out", frames, start_index=3)
    assert [p.name for p in paths] == ["00003.png", "00004.png", "00005.png", "00006.png"]
    assert np.array_equal(VideoReader(tmp_path / "out").read_all(), frames)


# -- bad inputs ------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        VideoReader(tmp_path / "nope.mp4")


def test_unsupported_extension(tmp_path: Path) -> None:
    (tmp_path / "clip.txt").write_text("hello")
    with pytest.raises(InputError, match="unsupported extension"):
        VideoReader(tmp_path / "clip.txt")


def test_empty_folder_and_folder_without_images(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no image files"):
        VideoReader(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match="no image files"):
        VideoReader(tmp_path)


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 500])
def test_corrupt_video_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        VideoReader(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_corrupt_frame_mid_video_names_file_and_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", noise_frames(), fps=24)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = np.random.default_rng(1).integers(0, 256, 2000, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    reader = VideoReader(path)  # the header and first frames are fine
    with pytest.raises(InputError, match=r"frame [1-9]\d*") as info:
        reader.read_all()
    assert str(path) in str(info.value)


def test_mismatched_frame_sizes_name_first_offender(tmp_path: Path) -> None:
    sizes = [(32, 24), (32, 24), (30, 24), (8, 8)]
    for index, size in enumerate(sizes):
        Image.new("RGB", size).save(tmp_path / f"{index:05d}.png")
    with pytest.raises(InputError, match="differs") as info:
        VideoReader(tmp_path)
    assert info.value.where.endswith("00002.png")


def test_truncated_png_in_folder(tmp_path: Path) -> None:
    frames = smooth_frames(t=3)
    paths = write_frames_png(tmp_path, frames)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated PNG") as info:  # found up front, before decoding
        VideoReader(tmp_path)
    assert info.value.where == str(paths[1])


def test_image_file_is_not_a_video(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(InputError, match="not a video"):
        VideoReader(tmp_path / "a.png")


# -- atomic writes ---------------------------------------------------------------------------


def test_atomic_write_text_json_and_failure(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "sub" / "a.json", {"x": [1, 2]})
    assert json.loads((tmp_path / "sub" / "a.json").read_text()) == {"x": [1, 2]}
    assert (tmp_path / "sub" / "a.json").read_text().startswith('{\n  "x"')
    atomic_write_text(tmp_path / "b.txt", "one")
    with pytest.raises(KeyError):
        with atomic_write(tmp_path / "b.txt") as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".txt"
            tmp.write_text("half")
            raise KeyError("killed")
    assert (tmp_path / "b.txt").read_text() == "one"
    assert leftovers(tmp_path) == ["b.txt", "sub"]


# -- real data -------------------------------------------------------------------------------


@pytest.mark.davis
def test_real_clip_count_is_exact() -> None:
    clip = DATA / "videos-256p" / "aot-benchmark" / "market_1001.mp4"
    if not clip.is_file():
        pytest.skip(f"real data absent: {clip} (needs ../shared/data)")
    reader = VideoReader(clip)
    count = sum(1 for _ in reader)
    assert count == len(reader) > 0
    assert min(reader.info.height, reader.info.width) == 256


def test_write_behind_writes_in_order_in_a_side_thread_and_raises_write_errors() -> None:
    import threading

    from colortrack.io.streams import write_behind

    written, threads = [], set()

    def write(item: int) -> None:
        threads.add(threading.get_ident())
        written.append(item)

    assert write_behind(iter(range(5)), write) == 5
    assert written == [0, 1, 2, 3, 4] and threading.get_ident() not in threads

    def failing(item: int) -> None:
        if item == 2:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_behind(range(5), failing)
