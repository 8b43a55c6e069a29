"""Training throughput (clips per second) of the colourization network on this machine.

Times the trainer's own optimizer step (forward, fp32 affinity loss, backward, Adam) on random
batches, after warm-up, for each preset and precision; data loading is timed separately (clips
per second of one loader process). Prints a markdown table and writes JSON to --out.

    python benchmarks/train_throughput.py --out out/bench/train_throughput.json
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from colortrack.io.atomic import atomic_write_json
from colortrack.models.network import MODEL_PRESETS, ColorizationNet
from colortrack.demo.synthetic import make_video
from colortrack.core.tracker import pick_device
from colortrack.train.data import ClipConfig, ClipDataset, CachedVideo
from colortrack.train.loss import TRAINING_AFFINITY, objective_loss
from colortrack.core.precision import autocast_dtype
from colortrack.train.trainer import train_step


@dataclass(frozen=True)
class Case:
    preset: str
    precision: str
    batch_size: int
    crop_size: int


@dataclass(frozen=True)
class Measurement:
    preset: str
    precision: str
    batch_size: int
    crop_size: int
    seconds_per_step: float
    clips_per_s: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    parser.add_argument("--presets", nargs="+", default=["small", "resnet18"], choices=sorted(MODEL_PRESETS))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--small-batch", type=int, default=16)
    parser.add_argument("--small-crop", type=int, default=128)
    parser.add_argument("--resnet18-batch", type=int, default=4)
    parser.add_argument("--resnet18-crop", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per case")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case")
    parser.add_argument("--data-clips", type=int, default=32, help="clips timed through the data pipeline (0: skip)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    return parser.parse_args(argv)


def measure(case: Case, device: torch.device, warmup: int, steps: int) -> Measurement:
    """Seconds per optimizer step of ``case``, averaged over ``steps`` after ``warmup``."""
    torch.manual_seed(0)
    config = MODEL_PRESETS[case.preset]
    model = ColorizationNet(config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    dtype = autocast_dtype(case.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    size = case.crop_size
    x = torch.rand(case.batch_size, 4, config.in_channels, size, size, device=device) * 2 - 1
    ids = torch.randint(0, 16, (case.batch_size, 4, size // config.stride, size // config.stride), device=device)

    loss_fn = objective_loss("ce", {"color_ids": ids}, 16, TRAINING_AFFINITY)

    def step() -> None:
        train_step(model, optimizer, scaler, x, loss_fn, 1e-3, dtype).item()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return Measurement(case.preset, case.precision, case.batch_size, size, seconds, case.batch_size / seconds)


def measure_data(crop_size: int, stride: int, clips: int) -> float:
    """Clips per second of ClipDataset (crop, Lab, quantize) from a 240p cached video, one process."""
    with tempfile.TemporaryDirectory() as folder:
        frames = make_video(num_frames=24, height=240, width=320, seed=0).frames
        path = Path(folder) / "video.npy"
        np.save(path, frames)
        video = CachedVideo(str(path), str(path), len(frames), 240, 320)
        config = ClipConfig(crop_size=crop_size, scale_jitter=(0.8, 1.25), stride=stride)
        dataset = ClipDataset([video], torch.randn(16, 2) * 30, config, seed=0)
        dataset[0]
        start = time.perf_counter()
        for index in range(1, clips + 1):
            dataset[index]
        return clips / (time.perf_counter() - start)


def cases(args: argparse.Namespace) -> list[Case]:
    sizes = {"small": (args.small_batch, args.small_crop), "resnet18": (args.resnet18_batch, args.resnet18_crop)}
    return [Case(p, q, *sizes[p]) for p in args.presets for q in args.precisions]


def markdown(command: str, device: str, threads: int, rows: list[Measurement], data_rate: float | None) -> str:
    lines = [
        f"`{command}`",
        "",
        f"device: {device}, torch {torch.__version__}, {threads} threads",
        "",
        "| preset | precision | batch | crop | s/step | clips/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.preset} | {r.precision} | {r.batch_size} | {r.crop_size} "
        f"| {r.seconds_per_step:.3f} | {r.clips_per_s:.2f} |"
        for r in rows
    ]
    if data_rate is not None:
        crop = rows[0].crop_size if rows else "-"
        lines += ["", f"data pipeline (one process, crop {crop}): {data_rate:.1f} clips/s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    rows = [measure(case, device, args.warmup, args.steps) for case in cases(args)]
    first = cases(args)[0] if rows else None
    data_rate = None
    if args.data_clips > 0 and first is not None:
        data_rate = measure_data(first.crop_size, MODEL_PRESETS[first.preset].stride, args.data_clips)
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    cpu = f"cpu ({platform.processor() or platform.machine()})"
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    print(markdown(command, device_name, torch.get_num_threads(), rows, data_rate))
    atomic_write_json(
        args.out,
        {
            "command": command,
            "device": device_name,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "warmup": args.warmup,
            "steps": args.steps,
            "results": [asdict(r) for r in rows],
            "data_clips_per_s": data_rate,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
