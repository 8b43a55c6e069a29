"""What each training knob buys: CPU seconds per optimizer step of the `small` Lab network.

Times the trainer's own step (bf16 autocast network, fp32 affinity loss, Adam) on one torch thread
with process CPU time, so the figures hold on a loaded machine; every case is repeated in turn
(`--repeats`) and the minimum kept. Knobs: `channels-last` conv weights, `compile`
(`torch.compile` of the network; its one-off compile CPU time is reported), `bf16-similarity`
(the loss's dot products in bf16, softmax and weighted sum in fp32), and the crop size. With
`--run RUN_DIR` it also compares the gradients of fp32 and bf16 similarities on real batches of
that run's corpus against the batch-to-batch spread (is the cheaper step the same training?).

    python benchmarks/train_knobs.py --out out/bench/train_knobs.json --run runs/heldout-lab
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from colortrack.core.affinity import AffinityConfig
from colortrack.io.atomic import atomic_write_json
from colortrack.models.network import MODEL_PRESETS, ColorizationNet
from colortrack.train.loss import TRAINING_AFFINITY, colorization_loss, objective_loss
from colortrack.train.trainer import train_step

KNOBS = ("baseline", "channels-last", "compile", "bf16-similarity")


@dataclass(frozen=True)
class Row:
    knob: str
    crop_size: int
    cpu_s_per_step: float
    one_off_cpu_s: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    parser.add_argument("--knobs", nargs="+", default=list(KNOBS), choices=KNOBS)
    parser.add_argument("--crops", nargs="+", type=int, default=[96, 112, 128], help="crop sizes timed at baseline")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run", type=Path, help="a training run folder: gradient agreement on its corpus")
    parser.add_argument("--batches", type=int, default=4, help="real batches for the gradient check")
    return parser.parse_args(argv)


@contextmanager
def bf16_similarity():
    """The loss's similarity products (C-dimensional dot products) in bf16, outputs back in fp32
    (torch.bmm is replaced for the duration: the affinity calls it through the torch module)."""
    exact = torch.bmm

    def bmm(a, b):
        if a.dtype == torch.float32 and b.shape[-2] < b.shape[-1]:  # (C, N) keys, not (N, L) values
            return exact(a.bfloat16(), b.bfloat16()).float()
        return exact(a, b)

    torch.bmm = bmm
    try:
        yield
    finally:
        torch.bmm = exact


class Case:
    """One knob at one crop size: a fresh network, optimizer and fixed random batch."""

    def __init__(self, knob: str, crop: int, batch_size: int):
        torch.manual_seed(0)
        config = replace(MODEL_PRESETS["small"], input_mode="lab")
        self.knob, self.crop = knob, crop
        self.model = ColorizationNet(config).train()
        if knob == "channels-last":
            for parameter in self.model.parameters():
                if parameter.dim() == 4:
                    parameter.data = parameter.data.contiguous(memory_format=torch.channels_last)
        self.network = torch.compile(self.model) if knob == "compile" else self.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        cells = crop // config.stride
        self.x = torch.rand(batch_size, 4, config.in_channels, crop, crop) * 2 - 1
        ids = torch.randint(0, 16, (batch_size, 4, cells, cells))
        self.loss_fn = objective_loss("ce", {"color_ids": ids}, 16, TRAINING_AFFINITY)
        self.one_off = self.step()

    def step(self) -> float:
        start = time.process_time()
        if self.knob == "bf16-similarity":
            with bf16_similarity():
                self._step()
        else:
            self._step()
        return time.process_time() - start

    def _step(self) -> None:
        train_step(self.network, self.optimizer, self.scaler, self.x, self.loss_fn, 1e-3, torch.bfloat16).item()


def time_cases(args: argparse.Namespace) -> list[Row]:
    specs = [(knob, 128) for knob in args.knobs] + [("baseline", c) for c in args.crops if c != 128]
    cases = [Case(knob, crop, args.batch_size) for knob, crop in specs]
    times = [[] for _ in cases]
    for _ in range(args.repeats):
        for case, seen in zip(cases, times):
            seen.append(case.step())
    return [Row(c.knob, c.crop, min(seen), c.one_off) for c, seen in zip(cases, times)]


def gradient_agreement(run: Path, batches: int) -> list[dict]:
    """Per real batch: cos(grad fp32, grad bf16-similarity), their relative difference, and the
    cosine between consecutive batches' fp32 gradients (the noise SGD already lives with)."""
    from colortrack.scale.ranks import joined
    from colortrack.train import checkpoint as ckpt
    from colortrack.train import trainer
    from colortrack.train.data import ClipDataset

    config = trainer.TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    latest = ckpt.latest_checkpoint(run)
    with joined("cpu") as env:
        videos, frames_of = trainer._training_videos(config, run, env)
    dataset = ClipDataset(videos, ckpt.load_color_centers(latest), trainer._clip_config(config), 123, frames_of)
    model = ColorizationNet(config.model)
    ckpt.load_weights(model, latest)
    model.train()
    affinity = AffinityConfig(temperature=config.temperature, topk=None, radius=None)

    def gradient(batch: dict, cheap: bool) -> torch.Tensor:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            embeddings = model(batch["input"])
        with bf16_similarity() if cheap else nullcontext():
            loss = colorization_loss(embeddings.float(), batch["color_ids"], config.num_colors, affinity)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    rows, previous = [], None
    for index in range(batches):
        items = [dataset[index * config.batch_size + j] for j in range(config.batch_size)]
        batch = {key: torch.stack([item[key] for item in items]) for key in ("input", "color_ids")}
        exact, cheap = gradient(batch, False), gradient(batch, True)
        rows.append({
            "batch": index,
            "cos_fp32_bf16": F.cosine_similarity(exact, cheap, 0).item(),
            "relative_difference": ((exact - cheap).norm() / exact.norm()).item(),
            "cos_previous_batch": None if previous is None else F.cosine_similarity(exact, previous, 0).item(),
        })
        previous = exact
    return rows


def markdown(command: str, rows: list[Row], agreement: list[dict]) -> str:
    base = next(r.cpu_s_per_step for r in rows if r.knob == "baseline" and r.crop_size == 128)
    lines = [f"`{command}`", "", "| knob | crop | CPU s/step | vs baseline | one-off CPU s |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r.knob} | {r.crop_size} | {r.cpu_s_per_step:.3f} | {r.cpu_s_per_step / base:.2f}x | {r.one_off_cpu_s:.1f} |"
        for r in rows
    ]
    if agreement:
        lines += ["", "| batch | cos(fp32, bf16 similarity) | relative difference | cos(batch, previous batch) |",
                  "|---:|---:|---:|---:|"]
        lines += [
            f"| {a['batch']} | {a['cos_fp32_bf16']:.5f} | {a['relative_difference']:.4f} | "
            + ("-" if a["cos_previous_batch"] is None else f"{a['cos_previous_batch']:.3f}") + " |"
            for a in agreement
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    rows = time_cases(args)
    agreement = gradient_agreement(args.run, args.batches) if args.run else []
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    print(markdown(command, rows, agreement))
    atomic_write_json(args.out, {
        "command": command, "torch": torch.__version__, "threads": 1,
        "rows": [asdict(r) for r in rows], "gradient_agreement": agreement,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
