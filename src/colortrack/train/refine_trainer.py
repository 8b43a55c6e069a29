"""Training the colourization refiner (:mod:`colortrack.models.refiner`) on unlabelled colour video.

First every segment of the data is warped once by one of our methods (``RUN_DIR/warps``, see
:mod:`colortrack.train.refine_data`), then G is trained on random crops of three consecutive frames,
unrolled over two steps as at inference: ``out(t-1) = G(.., start, warped(t-1))``,
``out(t) = G(.., out(t-1), warped(t))``. Loss: L1 on ab of both outputs, plus ``temporal_weight``
times the mean change |out(t) - out(t-1)| at pixels whose true ab changes by less than 2.

Same conventions as the embedding trainer: RUN_DIR/config.json, log.csv, checkpoints with strict
safetensors weights, ``--resume`` to the same weights an uninterrupted run reaches, DDP under
torchrun (only rank 0 warps, logs and writes checkpoints).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from colortrack.tasks.colorize import ColorizeConfig, Colorizer, embedder_temperature, make_embedder
from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write_json, make_dirs
from colortrack.models.refiner import FORMAT, Refiner, RefinerConfig
from colortrack.scale.ranks import joined
from colortrack.train import checkpoint as ckpt
from colortrack.train.data import StepBatchSampler, find_videos, prepare_cache
from colortrack.train.refine_data import UNROLL, RefineDataset, WarpSegment, prepare_warps
from colortrack.train.trainer import (
    PRECISIONS,
    RESUMABLE,
    _append_log,
    _trim_log,
    _Window,
    _worker_init,
    autocast_dtype,
    lr_at,
)

STABLE_BELOW = 2.0  # ab units, as the flicker measure (colortrack.eval.metrics.color)
GRAD_CLIP = 1.0  # gradient norm: a run at lr 2e-3 without it diverged after 330 steps


@dataclass
class RefineTrainConfig:
    """Everything that defines a refiner run; saved as RUN_DIR/config.json and in checkpoints.

    embedder / method / short_side: the warping that makes the training inputs.
    segment_frames / segments_per_video: warped segments cut from each cached video, coloured
    from their first frame.
    perfect: share of steps whose batch gets the true ab (full resolution, confidence 1) as its
    warped ab (:func:`perfect_batch`), so that G learns to keep correct colours.
    """

    data: list[str] = field(default_factory=list)
    out: str = "runs/refiner"
    embedder: str = "model"
    method: str = "propagate"
    short_side: int | None = 240
    cache_short_side: int = 240
    cache_dir: str | None = None
    fps: float = 6.0
    segment_frames: int = 10
    segments_per_video: int = 1
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    steps: int = 2000
    batch_size: int = 16
    lr_schedule: list[tuple[int, float]] = field(default_factory=lambda: [(0, 1e-3)])
    crop_size: int = 96
    hflip: bool = True
    perfect: float = 0.1
    temporal_weight: float = 0.3
    seed: int = 0
    precision: str = "fp32"
    workers: int = 0
    log_every: int = 10
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    device: str = "auto"
    progress: bool = True

    def checked(self) -> RefineTrainConfig:
        if self.precision not in PRECISIONS:
            raise InputError("--precision", f"must be one of {', '.join(PRECISIONS)}")
        if self.segment_frames < UNROLL:
            raise InputError("--segment-frames", f"must be at least {UNROLL}, got {self.segment_frames}")
        if self.crop_size % self.refiner.multiple:
            raise InputError("--crop-size", f"{self.crop_size} is not a multiple of {self.refiner.multiple}")
        if not self.lr_schedule or self.lr_schedule[0][0] != 0:
            raise InputError("--lr", "the schedule must start at step 0")
        return replace(self, lr_schedule=sorted(map(tuple, self.lr_schedule)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefineTrainConfig:
        data = dict(data)
        if "input_height" in data:  # the name before short_side
            data["short_side"] = data.pop("input_height")
        data["refiner"] = RefinerConfig.from_dict(data["refiner"])
        data["lr_schedule"] = [(int(step), float(lr)) for step, lr in data["lr_schedule"]]
        return cls(**data)


def load_refine_run_config(run_dir: str | os.PathLike) -> RefineTrainConfig:
    path = Path(run_dir) / "config.json"
    try:
        return RefineTrainConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise InputError(path, f"cannot read the refiner run's configuration ({err})") from err


def train_refiner(config: RefineTrainConfig, resume: bool = False) -> tuple[Path, int, float]:
    """Warp the data (once), then train up to ``config.steps``. Returns (checkpoint, step, loss)."""
    config = config.checked()
    with joined(config.device) as env:
        run_dir = Path(config.out)
        latest = ckpt.latest_checkpoint(run_dir)
        if latest is not None and not resume:
            raise InputError(run_dir, "already holds a refiner run; pass --resume to continue it or pick another --out")
        segments = _warped_segments(config, run_dir, env)
        torch.manual_seed(config.seed)
        model = Refiner(config.refiner).to(env.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr_schedule[0][1])
        start, elapsed = 0, 0.0
        if resume and latest is not None:
            start, elapsed = _restore(latest, model, optimizer)
        if env.primary:
            atomic_write_json(run_dir / "config.json", config.to_dict())
            _trim_log(run_dir / "log.csv", start)
        cell = make_embedder(config.embedder, torch.device("cpu")).stride
        dataset = RefineDataset(segments, config.crop_size, config.hflip, config.seed, cell)
        return _loop(config, env, model, optimizer, dataset, start, elapsed)


def _warped_segments(config: RefineTrainConfig, run_dir: Path, env) -> list[WarpSegment]:
    """Cache and warp the data on rank 0 first; the other ranks then find it done."""
    if not config.data:
        raise InputError("--data", "no data folder given")
    sources = find_videos(config.data)
    if not sources:
        raise InputError(", ".join(config.data), "no video files or frame folders found")
    cache_dir = Path(config.cache_dir) if config.cache_dir else run_dir / "cache"

    def warp(primary: bool) -> list[WarpSegment]:
        args = (sources, cache_dir, config.cache_short_side, config.fps, config.segment_frames)
        videos = prepare_cache(*args, primary=primary, progress=config.progress and primary)
        colorizer = _colorizer(config, env.device)
        return prepare_warps(videos, run_dir, colorizer, config.segment_frames, config.segments_per_video,
                             progress=config.progress and primary)

    segments = warp(True) if env.primary else None
    env.barrier()
    return segments if segments is not None else warp(False)


def _colorizer(config: RefineTrainConfig, device: torch.device) -> Colorizer:
    overrides = {"temperature": embedder_temperature(config.embedder), "short_side": config.short_side}
    method = ColorizeConfig.for_method(config.method, **overrides)
    return Colorizer(make_embedder(config.embedder, device), method, device)


def _loop(config, env, model: Refiner, optimizer, dataset: RefineDataset, start: int, elapsed: float):
    run_dir = Path(config.out)
    network: nn.Module = model
    if env.enabled:
        network = DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    network.train()
    sampler = StepBatchSampler(start, config.steps, config.batch_size, env.rank, env.world_size)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=config.workers,
                        worker_init_fn=_worker_init if config.workers > 0 else None)
    dtype = autocast_dtype(config.precision, env.device)
    bar = tqdm(total=config.steps, initial=start, desc="train-refiner", dynamic_ncols=True,
               disable=not (env.primary and config.progress))
    window, step, loss = _Window(), start, float("nan")
    for step, batch in enumerate(loader, start=start + 1):
        lr = lr_at(config.lr_schedule, step - 1)
        batch = {key: value.to(env.device, non_blocking=True) for key, value in batch.items()}
        if int(step * config.perfect) != int((step - 1) * config.perfect):
            batch = perfect_batch(batch)
        window.add(refine_step(network, optimizer, batch, lr, config.temporal_weight, dtype))
        bar.update(1)
        if step % config.log_every == 0 or step == config.steps:
            loss, clips_per_s, seconds = window.flush(config.batch_size * env.world_size, env)
            elapsed += seconds
            if env.primary:
                bar.set_postfix(loss=f"{loss:.3f}")
                row = [step, f"{loss:.6f}", f"{lr:.3g}", f"{clips_per_s:.2f}", f"{elapsed:.1f}"]
                _append_log(run_dir / "log.csv", row)
        if step % config.checkpoint_every == 0 or step == config.steps:
            _checkpoint(config, env, model, optimizer, step, elapsed)
    bar.close()
    return ckpt.checkpoint_dir(run_dir, step), step, loss


def unrolled_loss(network: nn.Module, batch: dict[str, Tensor], temporal_weight: float, dtype=None) -> Tensor:
    """batch (see :class:`RefineDataset`, with a batch axis first): frames t-2, t-1, t. Returns the
    scalar loss (fp32): L1 on ab of both outputs + temporal_weight x the mean change between them
    at pixels whose true ab is stable."""
    light, ab, warped, confidence = batch["light"], batch["ab"], batch["warped"], batch["confidence"]
    previous, outputs = batch["start"], []
    for step, t in enumerate((1, 2)):
        with torch.autocast(light.device.type, dtype=dtype, enabled=dtype is not None):
            previous = network(light[:, t - 1], light[:, t], previous, warped[:, step], confidence[:, step]).float()
        outputs.append(previous)
    fidelity = sum((out - ab[:, t]).abs().mean() for t, out in zip((1, 2), outputs))
    stable = ((ab[:, 2] - ab[:, 1]).norm(dim=1) < STABLE_BELOW).float()
    change = (outputs[1] - outputs[0]).norm(dim=1)
    temporal = (change * stable).sum() / stable.sum().clamp_min(1.0)
    return fidelity + temporal_weight * temporal


def perfect_batch(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The batch with the true ab of frames t-1 and t, at full resolution and confidence 1, as
    their warped ab: G must then keep them."""
    ab = batch["ab"][:, 1:]
    return {**batch, "warped": ab, "confidence": torch.ones_like(ab[:, :, :1])}


def refine_step(
    network: nn.Module, optimizer, batch: dict[str, Tensor], lr: float, temporal_weight: float, dtype=None
) -> Tensor:
    """One optimizer step on a batch (see :func:`unrolled_loss`), gradient norm clipped to
    GRAD_CLIP. Returns the detached loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = unrolled_loss(network, batch, temporal_weight, dtype)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(network.parameters(), GRAD_CLIP)
    optimizer.step()
    return loss.detach()


def _checkpoint(config, env, model: Refiner, optimizer, step: int, elapsed: float) -> None:
    env.barrier()
    if env.primary:
        meta = {"format": FORMAT, "train_config": config.to_dict(), "refiner_config": config.refiner.to_dict(),
                "elapsed": elapsed}
        ckpt.save_checkpoint(config.out, step, model, meta, {"optimizer": optimizer.state_dict()},
                             keep=config.keep_checkpoints)
    env.barrier()


def _restore(latest: Path, model: Refiner, optimizer) -> tuple[int, float]:
    meta = json.loads((latest / ckpt.META).read_text())
    if meta.get("format") != FORMAT:
        raise InputError(latest, f"not a {FORMAT} checkpoint")
    ckpt.load_weights(model, latest)
    state = ckpt.load_training_state(latest)
    optimizer.load_state_dict(state["optimizer"])
    ckpt.restore_rng_states(state["rng"])
    return int(meta["step"]), float(meta.get("elapsed", 0.0))


def export_weights(checkpoint: str | os.PathLike, weights: str | os.PathLike) -> Path:
    """Copy a refiner checkpoint's weights to ``weights`` (.safetensors) with a ``.json``
    description beside it (format, architecture, training settings, step): what
    :func:`colortrack.models.refiner.load_refiner` reads."""
    from colortrack.io.atomic import atomic_write

    folder = ckpt.resolve_checkpoint(checkpoint)
    meta = json.loads((folder / ckpt.META).read_text())
    if meta.get("format") != FORMAT:
        raise InputError(folder, f"not a {FORMAT} checkpoint")
    weights = Path(weights)
    make_dirs(weights.parent)
    with atomic_write(weights) as tmp:
        tmp.write_bytes((folder / ckpt.WEIGHTS).read_bytes())
    keep = ("format", "refiner_config", "train_config", "step")
    atomic_write_json(weights.with_suffix(".json"), {key: meta[key] for key in keep})
    return weights


__all__ = ["RESUMABLE", "RefineTrainConfig", "export_weights", "load_refine_run_config", "refine_step", "train_refiner"]
