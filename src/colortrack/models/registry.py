"""Turn a ``--method`` name (or a checkpoint path) and a preset into a propagator."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from colortrack.models.baselines import FlowPropagator, IdentityPropagator
from colortrack.models.embedders.color import LabPatchEmbedder
from colortrack.errors import InputError
from colortrack.core.tracker import PRESETS, LabelTracker, Propagator, TrackConfig

SHIPPED_MODEL = "model"  # the trained embedder packaged in colortrack/weights/model
TRAINING_FREE_METHODS = ("identity", "flow", "color")
BUILTIN_METHODS = (SHIPPED_MODEL, *TRAINING_FREE_METHODS)
DEFAULT_METHOD = SHIPPED_MODEL


def shipped_model_path() -> Path:
    """The folder of the packaged weights (``model.safetensors`` + ``checkpoint.json``)."""
    return Path(str(resources.files("colortrack") / "weights" / SHIPPED_MODEL))


def load_model(spec: str | Path, device: torch.device):
    """``model`` (the shipped weights) or a checkpoint path -> the trained embedder, loaded strictly."""
    from colortrack.train.checkpoint import load_embedder

    return load_embedder(shipped_model_path() if str(spec) == SHIPPED_MODEL else spec, device)


def trained_weights(method: str) -> str | None:
    """The weights a ``--method`` tracks with: ``model`` (the shipped weights) or the checkpoint
    path it names; None for the training-free methods and for paths that do not exist."""
    if method in TRAINING_FREE_METHODS:
        return None
    return method if method == SHIPPED_MODEL or Path(method).exists() else None


def make_propagator(method: str, config: TrackConfig, device: torch.device) -> Propagator:
    """method: model, identity, flow, color, or the path of a trained checkpoint (file or run folder)."""
    if method == "identity":
        return IdentityPropagator()
    if method == "flow":
        return FlowPropagator()
    if method == "color":
        return LabelTracker(LabPatchEmbedder(), config, device)
    weights = trained_weights(method)
    if weights is not None:
        return LabelTracker(load_model(weights, device), config, device)
    choices = ", ".join(BUILTIN_METHODS)
    raise InputError("--method", f"unknown method '{method}': choose {choices} or a checkpoint path")


def default_preset(method: str) -> str:
    """The preset tuned for ``method``: ``color`` for the colour embedder, ``default`` otherwise."""
    return "color" if method == "color" else "default"


def resolve_preset(name: str | None, method: str = DEFAULT_METHOD) -> TrackConfig:
    name = name or default_preset(method)
    if name not in PRESETS:
        raise InputError("--preset", f"unknown preset '{name}': choose {', '.join(PRESETS)}")
    return PRESETS[name]
