"""A sharded training corpus: plain tar files of pre-cut, pre-resized clips, read over fsspec.

``colortrack shards`` decodes every video once, as the frame cache does (short side
``short_side``, ``fps`` frames per second), cuts it into chunks of about ``chunk_frames``
frames and writes the chunks of ``videos_per_shard`` videos into one ``shard-NNNNNN.tar``: one
image member per frame (``<chunk>/<t>.jpg`` or ``.png``), readable with any tar tool. Beside
each shard, ``shard-NNNNNN.json`` lists its chunks with the byte range of every frame inside the
tar; ``index.json`` gathers them all. Shards are prepared by parallel processes, each written
atomically (tar first, then its list), so an interrupted preparation continues where it stopped.

Training reads the index once, then only the frames a clip needs, by byte range
(``fsspec`` ``cat_file``: a local or shared folder, or any URL fsspec reads, e.g. ``http://``,
``s3://`` with its package installed). A chunk plays the part of a cached video in
:class:`colortrack.train.data.ClipDataset`, so a clip is still a pure function of (seed, global
sample index), whatever the number of ranks, loader workers or machines, and a resumed run is
exact. Clips never span two chunks: (clip_frames - 1) / chunk_frames of the start positions
of the cache are not drawn.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write, atomic_write_json
from colortrack.io.runs import RunFolder, input_fingerprint
from colortrack.train.data import CachedVideo, decode_video
from colortrack.train.shard_format import FORMAT_VERSION, IMAGE_FORMATS, INDEX, ShardConfig


# ----------------------------------------------------------------------------------- writing
def prepare_shards(
    sources: Sequence[Path], out_dir: str | os.PathLike, config: ShardConfig, workers: int = 1, progress: bool = True
) -> dict:
    """Write the shards of ``sources`` (sorted video files / frame folders) missing from
    ``out_dir``, then ``index.json``; returns the index. ``workers`` processes write shards in
    parallel. Unreadable or too short videos are skipped with a warning (listed in the index)."""
    if config.image_format not in IMAGE_FORMATS:
        raise InputError("--format", f"must be one of {', '.join(IMAGE_FORMATS)}")
    if config.chunk_frames < 2 or config.videos_per_shard < 1:
        raise InputError("--chunk-frames", "chunks need 2 frames or more and shards one video or more")
    folder = Path(out_dir)
    fingerprints = [input_fingerprint(source) for source in sources]
    RunFolder.open(folder, {**asdict(config), "format": FORMAT_VERSION, "sources": fingerprints}).claim()
    groups = [list(sources[start : start + config.videos_per_shard]) for start in range(0, len(sources), config.videos_per_shard)]
    tasks = [(folder, number, group, config) for number, group in enumerate(groups) if not _listing(folder, number).is_file()]
    bar = tqdm(total=len(groups), initial=len(groups) - len(tasks), desc="shards", unit="shard", disable=not progress)
    if workers > 1 and len(tasks) > 1:
        with multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)), initializer=_one_thread) as pool:
            for _ in pool.imap_unordered(_write_shard_task, tasks):
                bar.update(1)
    else:
        for task in tasks:
            _write_shard_task(task)
            bar.update(1)
    bar.close()
    listings = [json.loads(_listing(folder, number).read_text()) for number in range(len(groups))]
    for problem in (problem for listing in listings for problem in listing["problems"]):
        tqdm.write(f"warning: {problem['source']}: {problem['problem']}; skipped", file=sys.stderr)
    index = {"version": FORMAT_VERSION, "config": asdict(config), "shards": listings}
    atomic_write_json(folder / INDEX, index)
    return index


def _one_thread() -> None:
    cv2.setNumThreads(1)


def _listing(folder: Path, number: int) -> Path:
    return folder / f"shard-{number:06d}.json"


def _write_shard_task(task: tuple) -> None:
    write_shard(*task)


def write_shard(folder: Path, number: int, sources: list[Path], config: ShardConfig) -> dict:
    """Decode ``sources``, write ``shard-NNNNNN.tar`` and then its listing; returns the listing."""
    name = f"shard-{number:06d}.tar"
    chunks, problems = [], []
    with atomic_write(folder / name) as temporary:
        with tarfile.open(temporary, "w", format=tarfile.USTAR_FORMAT) as tar:
            for source in sources:
                try:
                    frames = decode_video(source, config.short_side, config.fps)
                except InputError as err:
                    problems.append({"source": str(source), "problem": err.problem})
                    continue
                for part, piece in enumerate(cut_chunks(len(frames), config.chunk_frames)):
                    key = f"{number:06d}-{len(chunks):04d}"
                    ranges = [_add_frame(tar, f"{key}/{t:04d}.{config.image_format}", frame, config) for t, frame in
                              enumerate(frames[piece])]
                    chunks.append({"key": key, "source": str(source), "part": part, "frames": ranges,
                                   "height": int(frames.shape[1]), "width": int(frames.shape[2])})
    listing = {"file": name, "chunks": chunks, "problems": problems}
    atomic_write_json(_listing(folder, number), listing)
    return listing


def cut_chunks(num_frames: int, chunk_frames: int) -> list[slice]:
    """Consecutive pieces of ``chunk_frames`` frames; a last piece shorter than half a chunk is
    joined to the one before it."""
    starts = list(range(0, num_frames, chunk_frames))
    if len(starts) > 1 and num_frames - starts[-1] < chunk_frames / 2:
        starts.pop()
    return [slice(start, end) for start, end in zip(starts, [*starts[1:], num_frames])]


def _add_frame(tar: tarfile.TarFile, member: str, frame: np.ndarray, config: ShardConfig) -> list[int]:
    """Add one RGB frame as an image member; returns its [offset, size] inside the tar."""
    params = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality] if config.image_format == "jpg" else []
    ok, encoded = cv2.imencode(f".{config.image_format}", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise InputError(member, "cannot encode the frame")
    data = encoded.tobytes()
    info = tarfile.TarInfo(member)
    info.size = len(data)
    start = tar.offset + len(info.tobuf(tar.format, tar.encoding, tar.errors))
    tar.addfile(info, io.BytesIO(data))
    return [start, len(data)]


# ----------------------------------------------------------------------------------- reading
class ShardReader:
    """The frames of the chunks of a sharded corpus at ``url`` (a folder or an fsspec URL).

    Picklable (DataLoader workers get a copy; each opens its own file system handle)."""

    def __init__(self, url: str):
        self.url = str(url).rstrip("/")
        self._fs = None
        fs = self.fs
        try:
            index = json.loads(fs.cat_file(f"{self.root}/{INDEX}"))
        except (OSError, ValueError) as err:
            raise InputError(f"{self.url}/{INDEX}", f"cannot read the shard index ({err}); run colortrack shards first") from err
        if index.get("version") != FORMAT_VERSION:
            raise InputError(f"{self.url}/{INDEX}", f"shard format {index.get('version')}, this version reads {FORMAT_VERSION}")
        self.config = ShardConfig(**index["config"])
        self.chunks = {chunk["key"]: (listing["file"], chunk) for listing in index["shards"] for chunk in listing["chunks"]}

    @property
    def fs(self):
        if self._fs is None:
            import fsspec

            self._fs, self.root = fsspec.core.url_to_fs(self.url)
        return self._fs

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fs": None}

    def videos(self, min_frames: int) -> list[CachedVideo]:
        """Every chunk of ``min_frames`` frames or more, in index order, as a cached video whose
        ``file`` is the chunk's key (for :class:`ClipDataset` with ``frames_of=reader``)."""
        videos = [
            CachedVideo(chunk["source"], key, len(chunk["frames"]), chunk["height"], chunk["width"])
            for key, (_, chunk) in self.chunks.items()
        ]
        usable = [video for video in videos if video.num_frames >= min_frames]
        if not usable:
            raise InputError(self.url, f"no chunk has the {min_frames} frames a clip needs")
        return usable

    def __call__(self, key: str) -> ChunkFrames:
        file, chunk = self.chunks[key]
        return ChunkFrames(self, f"{self.root}/{file}", chunk["frames"])

    def read(self, path: str, offset: int, size: int) -> np.ndarray:
        data = self.fs.cat_file(path, start=offset, end=offset + size)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(path, f"cannot decode the frame at byte {offset}")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ChunkFrames:
    """A chunk's frames, decoded when indexed: ``chunk[i]`` (H, W, 3) and ``chunk[a:b:s]``
    (T, H, W, 3) uint8, like the memory-mapped array of a cached video."""

    def __init__(self, reader: ShardReader, path: str, ranges: list[list[int]]):
        self.reader, self.path, self.ranges = reader, path, ranges

    def __len__(self) -> int:
        return len(self.ranges)

    def __getitem__(self, index: int | slice) -> np.ndarray:
        if isinstance(index, slice):
            return np.stack([self[i] for i in range(*index.indices(len(self)))])
        return self.reader.read(self.path, *self.ranges[index])
