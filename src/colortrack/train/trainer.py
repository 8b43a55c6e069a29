"""Self-supervised colourization training (Vondrick et al. 2018), single process or DDP.

Under ``torchrun`` (RANK, WORLD_SIZE and LOCAL_RANK in the environment) every process trains a
DistributedDataParallel replica on its own samples; only rank 0 writes logs and checkpoints.
A run killed at any point resumes from its latest checkpoint to the same weights an
uninterrupted run reaches (the clips are a pure function of the sample index, and the
optimizer and RNG states are saved).
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from colortrack.core.affinity import AffinityConfig
from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write_json, atomic_write_text, make_dirs
from colortrack.models.network import INPUT_MODES, MODEL_PRESETS, ColorizationNet, ModelConfig
from colortrack.core.precision import PRECISIONS, autocast_dtype
from colortrack.scale.ranks import Ranks, joined
from colortrack.train import checkpoint as ckpt
from colortrack.train.data import (
    CachedVideo,
    ClipConfig,
    ClipDataset,
    FramesOf,
    StepBatchSampler,
    find_videos,
    prepare_cache,
    sample_ab,
)
from colortrack.train.loss import IMAGE_OBJECTIVE, OBJECTIVES, ImageColorizer, objective_loss
from colortrack.train.quantize import fit_color_centers
from colortrack.train.shards import ShardReader

LOG_FIELDS = ("step", "loss", "lr", "clips_per_s", "elapsed")
# Crop size used when the config leaves it unset: the paper's 256 for ResNet-18, CPU-sized otherwise.
DEFAULT_CROP = {"resnet18": 256, "small": 128}
# What may differ between a run and its resumption: none of it changes the weights.
RESUMABLE = ("steps", "workers", "log_every", "checkpoint_every", "keep_checkpoints", "device", "progress")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as RUN_DIR/config.json and in checkpoints.

    model: the architecture; None takes MODEL_PRESETS[model_preset].
    lr_schedule: piecewise constant, [(first step, lr), ...] sorted by step (paper: 1e-3 then 1e-4).
    crop_size: None takes DEFAULT_CROP[model_preset] (128 when unknown).
    cache_short_side / fps: frames are cached at this short side and frame rate (paper ~6 fps).
    cache_dir: None caches in RUN_DIR/cache.
    channel_dropout: "lab" input only: share of clips with their ab (or L) input zeroed;
    ab_dropout_share: the part of those that lose ab (the rest lose L).
    precision: "fp32", "bf16", "fp16" (with a gradient scaler) or "auto" (bf16 or fp16 on CUDA,
    fp32 on CPU). The affinity softmax and the loss always run in fp32.
    keep_checkpoints: how many recent checkpoints to keep (0: all).
    input_mode: "gray" or "lab" network input; None keeps the model's (the preset's: gray).
    init: a checkpoint whose weights start the run (fresh optimizer and schedule); a gray-input
    checkpoint can start a "lab" run: the new a, b input weights start at zero.
    clip_frames: frames per clip: clip_frames - 1 references and one target (paper: 4).
    max_gap / input_jitter / rotation: see :class:`colortrack.train.data.ClipConfig`.
    objective: "ce" (the paper's cross-entropy over quantized colours), "regression"
    (smooth-L1 on the copied ab, :func:`colortrack.train.loss.regression_loss`) or "image" (the
    single-image colorization baseline: every frame's colours from that frame alone, through a
    classifier head that is trained with the network and left out of its checkpoint weights).
    cycle_weight: adds that times the cycle-consistency term (:func:`colortrack.train.loss.cycle_loss`).
    shards: a sharded corpus (folder or fsspec URL, :mod:`colortrack.train.shards`) read instead
    of decoding ``data`` into the frame cache; its own short side and frame rate apply.
    """

    data: list[str] = field(default_factory=list)
    out: str = "runs/colorize"
    model_preset: str = "small"
    model: ModelConfig | None = None
    steps: int = 10000
    batch_size: int = 16
    lr_schedule: list[tuple[int, float]] = field(default_factory=lambda: [(0, 1e-3)])
    crop_size: int | None = None
    scale_jitter: tuple[float, float] = (0.8, 1.25)
    hflip: bool = True
    channel_dropout: float = 0.5
    ab_dropout_share: float = 0.5
    cache_short_side: int = 240
    cache_dir: str | None = None
    fps: float = 6.0
    clip_frames: int = 4
    num_colors: int = 16
    kmeans_samples: int = 20000
    temperature: float = 1.0
    seed: int = 0
    precision: str = "fp32"
    workers: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    device: str = "auto"
    progress: bool = True
    input_mode: str | None = None
    init: str | None = None
    max_gap: int = 1
    input_jitter: float = 0.0
    rotation: float = 0.0
    objective: str = "ce"
    cycle_weight: float = 0.0
    shards: str | None = None

    def resolved(self) -> TrainConfig:
        """A copy with the model and crop size filled in from the preset, checked."""
        if self.model is None and self.model_preset not in MODEL_PRESETS:
            raise InputError("--model", f"unknown preset {self.model_preset!r} (choose {', '.join(MODEL_PRESETS)})")
        if self.precision not in PRECISIONS:
            raise InputError("--precision", f"must be one of {', '.join(PRECISIONS)}")
        model = self.model or MODEL_PRESETS[self.model_preset]
        if self.input_mode is not None and self.input_mode != model.input_mode:
            if self.input_mode not in INPUT_MODES:
                raise InputError("--input", f"must be one of {', '.join(INPUT_MODES)}")
            model = replace(model, input_mode=self.input_mode)
        crop = self.crop_size or DEFAULT_CROP.get(self.model_preset, 128)
        if crop % model.stride:
            raise InputError("--crop-size", f"{crop} is not a multiple of the model stride {model.stride}")
        if self.objective not in OBJECTIVES:
            raise InputError("--objective", f"must be one of {', '.join(OBJECTIVES)}")
        if self.cycle_weight < 0 or (self.cycle_weight > 0 and self.objective == IMAGE_OBJECTIVE):
            raise InputError("--cycle-weight", "must be >= 0, and 0 with --objective image (it has no affinity)")
        if self.objective == IMAGE_OBJECTIVE and model.input_mode != "gray":
            raise InputError("--objective", "image colorization predicts colours from the gray frame: use --input gray")
        for option, value, low in (("--clip-frames", self.clip_frames, 2), ("--max-gap", self.max_gap, 1)):
            if value < low:
                raise InputError(option, f"must be at least {low}, got {value}")
        for option, value in (("--input-jitter", self.input_jitter), ("--rotation", self.rotation)):
            if value < 0:
                raise InputError(option, f"must not be negative, got {value}")
        if not 0 <= self.ab_dropout_share <= 1:
            raise InputError("--ab-dropout-share", f"must be in [0, 1], got {self.ab_dropout_share}")
        if not self.lr_schedule or self.lr_schedule[0][0] != 0:
            raise InputError("--lr", "the schedule must start at step 0")
        return replace(self, model=model, crop_size=crop, lr_schedule=sorted(map(tuple, self.lr_schedule)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        if data.get("model") is not None:
            data["model"] = ModelConfig.from_dict(data["model"])
        data["lr_schedule"] = [(int(step), float(lr)) for step, lr in data["lr_schedule"]]
        data["scale_jitter"] = tuple(data["scale_jitter"])
        return cls(**data)


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    loss: float


def lr_at(schedule: list[tuple[int, float]], step: int) -> float:
    """The learning rate of the last schedule entry whose step is <= ``step``."""
    return [lr for start, lr in schedule if start <= step][-1]


def load_run_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The TrainConfig saved in RUN_DIR/config.json."""
    path = Path(run_dir) / "config.json"
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise InputError(path, f"cannot read the run's configuration ({err})") from err


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train (or, with ``resume``, continue the run in ``config.out``) up to ``config.steps``.

    Resuming takes the weights, optimizer and RNG states and the colour centres of the latest
    checkpoint; ``config`` should be the run's saved one, with only RESUMABLE fields changed.
    """
    config = config.resolved()
    with joined(config.device) as env:
        return _train(config, resume, env)


def _train(config: TrainConfig, resume: bool, env: Ranks) -> TrainResult:
    run_dir = Path(config.out)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is not None and not resume:
        raise InputError(run_dir, "already holds a training run; pass --resume to continue it or pick another --out")
    videos, frames_of = _training_videos(config, run_dir, env)
    torch.manual_seed(config.seed)
    model = ColorizationNet(config.model).to(env.device)
    trainee = _trainee(config, model).to(env.device)
    optimizer = torch.optim.Adam(trainee.parameters(), lr=config.lr_schedule[0][1])
    fp16 = autocast_dtype(config.precision, env.device) == torch.float16
    scaler = torch.amp.GradScaler(env.device.type, enabled=fp16)
    start, elapsed = 0, 0.0
    if resume and latest is not None:
        centers, start, elapsed = _restore(latest, trainee, optimizer, scaler)
    else:
        if config.init:
            ckpt.warm_start(model, config.init)
        centers = _fit_centers(config, videos, env, frames_of)
    if env.primary:
        make_dirs(run_dir)
        atomic_write_json(run_dir / "config.json", config.to_dict())
        _trim_log(run_dir / "log.csv", start)
    dataset = ClipDataset(videos, centers, _clip_config(config), config.seed, frames_of)
    return _loop(config, env, trainee, optimizer, scaler, dataset, centers, start, elapsed)


def _trainee(config: TrainConfig, model: ColorizationNet) -> nn.Module:
    """What the optimizer trains: the network, with the classifier head of the image objective."""
    if config.objective == IMAGE_OBJECTIVE:
        return ImageColorizer(model, config.model.embed_dim, config.num_colors)
    return model


def _embedder(trainee: nn.Module) -> ColorizationNet:
    return trainee.embedder if isinstance(trainee, ImageColorizer) else trainee


def _loop(
    config: TrainConfig,
    env: Ranks,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    dataset: ClipDataset,
    centers: Tensor,
    start: int,
    elapsed: float,
) -> TrainResult:
    run_dir = Path(config.out)
    network: nn.Module = model
    if env.enabled:
        network = DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    network.train()
    loader = _loader(dataset, config, env, start)
    affinity = AffinityConfig(temperature=config.temperature, topk=None, radius=None)
    dtype = autocast_dtype(config.precision, env.device)
    bar = tqdm(total=config.steps, initial=start, desc="train", dynamic_ncols=True,
               disable=not (env.primary and config.progress))
    window = _Window()
    step, loss = start, float("nan")
    for step, batch in enumerate(loader, start=start + 1):
        lr = lr_at(config.lr_schedule, step - 1)
        x = batch["input"].to(env.device, non_blocking=True)
        targets = {key: batch[key].to(env.device, non_blocking=True) for key in ("color_ids", "ab")}
        loss_fn = objective_loss(config.objective, targets, config.num_colors, affinity, config.cycle_weight)
        window.add(train_step(network, optimizer, scaler, x, loss_fn, lr, dtype))
        bar.update(1)
        if step % config.log_every == 0 or step == config.steps:
            loss, clips_per_s, seconds = window.flush(config.batch_size * env.world_size, env)
            elapsed += seconds
            if env.primary:
                bar.set_postfix(loss=f"{loss:.4f}", clips_s=f"{clips_per_s:.1f}")
                row = [step, f"{loss:.6f}", f"{lr:.3g}", f"{clips_per_s:.2f}", f"{elapsed:.1f}"]
                _append_log(run_dir / "log.csv", row)
        if step % config.checkpoint_every == 0 or step == config.steps:
            _checkpoint(config, env, model, optimizer, scaler, centers, step, elapsed)
    bar.close()
    return TrainResult(run_dir, ckpt.checkpoint_dir(run_dir, step), step, loss)


def train_step(
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    x: Tensor,
    loss_fn: Callable[[Tensor], Tensor],
    lr: float,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """One optimizer step. x: (B, T, Cin, S, S) on the network's device; ``loss_fn`` maps the
    network's output (the embeddings (B, T, D, h, w), or an image colorizer's logits) to the
    scalar loss (:func:`colortrack.train.loss.objective_loss`).
    The network runs under autocast to ``dtype`` (None: fp32); the loss in fp32.
    Returns the (detached) loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(x.device.type, dtype=dtype) if dtype else nullcontext():
        outputs = network(x)
    loss = loss_fn(outputs.float())
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


class _Window:
    """Mean loss and throughput since the last flush."""

    def __init__(self) -> None:
        self.since, self.losses = time.perf_counter(), []

    def add(self, loss: Tensor) -> None:
        self.losses.append(loss)

    def flush(self, clips_per_step: int, env: Ranks) -> tuple[float, float, float]:
        mean = torch.stack(self.losses).mean()
        if env.enabled:
            dist.all_reduce(mean)
            mean = mean / env.world_size
        now = time.perf_counter()
        seconds = now - self.since
        result = (float(mean), len(self.losses) * clips_per_step / max(seconds, 1e-9), seconds)
        self.since, self.losses = now, []
        return result


def _checkpoint(
    config: TrainConfig,
    env: Ranks,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    centers: Tensor,
    step: int,
    elapsed: float,
) -> None:
    env.barrier()
    if env.primary:
        meta = {
            "train_config": config.to_dict(),
            "model_config": config.model.to_dict(),
            "color_centers": centers.tolist(),
            "elapsed": elapsed,
        }
        state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}
        if isinstance(model, ImageColorizer):
            state["head"] = model.head.state_dict()
        ckpt.save_checkpoint(config.out, step, _embedder(model), meta, state, keep=config.keep_checkpoints)
    env.barrier()


def _restore(
    latest: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
) -> tuple[Tensor, int, float]:
    """Load a checkpoint into model (and its classifier head) and optimizer. Returns (centres,
    step, elapsed seconds)."""
    meta = ckpt.read_meta(latest)
    ckpt.load_weights(_embedder(model), latest)
    state = ckpt.load_training_state(latest)
    if isinstance(model, ImageColorizer):
        model.head.load_state_dict(state["head"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    ckpt.restore_rng_states(state["rng"])
    return ckpt.load_color_centers(latest), int(meta["step"]), float(meta.get("elapsed", 0.0))


def _training_videos(config: TrainConfig, run_dir: Path, env: Ranks) -> tuple[list[CachedVideo], FramesOf | None]:
    """The videos clips are drawn from, and where their frames come from (None: the frame cache)."""
    if config.shards is None:
        return _cached_videos(config, run_dir, env), None
    if config.data:
        raise InputError("--shards", "reads a prepared corpus: give --data to colortrack shards, not to train")
    reader = ShardReader(config.shards)
    return reader.videos(config.clip_frames), reader


def _cached_videos(config: TrainConfig, run_dir: Path, env: Ranks) -> list[CachedVideo]:
    """Decode the data into the cache on rank 0 first; the other ranks then find it cached."""
    if not config.data:
        raise InputError("--data", "no data folder given")
    cache_dir = Path(config.cache_dir) if config.cache_dir else run_dir / "cache"
    sources = find_videos(config.data)
    if not sources:
        raise InputError(", ".join(config.data), "no video files or frame folders found")
    args = (sources, cache_dir, config.cache_short_side, config.fps, config.clip_frames)
    videos = prepare_cache(*args, progress=config.progress) if env.primary else None
    env.barrier()
    return videos if videos is not None else prepare_cache(*args, primary=False)


def _fit_centers(config: TrainConfig, videos: list[CachedVideo], env: Ranks, frames_of: FramesOf | None) -> Tensor:
    """(num_colors, 2) k-means centres of cell-averaged ab, computed on rank 0 and shared."""
    centers = torch.zeros(config.num_colors, 2)
    if env.primary:
        samples = sample_ab(videos, config.kmeans_samples, config.model.stride, config.seed, frames_of=frames_of)
        centers = fit_color_centers(samples, config.num_colors, config.seed)
    if env.enabled:
        shared = centers.to(env.device)
        dist.broadcast(shared, 0)
        centers = shared.cpu()
    return centers


def _clip_config(config: TrainConfig) -> ClipConfig:
    return ClipConfig(
        crop_size=config.crop_size,
        clip_frames=config.clip_frames,
        scale_jitter=config.scale_jitter,
        hflip=config.hflip,
        input_mode=config.model.input_mode,
        stride=config.model.stride,
        channel_dropout=config.channel_dropout,
        ab_dropout_share=config.ab_dropout_share,
        max_gap=config.max_gap,
        input_jitter=config.input_jitter,
        rotation=config.rotation,
    )


def _loader(dataset: ClipDataset, config: TrainConfig, env: Ranks, start: int) -> DataLoader:
    sampler = StepBatchSampler(start, config.steps, config.batch_size, env.rank, env.world_size)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.workers,
        pin_memory=env.device.type == "cuda",
        worker_init_fn=_worker_init if config.workers > 0 else None,
        prefetch_factor=4 if config.workers > 0 else None,
    )


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _append_log(path: Path, row: list) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(LOG_FIELDS)
        writer.writerow(row)


def _trim_log(path: Path, step: int) -> None:
    """Drop log rows after ``step`` (left by a run killed after its last checkpoint)."""
    if not path.is_file():
        return
    with open(path, newline="") as handle:
        text = handle.read()
    rows = list(csv.reader(text.splitlines()))
    # A kill can leave the file empty or its last row cut short: keep only whole rows up to ``step``.
    kept = [list(LOG_FIELDS)] + [row for row in rows[1:] if _logged_step(row) is not None and _logged_step(row) <= step]
    wanted = "".join(",".join(map(str, row)) + "\n" for row in kept)
    if wanted != text:
        atomic_write_text(path, wanted)


def _logged_step(row: list[str]) -> int | None:
    """The step of a whole log.csv row, None for a cut or malformed one."""
    if len(row) != len(LOG_FIELDS):
        return None
    try:
        return int(row[0])
    except ValueError:
        return None


__all__ = [
    "PRECISIONS", "RESUMABLE", "TrainConfig", "TrainResult", "autocast_dtype", "load_run_config", "lr_at", "train",
    "train_step",
]
