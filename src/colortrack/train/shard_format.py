"""The settings and file names of a sharded corpus (:mod:`colortrack.train.shards`), without
its heavy imports: the command line builds its parser from them."""

from __future__ import annotations

from dataclasses import dataclass

INDEX = "index.json"
FORMAT_VERSION = 1
IMAGE_FORMATS = ("jpg", "png")


@dataclass(frozen=True)
class ShardConfig:
    """How a corpus is cut into shards; saved as ``config.json`` with the sources' fingerprints."""

    short_side: int = 240
    fps: float = 6.0
    chunk_frames: int = 32
    videos_per_shard: int = 8
    image_format: str = "jpg"
    jpeg_quality: int = 95
