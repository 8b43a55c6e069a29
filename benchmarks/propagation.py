"""Speed and peak memory of end-to-end mask tracking on long 480p video, local vs dense affinity.

    python benchmarks/propagation.py --out out/bench/propagation [--frames 100 1000] \
        [--method DEFAULT] [--dense-frames 100] [--device auto]

Each case runs ``colortrack track``'s job (decode + embed + propagate + write the mask PNGs and
the overlay video) in a fresh process, in the command's environment (idle OpenMP threads sleep),
so its peak memory (resident set; on GPU also the peak of allocated CUDA memory) is its own. Cases, for every ``--frames`` count:

* ``default``: the default preset (what ``colortrack track`` does without options);
* ``quality``: the quality preset (``--preset quality``: the default on frames embedded at a short side of 360);
* ``default-global``: the default preset with the first frame searched over the whole frame
  (``--anchors global``);
* ``default-plain``: the default preset as it was before the sixth session: no fine features and no
  projection (``--fine-weight 0 --embed-dims 0``);
* ``default-full``: the default preset without the projection (``--embed-dims 0``: what points use);
* ``context20-local``: the default preset with 20 context frames (first + 19 recent);
* ``context20-dense``: the same, with the affinity computed densely over every reference pixel
  and then masked to the window (how published trackers do it), for ``--dense-frames`` counts only
  (it is slow on CPU).

The video is synthetic (854x480, textured objects over a panning background, looped) and written
once to OUT. A markdown table goes to stdout and OUT/summary.md, the numbers to OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from colortrack.cli.main import sleeping_idle_threads
from colortrack.core.affinity import attend_dense
from colortrack.io.atomic import atomic_write_json, atomic_write_text, make_dirs
from colortrack.io.masks import write_mask
from colortrack.io.video import VideoWriter
from colortrack.models.registry import DEFAULT_METHOD, make_propagator, resolve_preset
from colortrack.tasks.masks import track_video
from colortrack.demo.synthetic import make_video
from colortrack.core.tracker import pick_device

HEIGHT, WIDTH, LOOP = 480, 854, 48


def write_bench_video(out: Path, num_frames: int) -> tuple[Path, Path]:
    """OUT/video_N.mp4 (a 48-frame synthetic clip played forward and back) and OUT/mask.png."""
    video_path, mask_path = out / f"video_{num_frames}.mp4", out / "mask.png"
    clip = make_video(LOOP, HEIGHT, WIDTH, num_objects=2, seed=0, pan=(0.0, 2.0), cross=False)
    if not mask_path.exists():
        write_mask(mask_path, clip.masks[0])
    if not video_path.exists():
        order = np.concatenate([np.arange(LOOP), np.arange(LOOP - 2, 0, -1)])
        partial = video_path.with_suffix(".partial.mp4")
        with VideoWriter(partial, 24.0) as writer:
            for index in range(num_frames):
                writer.write(clip.frames[order[index % len(order)]])
        partial.rename(video_path)
    return video_path, mask_path


def run_case(case: dict) -> dict:
    """Runs in the worker process: one tracking job, its timing and peak memory."""
    device = pick_device(case["device"])
    config = resolve_preset(case.get("preset", "default"))
    if case["recent"] is not None:
        config = replace(config, memory=replace(config.memory, recent=case["recent"]))
    if case.get("anchors"):
        config = replace(config, memory=replace(config.memory, global_anchors=case["anchors"] == "global"))
    if case.get("plain") or case.get("full"):
        config = replace(config, fine_weight=0.0 if case.get("plain") else config.fine_weight, embed_dims=None)
    if case["dense"]:
        import colortrack.core.tracker as tracker_module

        tracker_module.attend = attend_dense
    start = time.perf_counter()
    propagator = make_propagator(case["method"], config, device)
    loaded = time.perf_counter()
    out_dir = Path(case["out"]) / f"{case['name']}-{case['frames']}"
    result = track_video(Path(case["video"]), Path(case["mask"]), out_dir, propagator,
                         {"benchmark": case, "track": config.to_dict()}, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - loaded
    return {
        **case,
        "config": config.to_dict(),
        "load_seconds": loaded - start,
        "seconds": seconds,
        "fps": result.num_frames / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
    }


def spawn(case: dict) -> dict:
    command = [sys.executable, __file__, "--worker", json.dumps(case)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"case {case['name']} ({case['frames']} frames) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = ["| case | frames | context | affinity | fps | s/frame | peak RSS MiB | peak CUDA MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        memory = row["config"]["memory"]
        context = int(memory["keep_first"]) + memory["recent"]
        cuda = "n/a" if row["peak_cuda_mib"] is None else f"{row['peak_cuda_mib']:.0f}"
        lines.append(f"| {row['name']} | {row['frames']} | {context} | {'dense' if row['dense'] else 'local'} "
                     f"| {row['fps']:.2f} | {1 / row['fps']:.3f} | {row['peak_rss_mib']:.0f} | {cuda} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench/propagation"))
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--dense-frames", type=int, nargs="*", default=[100])
    parser.add_argument("--method", default=DEFAULT_METHOD)
    parser.add_argument("--cases", nargs="+", default=["default", "context20-local", "context20-dense"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_case(json.loads(args.worker))))
        return 0
    make_dirs(args.out)
    sleeping_idle_threads()  # the workers run as `colortrack track` does
    rows = []
    for frames in args.frames:
        video, mask = write_bench_video(args.out, frames)
        for name in args.cases:
            dense = name.endswith("dense")
            if dense and frames not in args.dense_frames:
                continue
            case = {"name": name, "frames": frames, "video": str(video), "mask": str(mask), "out": str(args.out),
                    "method": args.method, "device": args.device, "dense": dense,
                    "recent": 19 if name.startswith("context20") else None,
                    "preset": "quality" if name == "quality" else "default",
                    "anchors": "global" if name.endswith("-global") else None,
                    "plain": name.endswith("-plain"), "full": name.endswith("-full")}
            rows.append(spawn(case))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    markdown = table(rows)
    print(markdown)
    machine = {"platform": platform.platform(), "processor": platform.processor(), "threads": torch.get_num_threads(),
               "device": str(pick_device(args.device))}
    atomic_write_text(args.out / "summary.md", markdown + "\n")
    atomic_write_json(args.out / "summary.json", {"machine": machine, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
