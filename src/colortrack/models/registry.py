"""Turn a ``--method`` name (or a checkpoint path) and a preset into a propagator."""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path

import torch

from colortrack.models.baselines import FarnebackPropagator, FlowPropagator, IdentityPropagator
from colortrack.models.embedders.color import LabPatchEmbedder
from colortrack.defaults import DEFAULT_METHOD, PACKAGED_MODELS, SHIPPED_MODEL, default_preset
from colortrack.defaults import TRACK_METHODS as BUILTIN_METHODS
from colortrack.defaults import TRACK_OPTIONS
from colortrack.errors import InputError
from colortrack.core.tracker import PRESETS, LabelTracker, Propagator, TrackConfig

TRAINING_FREE_METHODS = BUILTIN_METHODS[1:]


def packaged_model_path(name: str = SHIPPED_MODEL) -> Path:
    """The folder of packaged weights ``name`` (``model.safetensors`` + ``checkpoint.json``)."""
    return Path(str(resources.files("colortrack") / "weights" / name))


def shipped_model_path() -> Path:
    """The folder of the shipped weights (``model``)."""
    return packaged_model_path(SHIPPED_MODEL)


def is_packaged(spec: str | Path) -> bool:
    """Whether ``spec`` names packaged weights (``model``, ``model-v1``, ``image-colorization``) rather than a path."""
    return str(spec) in PACKAGED_MODELS


def checkpoint_path(spec: str | Path) -> Path:
    """The checkpoint a packaged name or a path stands for."""
    return packaged_model_path(str(spec)) if is_packaged(spec) else Path(spec)


def load_model(spec: str | Path, device: torch.device):
    """A packaged name (``model``, ``model-v1``, ``image-colorization``) or a checkpoint path -> the trained
    embedder, loaded strictly."""
    from colortrack.train.checkpoint import load_embedder

    return load_embedder(checkpoint_path(spec), device)


def trained_weights(method: str) -> str | None:
    """The weights a ``--method`` tracks with: a packaged name or the checkpoint path it names;
    None for the training-free methods and for paths that do not exist."""
    if method in TRAINING_FREE_METHODS:
        return None
    return method if is_packaged(method) or Path(method).exists() else None


def model_point_config(method: str):
    """The point settings a method decodes with: :class:`colortrack.tasks.points.PointConfig` with
    a trained checkpoint's own ``point_defaults`` (``checkpoint.json``; e.g. the occlusion check's
    ``fade_below``, fitted to how that model's maps fade) applied."""
    from colortrack.tasks.points import PointConfig
    from colortrack.train.checkpoint import read_meta

    weights = trained_weights(method)
    defaults = read_meta(checkpoint_path(weights)).get("point_defaults", {}) if weights is not None else {}
    try:
        return replace(PointConfig(), **defaults)
    except TypeError as err:
        raise InputError(checkpoint_path(weights) / "checkpoint.json", f"invalid point_defaults ({err})") from None


def make_propagator(method: str, config: TrackConfig, device: torch.device) -> Propagator:
    """method: model, image-colorization, identity, flow, color, farneback, or the path of a
    trained checkpoint (file or run folder)."""
    if method == "identity":
        return IdentityPropagator()
    if method == "flow":
        return FlowPropagator()
    if method == "farneback":
        return FarnebackPropagator()
    if method == "color":
        return LabelTracker(LabPatchEmbedder(), config, device)
    weights = trained_weights(method)
    if weights is not None:
        return LabelTracker(load_model(weights, device), config, device)
    choices = ", ".join(dict.fromkeys([*BUILTIN_METHODS, *PACKAGED_MODELS]))
    raise InputError("--method", f"unknown method '{method}': choose {choices} or a checkpoint path")


def resolve_preset(name: str | None, method: str = DEFAULT_METHOD) -> TrackConfig:
    name = name or default_preset(method)
    if name not in PRESETS:
        raise InputError("--preset", f"unknown preset '{name}': choose {', '.join(PRESETS)}")
    return PRESETS[name]


def track_config(preset: str | None = None, method: str = DEFAULT_METHOD, **overrides) -> TrackConfig:
    """The preset (default: the method's own) with ``overrides`` applied; an override that is
    None is not given. temperature, topk (0: all), radius (0: global), recent, first_frame
    ("keep" or "drop"), anchors ("global" or "window": how annotated frames are searched), short_side (0: native), precision, flip ("on"/"off" or a bool),
    extra_short_sides, fine_weight, embed_dims (0: every direction): the command line's options."""
    unknown = sorted(set(overrides) - set(TRACK_OPTIONS))
    if unknown:
        raise InputError(unknown[0], f"unknown tracking setting: choose {', '.join(TRACK_OPTIONS)}")
    given = {name: value for name, value in overrides.items() if value is not None}
    config = resolve_preset(preset, method)
    affinity = {name: given[name] for name in ("temperature",) if name in given}
    affinity.update({name: given[name] or None for name in ("topk", "radius") if name in given})
    memory = {"recent": given["recent"]} if "recent" in given else {}
    if "first_frame" in given:
        if given["first_frame"] not in ("keep", "drop"):
            raise InputError("first_frame", f"must be 'keep' or 'drop', not {given['first_frame']!r}")
        memory["keep_first"] = given["first_frame"] == "keep"
    if "anchors" in given:
        if given["anchors"] not in ("global", "window"):
            raise InputError("anchors", f"must be 'global' or 'window', not {given['anchors']!r}")
        memory["global_anchors"] = given["anchors"] == "global"
    return replace(
        config,
        affinity=replace(config.affinity, **affinity),
        memory=replace(config.memory, **memory),
        short_side=given["short_side"] or None if "short_side" in given else config.short_side,
        precision=given.get("precision", config.precision),
        flip=_switch("flip", given["flip"]) if "flip" in given else config.flip,
        extra_short_sides=tuple(given.get("extra_short_sides", config.extra_short_sides)),
        fine_weight=_fine_weight(method, given.get("fine_weight"), config.fine_weight),
        embed_dims=given["embed_dims"] or None if "embed_dims" in given else config.embed_dims,
    )


def _fine_weight(method: str, given: float | None, preset: float) -> float:
    """A preset's fine weight serves trained models only; asking it of another method is an error."""
    if method not in TRAINING_FREE_METHODS:
        return float(preset if given is None else given)
    if given:
        raise InputError("--fine-weight", f"needs a trained model; '{method}' has no trunk stages (use 0)")
    return 0.0


def _switch(name: str, value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value not in ("on", "off"):
        raise InputError(name, f"must be 'on' or 'off', not {value!r}")
    return value == "on"
