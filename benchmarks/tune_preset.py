"""J&F of one embedder over a grid of inference settings; each frame is embedded once per input height.

    python benchmarks/tune_preset.py --root ../shared/data/davis2016-train --method RUN_DIR/ckpt \
        --grid temperature=0.02,0.1 topk=5,10 radius=8,12 recent=3,7 short_side=240 flip=false,true \
               extra_short_sides=none,360,360+480 \
        [--base default] [--sequences a,b] [--out out/tune]

Every combination of the grid values is run (keys: temperature, topk, radius, recent,
keep_first, short_side, precision, flip, extra_short_sides; ``none`` lifts topk or radius). Settings not in the grid come from
``--base``. The propagation is the library's ``LabelTracker`` and the scores are
``colortrack eval davis``'s, so a row here equals that command with the same flags (which the
table prints). Results are appended to ``OUT/tune.jsonl`` as they finish, and rows already there
are not run again.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from colortrack.io.atomic import make_dirs
from colortrack.io.davis import DavisDataset
from colortrack.models.registry import make_propagator, resolve_preset
from colortrack.core.precision import autocast
from colortrack.eval.metrics.davis import evaluate_sequence, summarize
from colortrack.tasks.masks import propagate_mask
from colortrack.core.tracker import LabelTracker, TrackConfig, pick_device

AFFINITY_KEYS = ("temperature", "topk", "radius")
MEMORY_KEYS = ("recent", "keep_first")
FLAGS = {"temperature": "--temperature", "topk": "--topk", "radius": "--radius", "recent": "--recent",
         "keep_first": "--first-frame", "short_side": "--short-side", "precision": "--precision",
         "flip": "--flip", "extra_short_sides": "--extra-short-sides"}


class CachedEmbedder:
    """Wraps an embedder; a frame seen before (same pixels, same precision) is not embedded again.
    Applies the tracker's autocast itself, as the tracker only does so for an ``nn.Module``."""

    def __init__(self, embedder, device: torch.device):
        self.embedder = embedder
        self.stride = embedder.stride
        self.device = device
        self.precision = "fp32"
        self.cache: dict[bytes, Tensor] = {}

    def encode(self, frames: Tensor) -> Tensor:
        digest = hashlib.blake2b(frames.cpu().numpy().tobytes(), digest_size=16).digest()
        key = digest + f"{tuple(frames.shape)}{self.precision}".encode()
        if key not in self.cache:
            if isinstance(self.embedder, torch.nn.Module):
                with autocast(self.precision, self.device):
                    self.cache[key] = self.embedder.encode(frames).float()
            else:
                self.cache[key] = self.embedder.encode(frames)
        return self.cache[key]


def parse_value(text: str):
    lowered = text.lower()
    if lowered == "none":
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    return float(text) if any(c in text for c in ".e") else int(text)


def parse_sides(text: str) -> tuple[int, ...]:
    """``none`` or ``360+480`` -> the extra short sides."""
    return () if text.lower() == "none" else tuple(int(side) for side in text.split("+"))


def parse_grid(items: list[str]) -> list[dict]:
    keys, values = [], []
    for item in items:
        key, _, listed = item.partition("=")
        if key not in FLAGS:
            raise SystemExit(f"unknown grid key {key!r}: choose {', '.join(FLAGS)}")
        keys.append(key)
        parse = parse_sides if key == "extra_short_sides" else parse_value
        values.append([parse(v) for v in listed.split(",")])
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def apply(base: TrackConfig, setting: dict) -> TrackConfig:
    affinity = replace(base.affinity, **{k: v for k, v in setting.items() if k in AFFINITY_KEYS})
    memory = replace(base.memory, **{k: v for k, v in setting.items() if k in MEMORY_KEYS})
    height = setting.get("short_side", base.short_side)
    precision = setting.get("precision", base.precision)
    fusion = {key: setting[key] for key in ("flip", "extra_short_sides") if key in setting}
    return replace(base, affinity=affinity, memory=memory, short_side=height, precision=precision, **fusion)


def command_flags(setting: dict) -> str:
    parts = []
    for key, value in setting.items():
        if key == "keep_first":
            parts.append("--first-frame " + ("keep" if value else "drop"))
        elif key == "flip":
            parts.append("--flip " + ("on" if value else "off"))
        elif key == "extra_short_sides":
            parts.append(" ".join(["--extra-short-sides", *map(str, value)]))
        else:
            parts.append(f"{FLAGS[key]} {0 if value is None else value}")
    return " ".join(parts)


def score(tracker: LabelTracker, dataset: DavisDataset, frames: dict[str, np.ndarray]) -> dict:
    scores, count, start = [], 0, time.perf_counter()
    for sequence in dataset.sequences:
        predictions = np.stack(list(propagate_mask(tracker, frames[sequence.name], sequence.first_mask())))
        scores.extend(evaluate_sequence(sequence.name, predictions, sequence.read_masks()))
        count += len(predictions)
    summary = summarize(scores)
    return {"J&F": summary.JF_mean, "J": summary.J_mean, "F": summary.F_mean,
            "seconds_per_frame": (time.perf_counter() - start) / count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--method", required=True, help="color, or a checkpoint path")
    parser.add_argument("--grid", nargs="+", required=True, metavar="KEY=V1,V2")
    parser.add_argument("--base", default="default", help="preset the grid starts from")
    parser.add_argument("--sequences", default=None)
    parser.add_argument("--out", type=Path, default=Path("out/tune"))
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    device = pick_device()
    dataset = DavisDataset(args.root, sequences=args.sequences.split(",") if args.sequences else None)
    frames = {sequence.name: sequence.read_frames() for sequence in dataset.sequences}
    base = resolve_preset(args.base)
    embedder = CachedEmbedder(make_propagator(args.method, base, device).embedder, device)
    make_dirs(args.out)
    log = args.out / "tune.jsonl"
    done = {json.dumps(row["setting"], sort_keys=True) for row in map(json.loads, log.open())} if log.exists() else set()
    tag = {"method": args.method, "base": args.base, "sequences": [s.name for s in dataset.sequences]}
    for setting in sorted(parse_grid(args.grid), key=lambda s: (str(s.get("short_side")), str(s.get("precision")))):
        if json.dumps({**tag, **setting}, sort_keys=True) in done:
            continue
        config = apply(base, setting)
        embedder.precision = config.precision
        tracker = LabelTracker(embedder, config, device)
        row = {"setting": {**tag, **setting}, **score(tracker, dataset, frames)}
        with log.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"{row['J&F']:.1f}  J {row['J']:.1f}  F {row['F']:.1f}  {row['seconds_per_frame']:.3f} s/frame  "
              f"{command_flags(setting)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
