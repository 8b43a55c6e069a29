"""Keypoint files: first-frame points (JSON, CSV, JHMDB ``joint_positions.mat``) and tracked points.

Every bad file raises :class:`colortrack.errors.InputError` naming it: unreadable or malformed
content, no points, a duplicate name, a NaN or infinite coordinate, an edge naming an unknown
point, and (:func:`check_inside`) a point outside the frame.

Formats read by :func:`read_points`:

* ``.json``: ``{"points": [{"name": "nose", "x": 10.5, "y": 20}, ...], "edges": [["a", "b"], ...]}``
  (``edges`` optional);
* ``.csv``: a ``name,x,y`` header, then one point per line (no edges);
* ``.mat``: a JHMDB ``joint_positions.mat``; its first frame's 15 joints, with the JHMDB skeleton.

Coordinates are pixel-centre xy (pixel (x, y) has its centre at x, y). JHMDB's ``pos_img`` is
1-based (MATLAB), so 1 is subtracted.

BADJA's annotation files (:func:`read_badja`) are read as published: a JSON list of annotated
frames, each with ``image_path`` (the frame index is its file name), ``joints`` (37 ``[row, col]``
in 1920x1080 pixels) and ``visibility`` (37 booleans).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write_json
from colortrack.io.errors import one_line
from colortrack.tasks.points import Keypoints, KeypointTrack

# The official JHMDB joint order (README of the JHMDB "joint_positions" annotations; "face" is
# called "head" by some tools).
JHMDB_JOINTS: tuple[str, ...] = (
    "neck",
    "belly",
    "face",
    "right shoulder",
    "left shoulder",
    "right hip",
    "left hip",
    "right elbow",
    "left elbow",
    "right knee",
    "left knee",
    "right wrist",
    "left wrist",
    "right ankle",
    "left ankle",
)

# The limbs of the JHMDB puppet: head and spine, arms from the neck, legs from the belly.
JHMDB_EDGES: tuple[tuple[str, str], ...] = (
    ("face", "neck"),
    ("neck", "belly"),
    ("neck", "right shoulder"),
    ("right shoulder", "right elbow"),
    ("right elbow", "right wrist"),
    ("neck", "left shoulder"),
    ("left shoulder", "left elbow"),
    ("left elbow", "left wrist"),
    ("belly", "right hip"),
    ("right hip", "right knee"),
    ("right knee", "right ankle"),
    ("belly", "left hip"),
    ("left hip", "left knee"),
    ("left knee", "left ankle"),
)

# BADJA's 37 joints: 33 joints of the SMAL animal model (legs, spine, neck, tail; BADJA annotates
# some of them per animal), then four face points.
BADJA_JOINTS: tuple[str, ...] = tuple(f"smal {k}" for k in range(33)) + ("nose tip", "chin", "left ear", "right ear")
BADJA_SIZE = (1080, 1920)  # (rows, columns) of the full-resolution frames BADJA's joints refer to

POINT_EXTENSIONS = (".json", ".csv", ".mat")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# What scipy raises on files that are not (version 4/5) .mat files; v7.3 (HDF5) raises NotImplementedError.
_MAT_ERRORS = (scipy.io.matlab.MatReadError, OSError, ValueError, TypeError, IndexError, KeyError, NotImplementedError)


def read_points(path: str | os.PathLike) -> Keypoints:
    """First-frame points from a ``.json``, ``.csv`` or JHMDB ``.mat`` file (see module doc)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in POINT_EXTENSIONS:
        raise InputError(path, f"unsupported points file '{suffix}' (use {', '.join(POINT_EXTENSIONS)})")
    if not path.is_file():
        raise InputError(path, "no such file")
    if suffix == ".json":
        return read_points_json(path)
    if suffix == ".csv":
        return read_points_csv(path)
    return jhmdb_keypoints(read_jhmdb_joints(path)[0])


def read_points_json(path: str | os.PathLike) -> Keypoints:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(path, f"malformed JSON ({one_line(err)})") from err
    if not isinstance(data, dict) or not isinstance(data.get("points"), list):
        raise InputError(path, 'expected an object with a "points" list')
    names, coordinates = [], []
    for index, point in enumerate(data["points"]):
        if not isinstance(point, dict) or not {"name", "x", "y"} <= set(point):
            raise InputError(path, f'point {index} is not an object with "name", "x" and "y"')
        names.append(_name(path, point["name"], f"point {index}"))
        coordinates.append([_number(path, point[axis], f"point '{point['name']}' {axis}") for axis in ("x", "y")])
    edges = data.get("edges", [])
    if not isinstance(edges, list) or not all(
        isinstance(edge, list) and len(edge) == 2 and all(isinstance(end, str) for end in edge) for edge in edges
    ):
        raise InputError(path, '"edges" must be a list of [name, name] pairs')
    return _keypoints(path, names, coordinates, [tuple(edge) for edge in edges])


def read_points_csv(path: str | os.PathLike) -> Keypoints:
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(path, f"malformed CSV ({one_line(err)})") from err
    if not rows or [cell.strip().lower() for cell in rows[0]] != ["name", "x", "y"]:
        raise InputError(path, "expected the header 'name,x,y' on the first line")
    names, coordinates = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 3:
            raise InputError(path, f"line {line}: expected 3 columns (name,x,y), got {len(row)}")
        names.append(_name(path, row[0].strip(), f"line {line}"))
        coordinates.append([_number(path, _parse_float(path, cell, line), f"line {line}") for cell in row[1:]])
    return _keypoints(path, names, coordinates, [])


def read_jhmdb_joints(path: str | os.PathLike) -> np.ndarray:
    """All frames of a JHMDB ``joint_positions.mat``: (T, 15, 2) float32 0-based pixel-centre xy,
    joints in JHMDB_JOINTS order. Joints may lie outside the frame (JHMDB annotates cut-off limbs)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        content = scipy.io.loadmat(str(path))
    except _MAT_ERRORS as err:
        raise InputError(path, f"not a readable .mat file ({one_line(err)})") from err
    if "pos_img" not in content:
        raise InputError(path, "has no 'pos_img' (expected a JHMDB joint_positions.mat)")
    positions = np.asarray(content["pos_img"])
    if positions.dtype.kind not in "fiu" or positions.ndim not in (2, 3) or positions.shape[:2] != (2, len(JHMDB_JOINTS)):
        raise InputError(path, f"'pos_img' is {positions.shape} {positions.dtype}, expected 2 x 15 x frames numbers")
    if positions.ndim == 2:  # MATLAB drops a trailing singleton dimension: one frame
        positions = positions[:, :, None]
    if positions.shape[2] == 0:
        raise InputError(path, "'pos_img' has no frames")
    if not np.isfinite(positions).all():
        _, joint, frame = np.argwhere(~np.isfinite(positions))[0]
        raise InputError(path, f"'pos_img' has a NaN or infinite value ({JHMDB_JOINTS[joint]}, frame {frame + 1})")
    if np.abs(positions).max() > _FLOAT32_MAX:
        raise InputError(path, "'pos_img' has a value too large for a pixel coordinate")
    return (positions.transpose(2, 1, 0) - 1.0).astype(np.float32)


def jhmdb_keypoints(xy: np.ndarray) -> Keypoints:
    """One frame of JHMDB joints (15, 2) as Keypoints with the JHMDB skeleton."""
    index = {name: i for i, name in enumerate(JHMDB_JOINTS)}
    return Keypoints(JHMDB_JOINTS, xy, tuple((index[a], index[b]) for a, b in JHMDB_EDGES))


def check_inside(keypoints: Keypoints, height: int, width: int, path: str | os.PathLike) -> None:
    """InputError naming ``path`` and the first point outside a frame of ``height`` x ``width``."""
    x, y = keypoints.xy[:, 0], keypoints.xy[:, 1]
    outside = (x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        raise InputError(
            path,
            f"point '{keypoints.names[k]}' at x={x[k]:g}, y={y[k]:g} is outside the {width}x{height} frame "
            f"({int(outside.sum())} of {len(keypoints)} points are)",
        )


@dataclass(frozen=True)
class BadjaAnnotations:
    """BADJA joints of one sequence. frames: annotated frame indices, ascending; xy: (N, 37, 2)
    float32 pixel-centre xy at the size asked of :func:`read_badja`, NaN where not visible."""

    sequence: str
    frames: tuple[int, ...]
    xy: np.ndarray

    @property
    def visible(self) -> np.ndarray:
        """(N, 37) bool."""
        return np.isfinite(self.xy).all(axis=2)


def read_badja(path: str | os.PathLike, height: int, width: int) -> BadjaAnnotations:
    """A BADJA ``<sequence>.json`` with its joints scaled from 1920x1080 to frames of ``height`` x ``width``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(path, f"malformed JSON ({one_line(err)})") from err
    if not isinstance(entries, list) or not entries:
        raise InputError(path, "expected a non-empty list of annotated frames")
    frames, xy = zip(*(_badja_frame(path, index, entry) for index, entry in enumerate(entries)))
    if len(set(frames)) != len(frames):
        raise InputError(path, "annotates a frame twice")
    order = np.argsort(frames)
    scale = np.array([width / BADJA_SIZE[1], height / BADJA_SIZE[0]])
    scaled = (np.stack(xy)[order] + 0.5) * scale - 0.5  # pixel centres stay pixel centres
    return BadjaAnnotations(path.stem, tuple(int(frames[k]) for k in order), scaled.astype(np.float32))


def _badja_frame(path: Path, index: int, entry: object) -> tuple[int, np.ndarray]:
    """(frame index, (37, 2) full-resolution xy with NaN where not visible) of one annotated frame."""
    where = f"entry {index}"
    if not isinstance(entry, dict) or not {"image_path", "joints", "visibility"} <= set(entry):
        raise InputError(path, f'{where} is not an object with "image_path", "joints" and "visibility"')
    stem = Path(str(entry["image_path"])).stem
    if not stem.isdigit():
        raise InputError(path, f"{where}: image_path '{entry['image_path']}' does not end in a frame number")
    joints, visibility = entry["joints"], entry["visibility"]
    count = len(BADJA_JOINTS)
    if not isinstance(visibility, list) or len(visibility) != count or not all(v in (0, 1) for v in visibility):
        raise InputError(path, f"{where}: visibility must be {count} booleans")
    if not isinstance(joints, list) or len(joints) != count or not all(isinstance(j, list) and len(j) == 2 for j in joints):
        raise InputError(path, f"{where}: joints must be {count} [row, col] pairs")
    rows_cols = np.array([[_number(path, value, f"{where} joint {k}") for value in joint] for k, joint in enumerate(joints)])
    xy = rows_cols[:, ::-1].copy()
    xy[~np.array(visibility, bool)] = np.nan
    return int(stem), xy


def write_track_json(path: str | os.PathLike, track: KeypointTrack) -> None:
    """``path``: a list of frames, each a list of ``{name, x, y, confidence, visible}`` (x, y null
    where lost), written atomically."""
    atomic_write_json(path, track.to_json())


def read_track_json(path: str | os.PathLike) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`write_track_json` wrote: names, xy (T, P, 2) (NaN where lost), confidence, visible."""
    path = Path(path)
    try:
        frames = json.loads(path.read_text(encoding="utf-8"))
        names = tuple(point["name"] for point in frames[0])
        xy = np.array([[[_or_nan(p["x"]), _or_nan(p["y"])] for p in frame] for frame in frames], np.float32)
        confidence = np.array([[p["confidence"] for p in frame] for frame in frames], np.float32)
        visible = np.array([[p["visible"] for p in frame] for frame in frames], bool)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError) as err:
        raise InputError(path, f"not a keypoints.json written by colortrack ({one_line(err)})") from err
    return names, xy.reshape(len(frames), len(names), 2), confidence, visible


def _keypoints(path: Path, names: list[str], coordinates: list[list[float]], edges: list[tuple[str, str]]) -> Keypoints:
    if not names:
        raise InputError(path, "has no points")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(path, f"duplicate point name '{name}'")
        seen.add(name)
    index = {name: i for i, name in enumerate(names)}
    pairs = []
    for a, b in edges:
        for end in (a, b):
            if end not in index:
                raise InputError(path, f"edge ({a}, {b}) names an unknown point '{end}'")
        pairs.append((index[a], index[b]))
    return Keypoints(tuple(names), np.array(coordinates, np.float32), tuple(pairs))


def _name(path: Path, value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(path, f"{where}: the name must be a non-empty string")
    return value.strip()


def _number(path: Path, value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(path, f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond the float range
        raise InputError(path, f"{where}: coordinate {str(value)[:20]}... is too large") from None
    if not math.isfinite(number):
        raise InputError(path, f"{where}: coordinate is {value} (NaN or infinite)")
    if abs(number) > _FLOAT32_MAX:  # would become infinite as float32
        raise InputError(path, f"{where}: coordinate {number:g} is too large")
    return number


def _parse_float(path: Path, cell: str, line: int) -> float:
    try:
        return float(cell)
    except ValueError:
        raise InputError(path, f"line {line}: '{cell.strip()}' is not a number") from None


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


