"""J&F gained per added keyframe on a DAVIS root: the first frame only, the first + the middle
frame, the first + every 20th frame, for several methods in one run.

    OMP_NUM_THREADS=1 python benchmarks/keyframes_davis.py --root ../shared/data/davis2016-train \
        --out out/keyframes [--methods model identity flow] [--sequences a,b] [--every 20] \
        [--fine-weight W] [--embed-dims N]

Keyframes are propagated by :func:`colortrack.tasks.keyframes.propagate_keyframe_masks` (each
method's default preset; ``--fine-weight`` / ``--embed-dims`` override it for learned methods). Every setting is scored on the same frames: 1 .. T-2 of each sequence
without any frame that is a keyframe in one of the settings. Sequences go one at a time, every
method and setting on each (report sequences first), and each result is saved as it comes
(``OUT/<method>/<setting>/<sequence>.json``), so an interrupted run resumes and a partial run
covers a subset of sequences for every row. Writes ``OUT/summary.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from colortrack.core.tracker import pick_device
from colortrack.eval.metrics.davis import ObjectScores, evaluate_sequence, summarize
from colortrack.eval.protocol import REPORT_SEQUENCES, TUNING_SEQUENCES
from colortrack.io.atomic import atomic_write_json
from colortrack.io.davis import DavisDataset
from colortrack.models.registry import TRAINING_FREE_METHODS, make_propagator, track_config
from colortrack.tasks.keyframes import propagate_keyframe_masks


def keyframe_settings(num_frames: int, every: int) -> dict[str, list[int]]:
    return {
        "first": [0],
        "first+middle": [0, num_frames // 2],
        f"first+every {every}th": list(range(0, num_frames, every)),
    }


def scored_frames(num_frames: int, settings: dict[str, list[int]]) -> list[int]:
    given = set().union(*settings.values())
    return [t for t in range(1, num_frames - 1) if t not in given]


def run_one(propagator, frames: np.ndarray, masks: np.ndarray, keyframes: list[int], scored: list[int], name: str) -> dict:
    start = time.perf_counter()
    predicted = np.stack(list(propagate_keyframe_masks(propagator, frames, {t: masks[t] for t in keyframes})))
    seconds = time.perf_counter() - start
    rows = [0, *scored]
    scores = evaluate_sequence(name, predicted[rows], masks[rows], frames=rows, num_frames=len(frames))
    objects = [{"object": s.object_id, "J": s.J.tolist(), "F": s.F.tolist()} for s in scores]
    return {"objects": objects, "seconds": seconds, "frames": len(frames)}


def summary_rows(out: Path, methods: list[str], setting_names: list[str], names: list[str]) -> list[dict]:
    rows = []
    for method in methods:
        for setting in setting_names:
            records = {name: out / method / _slug(setting) / f"{name}.json" for name in names}
            done = {name: json.loads(path.read_text()) for name, path in records.items() if path.is_file()}
            scores = [
                ObjectScores(name, o["object"], np.asarray(o["J"]), np.asarray(o["F"]))
                for name, record in done.items()
                for o in record["objects"]
            ]
            if not scores:
                continue
            summary = summarize(scores)
            seconds = sum(r["seconds"] for r in done.values()) / sum(r["frames"] for r in done.values())
            rows.append(
                {"method": method, "keyframes": setting, "sequences": sorted(done), "J&F": summary.JF_mean,
                 "J": summary.J_mean, "F": summary.F_mean, "s/frame": seconds}
            )
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| method | keyframes | J&F | J | F | s/frame | sequences |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['keyframes']} | {r['J&F']:.1f} | {r['J']:.1f} | {r['F']:.1f} | "
            f"{r['s/frame']:.3f} | {len(r['sequences'])} |"
        )
    return "\n".join(lines)


def _slug(setting: str) -> str:
    return setting.replace(" ", "-").replace("+", "_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--methods", nargs="+", default=["model", "identity", "flow"])
    parser.add_argument("--sequences", default=None, help="comma-separated (default: report then tuning sequences)")
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--fine-weight", type=float, help="learned methods' fine-feature weight (default: the preset's)")
    parser.add_argument("--embed-dims", type=int, help="learned methods' mask projection (default: the preset's; 0: none)")
    args = parser.parse_args()
    names = args.sequences.split(",") if args.sequences else [*REPORT_SEQUENCES, *TUNING_SEQUENCES]
    dataset = DavisDataset(args.root, sequences=names)
    device = pick_device()
    learned = {"fine_weight": args.fine_weight, "embed_dims": args.embed_dims}
    configs = {m: track_config(None, m, **({} if m in TRAINING_FREE_METHODS else learned)) for m in args.methods}
    propagators = {m: make_propagator(m, configs[m], device) for m in args.methods}
    setting_names = list(keyframe_settings(100, args.every))
    for sequence in dataset:
        frames, masks = sequence.read_frames(), sequence.read_masks()
        settings = keyframe_settings(len(frames), args.every)
        scored = scored_frames(len(frames), settings)
        for method, propagator in propagators.items():
            for setting, keyframes in settings.items():
                path = args.out / method / _slug(setting) / f"{sequence.name}.json"
                if not path.is_file():
                    atomic_write_json(path, run_one(propagator, frames, masks, keyframes, scored, sequence.name))
        print(f"{sequence.name}: done", flush=True)
    rows = summary_rows(args.out, args.methods, setting_names, names)
    atomic_write_json(args.out / "summary.json", {"rows": rows, "every": args.every})
    print(table(rows))


if __name__ == "__main__":
    main()
