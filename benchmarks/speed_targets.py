"""The speed targets of issue 20, end to end, in about 3 minutes on an idle 2-core CPU.

    python benchmarks/speed_targets.py --davis ../shared/data/davis2016-train --out out/bench/speed-targets

Every case is a fresh process, timed on the wall clock (start-up included where the target says
so), as a user would see it:

* ``help``: ``colortrack --help``, the median of 3 runs (target < 0.5 s);
* ``track``: ``colortrack track`` on the 75-frame 854x480 DAVIS clip ``hockey`` from its first
  mask, default settings (masks + overlay), start-up included (target >= 8 fps);
* ``colorize``: ``colortrack colorize`` of the same clip from its first frame, default settings
  (refined), start-up included (target >= 6 fps);
* ``propagation-N``: ``benchmarks/propagation.py``'s ``default`` case on its synthetic 854x480
  video of N frames (decode + embed + propagate + write, after the model is loaded; target
  >= 10 fps), for N = 100 and 1000: its peak resident memory is the flat-memory target (the 1000-frame
  peak within 10 % of the 100-frame one).

The load average of the machine before and after is recorded: figures from a loaded machine are
upper bounds of the time. A markdown table goes to stdout and OUT/summary.md, the numbers to
OUT/summary.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from propagation import spawn, write_bench_video  # noqa: E402

from colortrack.io.atomic import atomic_write_json, atomic_write_text, make_dirs  # noqa: E402

SEQUENCE, CLIP_FRAMES = "hockey", 75
FLAT_MEMORY = 0.10


def run_timed(command: list[str]) -> tuple[float, float]:
    """Runs ``command``; returns (wall seconds, peak resident MiB of that process)."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(map(str, command))} failed:\n{errors.read().decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def colortrack(*args: str) -> list[str]:
    return [sys.executable, "-m", "colortrack", *map(str, args)]


def measure_cli(davis: Path, out: Path) -> list[dict]:
    frames = davis / "JPEGImages" / "480p" / SEQUENCE
    if not frames.is_dir():
        raise SystemExit(f"{frames}: not found (--davis must be a DAVIS-2016 folder holding {SEQUENCE})")
    first_mask = davis / "Annotations" / "480p" / SEQUENCE / "00000.png"
    help_runs = [run_timed(colortrack("--help"))[0] for _ in range(3)]
    rows = [{"case": "help", "target": "< 0.5 s", "seconds": statistics.median(help_runs), "runs": help_runs,
             "met": statistics.median(help_runs) < 0.5}]
    shutil.rmtree(out / "track", ignore_errors=True)
    seconds, peak = run_timed(colortrack("track", frames, "--mask", first_mask, "--out", out / "track", "--quiet"))
    rows.append(fps_row("track", ">= 8 fps", seconds, CLIP_FRAMES, peak, 8.0))
    seconds, peak = run_timed(
        colortrack("colorize", frames, "--ref", frames / "00000.jpg", "--out", out / "colorize.mp4", "--quiet")
    )
    rows.append(fps_row("colorize", ">= 6 fps", seconds, CLIP_FRAMES, peak, 6.0))
    return rows


def fps_row(case: str, target: str, seconds: float, frames: int, peak_mib: float, minimum: float) -> dict:
    return {"case": case, "target": target, "seconds": seconds, "frames": frames, "fps": frames / seconds,
            "peak_rss_mib": peak_mib, "met": frames / seconds >= minimum}


def measure_propagation(out: Path, lengths: list[int]) -> list[dict]:
    rows = []
    for frames in lengths:
        video, mask = write_bench_video(out, frames)
        case = {"name": "default", "frames": frames, "video": str(video), "mask": str(mask), "out": str(out),
                "method": "model", "device": "cpu", "dense": False, "recent": None}
        result = spawn(case)
        rows.append({**fps_row(f"propagation-{frames}", ">= 10 fps", result["seconds"], frames,
                               result["peak_rss_mib"], 10.0), "load_seconds": result["load_seconds"]})
    peaks = [row["peak_rss_mib"] for row in rows]
    rows.append({"case": "memory", "target": f"peak RSS +{FLAT_MEMORY:.0%} at most from {lengths[0]} to {lengths[-1]} frames",
                 "growth": peaks[-1] / peaks[0] - 1, "met": peaks[-1] <= peaks[0] * (1 + FLAT_MEMORY)})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| case | target | wall s | fps | peak RSS MiB | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        seconds = f"{row['seconds']:.2f}" if "seconds" in row else ""
        fps = f"{row['fps']:.2f}" if "fps" in row else ""
        peak = f"{row['peak_rss_mib']:.0f}" if "peak_rss_mib" in row else f"{row['growth']:+.1%}" if "growth" in row else ""
        lines.append(f"| {row['case']} | {row['target']} | {seconds} | {fps} | {peak} | {'yes' if row['met'] else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--davis", type=Path, default=Path("../shared/data/davis2016-train"))
    parser.add_argument("--out", type=Path, default=Path("out/bench/speed-targets"))
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000], help="propagation video lengths")
    args = parser.parse_args(argv)
    make_dirs(args.out)
    load_before = os.getloadavg()
    rows = measure_cli(args.davis, args.out) + measure_propagation(args.out, args.frames)
    load_after = os.getloadavg()
    markdown = table(rows)
    note = f"load average (1, 5, 15 min) before {load_before}, after {load_after}; {os.cpu_count()} CPUs"
    print(f"{markdown}\n\n{note}")
    atomic_write_text(args.out / "summary.md", f"{markdown}\n\n{note}\n")
    atomic_write_json(args.out / "summary.json", {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                      "load_before": load_before, "load_after": load_after}, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
