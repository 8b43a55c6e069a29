"""Checkpoints of a training run, and loading a trained embedder for tracking.

Layout of a run folder::

    RUN_DIR/config.json                      the TrainConfig, written at start
    RUN_DIR/log.csv                          step, loss, lr, clips_per_s, elapsed
    RUN_DIR/checkpoints/step_000500/
        model.safetensors                    weights and BatchNorm statistics
        checkpoint.json                      step, TrainConfig, ModelConfig, colour centres
        state.pt                             optimizer, grad scaler and RNG states (for --resume)
    RUN_DIR/ckpt -> checkpoints/step_000500  the latest checkpoint

Every file is written to a temporary name and moved into place, and ``checkpoint.json`` is
written last, so a checkpoint folder without it is incomplete and ignored.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write, atomic_write_json, make_dirs
from colortrack.models.network import ColorizationNet, ModelConfig

CHECKPOINTS = "checkpoints"
LATEST = "ckpt"
WEIGHTS = "model.safetensors"
META = "checkpoint.json"
STATE = "state.pt"
FORMAT = "colortrack-colorization"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoint_dir(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step_{step:06d}"


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: nn.Module,
    meta: dict[str, Any],
    state: dict[str, Any],
    keep: int = 0,
) -> Path:
    """Write checkpoint ``step`` of ``run_dir``, point ``RUN_DIR/ckpt`` at it and keep only the
    ``keep`` most recent checkpoints (0: all).

    meta: JSON-able; must hold "train_config", "model_config" and "color_centers" (k x 2 list).
    state: torch-saveable resume state (optimizer, scaler, ...); RNG states are added here.
    Returns the checkpoint folder.
    """
    folder = checkpoint_dir(run_dir, step)
    make_dirs(folder)
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_write(folder / WEIGHTS) as tmp:
        save_file(weights, str(tmp))
    with atomic_write(folder / STATE) as tmp:
        torch.save({**state, "step": step, "rng": rng_states()}, tmp)
    atomic_write_json(folder / META, {"format": FORMAT, **meta, "step": step})
    _point_latest(Path(run_dir), folder)
    _prune(Path(run_dir), keep)
    return folder


def average_checkpoints(
    paths: list[str | os.PathLike], out: str | os.PathLike, weights: list[float] | None = None
) -> Path:
    """Write to ``out`` (a weights-only checkpoint folder) the mean of the weights of ``paths``:
    checkpoints of one run, e.g. along a constant learning rate, or of one lineage (a Lab stage
    and the gray stage it started from, whose first convolution is widened with zero a, b weights
    as :func:`warm_start` does). ``weights``: one per checkpoint (normalised to sum 1; None: equal).
    Floating tensors (batch-norm statistics included) are averaged; integer counters and the
    description are the last Lab (or, with none, the last) checkpoint's, with ``averaged`` listing
    the sources and ``average_weights`` their normalised weights when given. Returns ``out``."""
    if not paths:
        raise InputError("average", "no checkpoints to average")
    shares = _shares(weights, len(paths))
    metas = [read_meta(path) for path in paths]
    widest = max(range(len(paths)), key=lambda i: (metas[i]["model_config"].get("input_mode") == "lab", i))
    target = metas[widest]["model_config"]
    if any({**meta["model_config"], "input_mode": target["input_mode"]} != target for meta in metas):
        raise InputError(paths[0], "checkpoints of different networks cannot be averaged")
    states = [_read_weights(path) for path in paths]
    reference = states[widest]
    for state, path in zip(states, paths):
        _widen_first_conv(state, reference, path)
    mean = {
        name: sum(share * state[name].double() for share, state in zip(shares, states)).to(last.dtype) if last.is_floating_point() else last
        for name, last in reference.items()
    }
    folder = Path(out)
    make_dirs(folder)
    with atomic_write(folder / WEIGHTS) as tmp:
        save_file(mean, str(tmp))
    sources = [str(path) for path in paths]
    described = {**metas[widest], "averaged": sources}
    if weights is not None:
        described["average_weights"] = shares
    atomic_write_json(folder / META, described)
    return folder


def _shares(weights: list[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise InputError("--weights", f"need {count} non-negative weights with a positive sum, got {weights}")
    return [w / sum(weights) for w in weights]


def _widen_first_conv(weights: dict[str, Tensor], expected: dict[str, Tensor], path: str | os.PathLike) -> None:
    """In place: a first convolution with fewer input channels than ``expected``'s (a gray model's
    against a Lab one) gets zero weights for the extra channels, so it computes what it did. Any
    other difference is left for strict loading to report."""
    differing = [key for key, value in weights.items() if key in expected and expected[key].shape != value.shape]
    if len(differing) != 1 or weights[differing[0]].ndim != 4:
        return
    name = differing[0]
    old, new = weights[name], expected[name]
    if old.shape[0] != new.shape[0] or old.shape[2:] != new.shape[2:] or old.shape[1] > new.shape[1]:
        raise InputError(path, f"checkpoint does not match the model: {name} {tuple(old.shape)} vs {tuple(new.shape)}")
    widened = torch.zeros_like(new)
    widened[:, : old.shape[1]] = old
    weights[name] = widened


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The complete checkpoint of ``run_dir`` with the highest step, or None."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return None
    complete = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / META).is_file()]
    return max(complete, key=_step_of, default=None)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run folder, a checkpoint folder or its ``model.safetensors`` -> the checkpoint folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such checkpoint file or folder")
    if path.is_file():
        folder = path.parent
    elif (path / META).is_file():
        folder = path
    else:
        folder = latest_checkpoint(path)
        if folder is None:
            raise InputError(path, f"no checkpoint here (expected {WEIGHTS} and {META}, or a run folder)")
    if not (folder / META).is_file() or not (folder / WEIGHTS).is_file():
        raise InputError(path, f"incomplete checkpoint: {folder} lacks {META} or {WEIGHTS}")
    return folder


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint.json of the checkpoint at ``path`` (see :func:`resolve_checkpoint`)."""
    meta_path = resolve_checkpoint(path) / META
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(meta_path, f"unreadable checkpoint description ({err})") from err
    if meta.get("format") != FORMAT:
        raise InputError(meta_path, f"not a {FORMAT} checkpoint")
    return meta


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load the checkpoint's weights into ``model``, strictly: any missing or unexpected key, or
    shape mismatch, raises InputError(path, "checkpoint does not match the model: ...")."""
    _load_strictly(model, _read_weights(path), path)


def _read_weights(path: str | os.PathLike) -> dict[str, Tensor]:
    weights_path = resolve_checkpoint(path) / WEIGHTS
    try:
        return load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise InputError(weights_path, f"unreadable weights ({err})") from err


def _load_strictly(model: nn.Module, weights: dict[str, Tensor], path: str | os.PathLike) -> None:
    problem = _mismatch(model.state_dict(), weights)
    if problem:
        raise InputError(path, f"checkpoint does not match the model: {problem}")
    model.load_state_dict(weights, strict=True)


def warm_start(model: nn.Module, path: str | os.PathLike) -> None:
    """Start ``model`` from a checkpoint's weights. Keys must match exactly, and so must shapes,
    except that the first convolution may take more input channels than the checkpoint's (a gray
    model starting a Lab one): the extra input weights are set to zero, so the network computes
    what the checkpoint did until training changes them."""
    weights = _read_weights(path)
    _widen_first_conv(weights, model.state_dict(), path)
    _load_strictly(model, weights, path)


def load_embedder(path: str | os.PathLike, device: torch.device | None = None) -> ColorizationNet:
    """The trained network of a checkpoint (run folder, checkpoint folder or .safetensors file),
    on ``device`` (default CPU), ready for inference (:meth:`ColorizationNet.for_inference`)."""
    meta = read_meta(path)
    try:
        config = ModelConfig.from_dict(meta["model_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(path, f"checkpoint has an invalid model_config ({err})") from err
    model = ColorizationNet(config)
    load_weights(model, path)
    return model.to(device or torch.device("cpu")).for_inference()


def load_color_centers(path: str | os.PathLike) -> Tensor:
    """(k, 2) float32 ab centres the checkpoint's network was trained to predict."""
    meta = read_meta(path)
    centers = torch.tensor(meta["color_centers"], dtype=torch.float32)
    if centers.ndim != 2 or centers.shape[1] != 2:
        raise InputError(path, f"color_centers must be k x 2, got {tuple(centers.shape)}")
    return centers


def load_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """The resume state saved with the checkpoint (optimizer, scaler, rng, step)."""
    state_path = resolve_checkpoint(path) / STATE
    try:
        return torch.load(state_path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise InputError(state_path, f"unreadable training state ({err})") from err


def rng_states() -> dict[str, Any]:
    """The torch, numpy and python RNG states, in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(_as_tuples(states["python"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_tuples(value: Any) -> Any:
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _mismatch(expected: dict[str, Tensor], found: dict[str, Tensor]) -> str:
    """'' when ``found`` fits ``expected`` exactly, else a short description of the differences."""
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    shapes = [
        f"{name} {tuple(found[name].shape)} vs {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in found and found[name].shape != tensor.shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            parts.append(f"{label} {', '.join(items[:3])}{more}")
    return "; ".join(parts)


def _point_latest(run_dir: Path, folder: Path) -> None:
    """Atomically make ``RUN_DIR/ckpt`` a relative symlink to ``folder``."""
    link = run_dir / LATEST
    tmp = run_dir / f".{LATEST}.{secrets.token_hex(6)}.tmp"
    try:
        os.symlink(folder.relative_to(run_dir), tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)


def _prune(run_dir: Path, keep: int) -> None:
    if keep <= 0:
        return
    root = run_dir / CHECKPOINTS
    steps = sorted((p for p in root.iterdir() if _STEP_DIR.match(p.name)), key=_step_of)
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _step_of(folder: Path) -> int:
    return int(_STEP_DIR.match(folder.name).group(1))
