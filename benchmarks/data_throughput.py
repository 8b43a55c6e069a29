"""Training data: the frame cache (.npy) against a sharded corpus (tar of JPEG/PNG frames).

Prepares both from the same videos (timed: the cache in one process, the shards with
--prep-workers processes), then times, in one process with one torch thread (as a loader worker
runs): reading a clip's frames alone (for the cache a lazy memory-map view: only whole clips
compare the sources), and whole clips of ClipDataset (read, crop, Lab, quantize). The sources are timed in turn, --rounds times, and the
median is kept (the machine may be shared). Prints a markdown table and writes JSON to --out.

    python benchmarks/data_throughput.py --data ../shared/data/videos-256p --videos 16 \
        --work out/bench/data --out out/bench/data_throughput.json
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from colortrack.io.atomic import atomic_write_json
from colortrack.train.data import ClipConfig, ClipDataset, find_videos, prepare_cache
from colortrack.train.shard_format import ShardConfig
from colortrack.train.shards import ShardReader, prepare_shards


@dataclass(frozen=True)
class Row:
    source: str
    prepare_s: float
    disk_mb: float
    reads_per_s: float
    clips_per_s: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", type=Path, required=True, help="video folders")
    parser.add_argument("--videos", type=int, default=16, help="first N videos found (0: all)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the cache and the shards")
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    parser.add_argument("--clips", type=int, default=64, help="clips timed per source")
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--prep-workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args(argv)


def disk_mb(folder: Path, suffix: str) -> float:
    return sum(path.stat().st_size for path in folder.glob(f"*{suffix}")) / 2**20


def clips_per_s(dataset: ClipDataset, clips: int) -> float:
    start = time.perf_counter()
    for index in range(1, clips + 1):
        dataset[index]
    return clips / (time.perf_counter() - start)


def reads_per_s(dataset: ClipDataset, clips: int) -> float:
    """Clips per second of reading the frames only (the same clips as clips_per_s)."""
    start = time.perf_counter()
    for index in range(1, clips + 1):
        dataset._frames(np.random.default_rng([dataset.seed, index]))
    return clips / (time.perf_counter() - start)


def median_rates(datasets: list[ClipDataset], clips: int, rounds: int) -> list[tuple[float, float]]:
    """(reads/s, clips/s) of each dataset: medians over rounds, the datasets timed in turn."""
    for dataset in datasets:
        dataset[0]
    samples = [[(reads_per_s(d, clips), clips_per_s(d, clips)) for d in datasets] for _ in range(rounds)]
    return [tuple(float(np.median([round_[i][k] for round_ in samples])) for k in (0, 1)) for i in range(len(datasets))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sources = find_videos(args.data)[: args.videos or None]
    clip = ClipConfig(crop_size=args.crop_size, scale_jitter=(0.8, 1.25), stride=4)
    centers = torch.randn(16, 2) * 20
    torch.set_num_threads(1)
    names, preparations, sizes, datasets = [], [], [], []
    start = time.perf_counter()
    cached = prepare_cache(sources, args.work / "cache", short_side=240, fps=6.0, min_frames=4)
    names.append("cache (.npy, memory-mapped)")
    preparations.append(time.perf_counter() - start)
    sizes.append(disk_mb(args.work / "cache", ".npy"))
    datasets.append(ClipDataset(cached, centers, clip, seed=0))
    for image_format in ("jpg", "png"):
        folder = args.work / f"shards-{image_format}"
        start = time.perf_counter()
        prepare_shards(sources, folder, ShardConfig(image_format=image_format), args.prep_workers, progress=False)
        names.append(f"shards ({image_format}, {args.prep_workers} preparing processes)")
        preparations.append(time.perf_counter() - start)
        sizes.append(disk_mb(folder, ".tar"))
        reader = ShardReader(str(folder))
        datasets.append(ClipDataset(reader.videos(4), centers, clip, seed=0, frames_of=reader))
    rates = median_rates(datasets, args.clips, args.rounds)
    rows = [Row(*fields, *rate) for *fields, rate in zip(names, preparations, sizes, rates)]
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    frames = sum(video.num_frames for video in cached)
    lines = [f"`{command}`", "", f"{len(sources)} videos, {frames} frames at 240p 6 fps, crop {args.crop_size}, "
             f"one torch thread, median of {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}", "",
             "| source | prepare (s) | disk (MB) | frame reads (clips/s) | whole clips (clips/s) |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r.source} | {r.prepare_s:.1f} | {r.disk_mb:.0f} | {r.reads_per_s:.0f} | {r.clips_per_s:.1f} |" for r in rows]
    print("\n".join(lines))
    atomic_write_json(args.out, {"command": command, "videos": len(sources), "frames": frames,
                                 "load_average": os.getloadavg()[0], "rows": [asdict(r) for r in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
