"""Batch ``eval davis``: wall time with 1 process against --workers N, and the same results.json.

Runs ``colortrack eval davis`` once as one process (torch threads = cores) and once with
``--workers N`` (torch threads = cores / N per process), into fresh folders, timing each from
start to results.json; then checks that the two results.json files agree apart from timing fields.
Prints a markdown table (with the load average before each run) and writes JSON to --out.

    python benchmarks/batch_eval.py --root ../shared/data/davis2016-train \
        --sequences dog-agility,rollerblade,motorbike,surf --method model --workers 2 \
        --work out/bench/batch --out out/bench/batch_eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from colortrack.io.atomic import atomic_write_json
from colortrack.scale.share import without_timing


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--sequences", required=True)
    parser.add_argument("--method", default="model")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, required=True, help="folder for the two eval folders (emptied)")
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    return parser.parse_args(argv)


def timed_eval(args: argparse.Namespace, out: Path, workers: int | None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "colortrack", "eval", "davis", "--root", str(args.root), "--sequences",
               args.sequences, "--method", args.method, "--out", str(out), "--quiet"]
    if workers:
        command += ["--workers", str(workers)]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    results = json.loads((out / "results.json").read_text())
    return {"workers": workers or 1, "seconds": seconds, "load_before": load, "J&F": results["J&F"], "results": results}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = [timed_eval(args, args.work / "one", None), timed_eval(args, args.work / f"workers-{args.workers}", args.workers)]
    same = without_timing(runs[0]["results"]) == without_timing(runs[1]["results"])
    cores = os.cpu_count()
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    lines = [f"`{command}`", "", f"{cores} cores; results.json equal apart from timing: {same}", "",
             "| processes | torch threads each | wall time (s) | load average before | J&F |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['workers']} | {max(1, cores // r['workers'])} | {r['seconds']:.1f} | {r['load_before']:.1f} "
              f"| {r['J&F']:.1f} |" for r in runs]
    print("\n".join(lines))
    atomic_write_json(args.out, {"command": command, "cores": cores, "same_results": same,
                                 "runs": [{k: v for k, v in r.items() if k != "results"} for r in runs]})
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
