"""What the app hands back: DAVIS palette PNGs (zip), the overlay video, COCO-style RLE JSON and
the colourized video. Each is written atomically into the project's ``exports/`` folder."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from colortrack.app.project import Project
from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write, atomic_write_json
from colortrack.io.masks import mask_image
from colortrack.io.overlay import overlay_masks
from colortrack.io.video import VideoWriter

Advance = Callable[[int], None]


def all_masks(project: Project) -> Iterator[tuple[int, np.ndarray]]:
    """(index, (H, W) uint8 ids) of every frame; InputError at the first frame without a mask."""
    for index in range(project.num_frames):
        ids = project.mask(index)
        if ids is None:
            raise InputError(f"frame {index}", "has no mask yet: propagate first")
        yield index, ids


def export_davis(project: Project, path: Path, advance: Advance) -> Path:
    """A zip of ``%05d.png`` palette PNGs (index = object id, DAVIS palette), one per frame."""
    with atomic_write(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for index, ids in all_masks(project):
            buffer = io.BytesIO()
            mask_image(ids).save(buffer, format="PNG")
            archive.writestr(f"{index:05d}.png", buffer.getvalue())
            advance(index)
    return path


def export_overlay(project: Project, path: Path, advance: Advance) -> Path:
    """The video with every object blended in its own colour (H.264)."""
    palette = project.palette()
    masks = all_masks(project)
    with VideoWriter(path, project.reader.info.fps, speed="veryfast") as writer:
        for frame, (index, ids) in zip(project.reader, masks):
            writer.write(overlay_masks(frame, ids, palette=palette))
            advance(index)
    return path


def export_coco(project: Project, path: Path, advance: Advance) -> Path:
    """COCO-style JSON: one image per frame, one category and track per object, one annotation
    per object and frame it is visible in, its mask as uncompressed RLE (``rle_decode``)."""
    height, width = project.size
    keyframes = set(project.keyframes())
    confidence = project.confidence()
    images, annotations = [], []
    for index, ids in all_masks(project):
        images.append({"id": index + 1, "file_name": f"{index:05d}.jpg", "frame_index": index, "height": height, "width": width})
        for obj in project.objects:
            binary = ids == obj.id
            if not binary.any():
                continue
            annotation = {
                "id": len(annotations) + 1,
                "image_id": index + 1,
                "category_id": obj.id,
                "track_id": obj.id,
                "segmentation": rle_encode(binary),
                "area": int(binary.sum()),
                "bbox": bounding_box(binary),
                "iscrowd": 0,
                "source": "keyframe" if index in keyframes else "propagated",
                "confidence": 1.0 if index in keyframes else confidence.get(index),
            }
            annotations.append(annotation)
        advance(index)
    info = {"description": f"colortrack annotations of {project.video}", "video": project.video, "fps": project.reader.info.fps}
    categories = [{"id": o.id, "name": o.name, "color": o.color} for o in project.objects]
    atomic_write_json(path, {"info": info, "images": images, "categories": categories, "annotations": annotations})
    return path


def rle_encode(binary: np.ndarray) -> dict:
    """COCO uncompressed RLE of ``binary`` (H, W): run lengths in column-major order, starting
    with a (possibly empty) run of zeros."""
    flat = np.asarray(binary, bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(binary.shape[0]), int(binary.shape[1])], "counts": counts}


def rle_decode(rle: dict) -> np.ndarray:
    """(H, W) bool of a COCO uncompressed RLE."""
    height, width = rle["size"]
    values = np.arange(len(rle["counts"])) % 2 == 1
    flat = np.repeat(values, rle["counts"])
    if flat.size != height * width:
        raise ValueError(f"RLE covers {flat.size} pixels, not {height}x{width}")
    return flat.reshape((height, width), order="F")


def bounding_box(binary: np.ndarray) -> list[int]:
    """[x, y, width, height] of the True pixels of (H, W) ``binary`` (COCO's bbox)."""
    ys, xs = np.nonzero(binary)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


EXPORTS = {"davis.zip": export_davis, "overlay.mp4": export_overlay, "coco.json": export_coco}
