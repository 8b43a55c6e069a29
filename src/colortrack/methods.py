"""Turn a ``--method`` name (or a checkpoint path) and a preset into a propagator."""

from __future__ import annotations

from pathlib import Path

import torch

from colortrack.baselines import FlowPropagator, IdentityPropagator
from colortrack.embedders.color import LabPatchEmbedder
from colortrack.errors import InputError
from colortrack.tracker import PRESETS, LabelTracker, Propagator, TrackConfig

BUILTIN_METHODS = ("identity", "flow", "color")
DEFAULT_METHOD = "color"


def make_propagator(method: str, config: TrackConfig, device: torch.device) -> Propagator:
    """method: identity, flow, color, or the path of a trained checkpoint (file or run folder)."""
    if method == "identity":
        return IdentityPropagator()
    if method == "flow":
        return FlowPropagator()
    if method == "color":
        return LabelTracker(LabPatchEmbedder(), config, device)
    if Path(method).exists():
        from colortrack.train.checkpoint import load_embedder

        return LabelTracker(load_embedder(method, device), config, device)
    choices = ", ".join(BUILTIN_METHODS)
    raise InputError("--method", f"unknown method '{method}': choose {choices} or a checkpoint path")


def resolve_preset(name: str) -> TrackConfig:
    if name not in PRESETS:
        raise InputError("--preset", f"unknown preset '{name}': choose {', '.join(PRESETS)}")
    return PRESETS[name]

