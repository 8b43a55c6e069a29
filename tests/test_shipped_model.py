"""The packaged default model: present, loaded strictly, and the default of the CLI."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from colortrack.errors import InputError
from colortrack.models.registry import DEFAULT_METHOD, SHIPPED_MODEL, load_model, make_propagator, resolve_preset, shipped_model_path
from colortrack.demo.synthetic import translated_texture
from colortrack.core.tracker import LabelTracker


def test_shipped_model_is_the_default_and_loads():
    assert DEFAULT_METHOD == SHIPPED_MODEL
    model = load_model(SHIPPED_MODEL, torch.device("cpu"))
    assert not model.training
    meta = json.loads((shipped_model_path() / "checkpoint.json").read_text())
    assert meta["train_config"]["data"] and meta["step"] > 0 and len(meta["color_centers"]) == meta["train_config"]["num_colors"]
    assert (shipped_model_path() / "model.safetensors").stat().st_size < 50 * 2**20


def test_the_shipped_model_never_trained_on_the_dev_frames_and_the_first_one_stays_loadable():
    from colortrack.defaults import FIRST_MODEL
    from pathlib import Path

    from colortrack.eval.protocol import TRAINING_FOLDERS
    from colortrack.models.registry import packaged_model_path
    from colortrack.train.checkpoint import read_meta

    shipped, first = read_meta(shipped_model_path()), read_meta(packaged_model_path(FIRST_MODEL))
    assert shipped["model_config"] == first["model_config"]
    assert {Path(folder).name for folder in shipped["train_config"]["data"]} == set(TRAINING_FOLDERS)
    assert any("davis" in folder for folder in first["train_config"]["data"])
    assert shipped["point_defaults"] == {"fade_below": 0.1} and "point_defaults" not in first
    new, old = (load_model(name, torch.device("cpu")).state_dict() for name in (SHIPPED_MODEL, FIRST_MODEL))
    assert any(not torch.equal(new[name], old[name]) for name in new)


@pytest.mark.parametrize("damage", ["drop", "extra", "reshape"])
def test_a_mismatched_weights_file_is_an_error(tmp_path, damage):
    folder = tmp_path / "model"
    shutil.copytree(shipped_model_path(), folder)
    weights = load_file(str(folder / "model.safetensors"))
    name = sorted(weights)[0]
    if damage == "drop":
        del weights[name]
    elif damage == "extra":
        weights["unexpected.weight"] = torch.zeros(1)
    else:
        weights[name] = torch.zeros(weights[name].numel() + 1)
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(InputError, match="does not match the model"):
        load_model(folder, torch.device("cpu"))


def test_shipped_model_tracks_a_translating_texture():
    clip = translated_texture(num_frames=4, height=96, width=96, shift=(0, 8))
    tracker = make_propagator(SHIPPED_MODEL, resolve_preset(None), torch.device("cpu"))
    assert isinstance(tracker, LabelTracker)
    first = torch.nn.functional.one_hot(torch.from_numpy(clip.masks[0]).long(), 2).permute(2, 0, 1).float().numpy()
    predicted = [p.argmax(0) for p in tracker.track(iter(clip.frames), first)]
    accuracy = (predicted[-1] == clip.masks[-1]).mean()
    assert accuracy > 0.9
