"""Per-stage time of ``colortrack track`` and ``colortrack colorize`` on one clip, serially.

    OMP_NUM_THREADS=1 python benchmarks/profile_stages.py \
        --video ../shared/data/davis2016-train/JPEGImages/480p/hockey \
        --mask ../shared/data/davis2016-train/Annotations/480p/hockey/00000.png \
        --frames 40 --repeats 3 --out out/bench/profile

Every stage of the two jobs runs in the calling thread, one torch thread, and is timed in CPU
seconds of that thread (``time.thread_time``; decoding and H.264 writing, which run threads of
their own, in CPU seconds of the process), so that the figures hold on a loaded machine: the
stages add up and do not steal each other's core (the jobs themselves overlap decoding and
writing with computing in threads). Each stage is timed by wrapping the function the job calls (a stage
whose function a version of the code does not have is left out). A stage's figure is the median
over ``--repeats`` runs of its milliseconds per frame; indented stages are part of the stage above.
A markdown table goes to stdout and OUT/profile.md, the numbers to OUT/profile.json.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import statistics
import sys
import time
import types
from collections import defaultdict
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from colortrack.io.atomic import atomic_write_json, atomic_write_text, make_dirs
from colortrack.io.masks import LabelMap, read_mask, write_mask
from colortrack.io.overlay import overlay_masks
from colortrack.io.video import VideoReader, VideoWriter
from colortrack.models.registry import make_propagator, resolve_preset
from colortrack.tasks.masks import OVERLAY_SPEED, propagate_mask

# (stage, module, attribute): the function that a stage's time is spent in (two entries of a stage
# name: the functions of two versions of the code; the current code calls only the second). Nested stages follow their parent, indented.
TRACK_STAGES = [
    ("embed (resize + encode)", "colortrack.core.tracker", "LabelTracker.embed"),
    ("  encode", "colortrack.models.network", "ColorizationNet.encode"),
    ("memory context", "colortrack.core.memory", "ContextMemory.context"),
    ("affinity (attend)", "colortrack.core.tracker", "attend"),
    ("  pad keys", "colortrack.core.affinity", "_padded_keys"),
    ("  gather window rows", "colortrack.core.affinity", "_window_rows"),
    ("  similarities (matrix products)", "colortrack.core.affinity", "_tile_similarity"),
    ("  bf16 layouts (keys, queries, offsets)", "colortrack.core.affinity", "_CertifiedTiles.__init__"),
    ("  bf16 similarities (matrix products)", "colortrack.core.affinity", "_CertifiedTiles._windows"),
    ("  bf16 candidates (two-stage top-k + bound)", "colortrack.core.affinity", "_candidates"),
    ("  proof (k-th kept beats the bound)", "colortrack.core.affinity", "_CertifiedTiles._unproven"),
    ("  float32 window of a target without the proof", "colortrack.core.affinity", "_CertifiedTiles._whole_window"),
    ("  float32 scores of the kept + top-k", "colortrack.core.affinity", "_CertifiedTiles._rescored"),
    ("  top-k", "colortrack.core.affinity", "_topk"),
    ("  top-k", "colortrack.core.affinity", "_grouped_topk"),
    ("upsample labels to native size", "colortrack.core.tracker", "_upsample"),
    ("labels to native ids (upsample + arg-max)", "colortrack.core.tracker", "upsample_argmax"),
    ("channel -> object id", "colortrack.io.masks", "LabelMap.to_ids"),
]
COLORIZE_STAGES = [
    ("L of the frame (rgb -> Lab)", "colortrack.tasks.colorize", "lightness"),
    ("embed (resize + gray + encode)", "colortrack.tasks.colorize", "Colorizer.embed"),
    ("  encode", "colortrack.models.network", "ColorizationNet.encode"),
    ("predict ab (affinity)", "colortrack.tasks.colorize", "predict_ab"),
    ("predict ab (affinity)", "colortrack.tasks.colorize", "_Sweep.step"),
    ("  top-k", "colortrack.core.affinity", "_topk"),
    ("  top-k", "colortrack.core.affinity", "_grouped_topk"),
    ("refine", "colortrack.tasks.colorize", "refine_frames"),
    ("refine", "colortrack.models.refiner", "RefineSweep.step"),
    ("  resize L to the refiner's size", "colortrack.models.refiner", "_shrink"),
    ("  guided upsampling", "colortrack.models.refiner", "GuidedUpsample.forward"),
    ("  CNN residual", "colortrack.models.refiner", "Refiner.residual"),
    ("compose (upsample ab + Lab -> rgb)", "colortrack.tasks.colorize", "compose"),
]


class Timers:
    """Accumulated seconds per stage, from wrapped functions (generators: time spent in next())."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._undo: list = []

    def wrap(self, stage: str, module_name: str, attribute: str) -> bool:
        owner = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        original = getattr(owner, name, None) if owner is not None else None
        if original is None:
            return False
        raw = owner.__dict__[name] if isinstance(owner, type) else original
        timed = self._timed(stage, raw)
        setattr(owner, name, staticmethod(timed) if isinstance(raw, staticmethod) else timed)
        self._undo.append((owner, name, raw))
        return True

    def _timed(self, stage: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            start = time.thread_time()
            result = function(*args, **kwargs)
            self.seconds[stage] += time.thread_time() - start
            if isinstance(result, types.GeneratorType):
                return self._timed_generator(stage, result)
            return result

        return timed

    def _timed_generator(self, stage: str, generator):
        while True:
            start = time.thread_time()
            try:
                item = next(generator)
            except StopIteration:
                self.seconds[stage] += time.thread_time() - start
                return
            self.seconds[stage] += time.thread_time() - start
            yield item

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def restore(self) -> None:
        for owner, name, raw in reversed(self._undo):
            setattr(owner, name, raw)
        self._undo.clear()


def clock(timers: Timers, stage: str, function, *args):
    start = time.thread_time()
    result = function(*args)
    timers.add(stage, time.thread_time() - start)
    return result


def decode(timers: Timers, video: Path, frames: int) -> list[np.ndarray]:
    start = time.process_time()  # the decoder's own threads included
    decoded = list(islice(VideoReader(video), frames))
    timers.add("decode (JPEG/H.264 -> RGB)", time.process_time() - start)
    return decoded


def write_video(timers: Timers, stage: str, path: Path, frames: list[np.ndarray], speed: str) -> None:
    """x264 encodes in threads of its own (and finishes when closed): the process's CPU time."""
    start = time.process_time()
    with VideoWriter(path, 24.0, speed=speed) as writer:
        for frame in frames:
            writer.write(frame)
    timers.add(stage, time.process_time() - start)


def profile_track(video: Path, mask: Path, frames: int, out: Path) -> dict[str, float]:
    timers = Timers()
    decoded = decode(timers, video, frames)
    listed = list(dict.fromkeys(stage for stage, module, attribute in TRACK_STAGES if timers.wrap(stage, module, attribute)))
    try:
        tracker = make_propagator("model", resolve_preset("default"), torch.device("cpu"))
        first = read_mask(mask)
        start = time.thread_time()
        masks = list(propagate_mask(tracker, decoded, first))
        timers.add("propagate (embed .. object id below, and the arg-max)", time.thread_time() - start)
        blended = []
        for index, (frame, ids) in enumerate(zip(decoded, masks)):
            clock(timers, "write mask PNG", write_mask, out / f"{index:05d}.png", ids)
            blended.append(clock(timers, "overlay (blend + contours)", overlay_masks, frame, ids))
        write_video(timers, "write overlay H.264 (x264 threads included)", out / "overlay.mp4", blended, OVERLAY_SPEED)
    finally:
        timers.restore()
    return per_frame(timers, ["decode (JPEG/H.264 -> RGB)", "propagate (embed .. object id below, and the arg-max)", *listed], frames)


def profile_colorize(video: Path, frames: int, out: Path) -> dict[str, float]:
    from colortrack.models.refiner import SHIPPED, load_refiner
    from colortrack.core.tracker import PRESETS
    from colortrack.tasks.colorize import ColorizeConfig, Colorizer, embedder_temperature, make_embedder

    timers = Timers()
    decoded = decode(timers, video, frames)
    wrapped = [stage for stage, module, attribute in COLORIZE_STAGES if timers.wrap(stage, module, attribute)]
    listed = list(dict.fromkeys(wrapped))
    try:
        device = torch.device("cpu")
        config = ColorizeConfig.for_method(  # what `colortrack colorize` does with the shipped model
            "propagate", short_side=PRESETS["default"].short_side, temperature=embedder_temperature("model")
        )
        colorizer = Colorizer(make_embedder("model", device), config, device, load_refiner(SHIPPED, device))
        start = time.thread_time()
        colorized = list(colorizer.colorize(decoded, {0: decoded[0]}))
        timers.add("colorize (L .. compose below)", time.thread_time() - start)
        write_video(timers, "write H.264 (x264 threads included)", out / "colorized.mp4", colorized, "veryfast")
    finally:
        timers.restore()
    return per_frame(timers, ["decode (JPEG/H.264 -> RGB)", "colorize (L .. compose below)", *listed], frames)


def per_frame(timers: Timers, order: list[str], frames: int) -> dict[str, float]:
    stages = order + [stage for stage in timers.seconds if stage not in order]
    return {stage: 1000 * timers.seconds[stage] / frames for stage in stages if stage in timers.seconds}


def median_table(runs: list[dict[str, float]]) -> tuple[dict[str, float], str]:
    medians = {stage: statistics.median(run[stage] for run in runs) for stage in runs[0]}
    lines = ["| stage | ms/frame |", "|---|---:|"]
    lines += [f"| {stage.replace('  ', '&nbsp;&nbsp;')} | {ms:.1f} |" for stage, ms in medians.items()]
    return medians, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--mask", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", nargs="+", default=["track", "colorize"], choices=["track", "colorize"])
    parser.add_argument("--out", type=Path, default=Path("out/bench/profile"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    make_dirs(args.out)
    results, text = {}, []
    for job in args.jobs:
        runs = []
        for _ in range(args.repeats):
            if job == "track":
                runs.append(profile_track(args.video, args.mask, args.frames, make_dirs(args.out / "track")))
            else:
                runs.append(profile_colorize(args.video, args.frames, make_dirs(args.out / "colorize")))
        medians, table = median_table(runs)
        results[job] = {"median_ms_per_frame": medians, "runs": runs}
        text.append(f"### {job}\n\n{table}\n")
        print(text[-1], flush=True)
    atomic_write_text(args.out / "profile.md", "\n".join(text))
    atomic_write_json(args.out / "profile.json", {"args": {k: str(v) for k, v in vars(args).items()}, **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
