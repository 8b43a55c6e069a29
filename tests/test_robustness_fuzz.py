"""Property-based fuzzing of the readers: whatever the bytes, a reader returns a valid result or
raises InputError, never anything else. Bounded: a few seconds per reader."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from colortrack.errors import InputError
from colortrack.io.keypoints import read_points
from colortrack.io.masks import read_mask
from colortrack.io.video import VideoReader, write_video
from colortrack.demo.synthetic import make_video

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
FEW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def _mask_or_input_error(path: Path, size=None) -> None:
    try:
        ids = read_mask(path, size=size)
    except InputError as err:
        assert err.where == str(path)
        return
    assert ids.dtype == np.uint8 and ids.ndim == 2 and ids.flags.c_contiguous


# --------------------------------------------------------------------------- masks

PNG_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "I", "I;16")
OTHER_MODES = ("F", "CMYK", "YCbCr", "HSV", "LAB", "I;16B")


@st.composite
def images(draw) -> bytes:
    """An image file of a random mode, size and content (PNG where PIL can, else TIFF or WebP)."""
    mode = draw(st.sampled_from(PNG_MODES + OTHER_MODES))
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    small = draw(st.booleans())  # few distinct values (like a real mask) or anything
    base = Image.new("RGB", (width, height))
    base.putdata([tuple(int(v) for v in rng.integers(0, 4 if small else 256, 3) * (85 if small else 1)) for _ in range(width * height)])
    if mode in ("I", "I;16", "I;16B", "F"):
        values = rng.integers(0, 300 if draw(st.booleans()) else 256, (height, width))
        image = Image.fromarray(values.astype({"I": np.int32, "F": np.float32}.get(mode, np.uint16)))
        image = image.convert(mode) if mode == "I;16B" else image
    elif mode in ("P", "PA"):
        image = base.convert("P")
        image = image.convert("PA") if mode == "PA" else image
    else:
        image = base.convert(mode)
    buffer = io.BytesIO()
    for fmt in ("PNG", "TIFF", "WEBP"):
        try:
            image.save(buffer, format=fmt)
            break
        except (OSError, ValueError, KeyError):
            buffer = io.BytesIO()
    return buffer.getvalue()


@FUZZ
@given(content=st.binary(max_size=512), name=st.sampled_from(["m.png", "m.jpg", "m", "m.gif"]))
def test_mask_reader_random_bytes(folder, content, name):
    _mask_or_input_error(_write(folder, name, content))


@FUZZ
@given(content=images(), cut=st.one_of(st.none(), st.floats(0, 1)), size=st.sampled_from([None, (4, 4)]))
def test_mask_reader_random_images_whole_or_truncated(folder, content, cut, size):
    if cut is not None:
        content = content[: int(len(content) * cut)]
    _mask_or_input_error(_write(folder, "mask.png", content), size)


@FUZZ
@given(content=images(), position=st.floats(0, 1), byte=st.integers(0, 255))
def test_mask_reader_flipped_byte(folder, content, position, byte):
    data = bytearray(content)
    if data:
        data[min(int(position * len(data)), len(data) - 1)] = byte
    _mask_or_input_error(_write(folder, "mask.png", bytes(data)))


# --------------------------------------------------------------------------- keypoints

def _points_or_input_error(path: Path) -> None:
    try:
        keypoints = read_points(path)
    except InputError as err:
        assert err.where == str(path)
        return
    assert len(keypoints.names) == len(keypoints.xy) > 0 and np.isfinite(keypoints.xy).all()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
huge = st.integers(10**308, 10**400) | st.integers(-(10**400), -(10**308))  # beyond float: found a crash
point = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=3), st.integers()), "x": json_values | huge, "y": st.one_of(st.floats(), huge)}
)
point_files = st.one_of(
    json_values,
    st.fixed_dictionaries({"points": st.lists(point, max_size=4)}, optional={"edges": json_values}),
    st.fixed_dictionaries(
        {"points": st.lists(point, max_size=4), "edges": st.lists(st.lists(st.sampled_from(["a", "b", ""]), max_size=3))}
    ),
)


@FUZZ
@given(data=point_files)
def test_points_json_random_structures(folder, data):
    _points_or_input_error(_write(folder, "p.json", json.dumps(data).encode()))


@FUZZ
@given(content=st.binary(max_size=256), name=st.sampled_from(["p.json", "p.csv", "p.mat"]))
def test_points_random_bytes(folder, content, name):
    _points_or_input_error(_write(folder, name, content))


csv_cell = st.one_of(st.text(max_size=6), st.floats().map(str), st.integers().map(str))


@FUZZ
@given(rows=st.lists(st.lists(csv_cell, max_size=4), max_size=5), header=st.booleans())
def test_points_csv_random_rows(folder, rows, header):
    lines = (["name,x,y"] if header else []) + [",".join(row) for row in rows]
    _points_or_input_error(_write(folder, "p.csv", "\n".join(lines).encode("utf-8", "surrogatepass")))


@FEW
@given(
    shape=st.lists(st.integers(0, 16), min_size=1, max_size=4),
    dtype=st.sampled_from(["float64", "int16", "uint8", "complex64", "bool"]),
    fill=st.sampled_from([1.0, np.nan, np.inf, -5.0, 1e300]),
    key=st.sampled_from(["pos_img", "pos_world"]),
)
def test_points_mat_random_arrays(folder, shape, dtype, fill, key):
    array = np.full(shape, fill).astype(dtype) if dtype.startswith(("float", "complex")) else np.ones(shape, dtype)
    path = folder / "joint_positions.mat"
    scipy.io.savemat(path, {key: array})
    _points_or_input_error(path)


@FEW
@given(text=st.text(max_size=40))
def test_points_mat_cell_and_string_values(folder, text):
    path = folder / "joint_positions.mat"
    scipy.io.savemat(path, {"pos_img": np.array([text, "x"], dtype=object)})
    _points_or_input_error(path)


# --------------------------------------------------------------------------- videos

def _video_or_input_error(path: Path) -> None:
    try:
        reader = VideoReader(path)
        frames = reader.read_all()
    except InputError as err:
        assert err.where.startswith(str(path))
        return
    assert frames.ndim == 4 and frames.shape[0] >= 1 and frames.shape[-1] == 3 and frames.dtype == np.uint8


@pytest.fixture(scope="module")
def real_videos(folder) -> dict[str, bytes]:
    video = make_video(num_frames=4, height=16, width=24, seed=1)
    out = {}
    for ext in (".mp4", ".mkv"):
        path = write_video(folder / f"real{ext}", video.frames, video.fps)
        out[ext] = path.read_bytes()
    return out


@FUZZ
@given(content=st.binary(max_size=1024), ext=st.sampled_from([".mp4", ".avi", ".mov", ".mkv", ".webm"]))
def test_video_reader_random_bytes(folder, content, ext):
    _video_or_input_error(_write(folder, f"v{ext}", content))


@FEW
@given(ext=st.sampled_from([".mp4", ".mkv"]), cut=st.floats(0, 1))
def test_video_reader_truncated_real_videos(folder, real_videos, ext, cut):
    content = real_videos[ext]
    _video_or_input_error(_write(folder, f"cut{ext}", content[: int(len(content) * cut)]))


@FEW
@given(ext=st.sampled_from([".mp4", ".mkv"]), position=st.floats(0, 1), noise=st.binary(min_size=1, max_size=64))
def test_video_reader_damaged_real_videos(folder, real_videos, ext, position, noise):
    content = bytearray(real_videos[ext])
    start = int(position * len(content))
    content[start : start + len(noise)] = noise
    _video_or_input_error(_write(folder, f"bad{ext}", bytes(content)))
