"""The demo's motion measure: coordinate labels through a propagator against the scene's known motion."""

import json

import cv2
import numpy as np
import pytest

from colortrack.cli.main import main
from colortrack.demo.scene import render_scene
from colortrack.errors import InputError
from colortrack.eval.motion import carried_motion, carried_positions, coordinate_labels
from colortrack.models.baselines import IdentityPropagator

SIZE, FRAMES = (72, 128), 6


@pytest.fixture(scope="module")
def scene():
    return render_scene(SIZE, FRAMES)


class SceneWarp:
    """A propagator that moves each object's labels from the reference to the target frame as the
    scene does (``own=True``) or by its centre's displacement alone (``own=False``)."""

    def __init__(self, scene, own: bool):
        self.scene, self.own = scene, own
        self.times = np.linspace(0.0, 1.0, scene.video.num_frames)

    def _index(self, frame):
        return next(t for t, known in enumerate(self.scene.video.frames) if np.array_equal(known, frame))

    def track(self, frames, first_labels, pinned=()):
        reference, target = (self._index(frame) for frame in frames)
        ys, xs = np.mgrid[0 : SIZE[0], 0 : SIZE[1]].astype(np.float64)
        source = np.stack([xs, ys], axis=-1)
        for obj in self.scene.objects:
            inside = self.scene.video.masks[target] == obj.obj_id
            xy = source[inside]
            s, r = self.times[target], self.times[reference]
            shift = obj.path.center(s, SIZE) - obj.path.center(r, SIZE)
            source[inside] = obj.forward(obj.backward(xy, s, SIZE), r, SIZE) if self.own else xy - shift
        maps = source.astype(np.float32)
        warped = [cv2.remap(channel, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for channel in first_labels]
        yield first_labels
        yield np.stack(warped)


def test_coordinate_labels_are_a_distribution_and_identity_gives_the_pixel_grid(scene):
    labels = coordinate_labels(*SIZE)
    assert labels.shape == (4, *SIZE) and np.allclose(labels.sum(axis=0), 1.0)
    frames = scene.video.frames
    source = carried_positions(IdentityPropagator(), frames[0], frames[3])
    ys, xs = np.mgrid[0 : SIZE[0], 0 : SIZE[1]]
    assert np.abs(source - np.stack([xs, ys])).max() < 1e-3


@pytest.mark.parametrize("gap", [1, 3])
def test_true_motion_is_carried_whole_and_translation_alone_carries_none_of_the_turn(scene, gap):
    exact = {row.name: row for row in carried_motion(SceneWarp(scene, own=True), scene, gap)}
    shifted = {row.name: row for row in carried_motion(SceneWarp(scene, own=False), scene, gap)}
    assert set(exact) == {"astronaut", "ball", "cat"}
    for name, row in exact.items():
        assert row.pixels > 100 and row.own_motion > 0.1
        assert row.carried == pytest.approx(1.0, abs=0.02) and row.error < 0.05
        assert shifted[name].carried == pytest.approx(0.0, abs=0.02)
    assert shifted["ball"].error > 0.5 * exact["ball"].own_motion


def test_eval_motion_command_writes_results_and_refuses_bad_gaps(tmp_path, capsys):
    assert main(["eval", "motion", "--method", "identity", "--gaps", "4", "--out", str(tmp_path), "--quiet"]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [row["name"] for row in rows] == ["astronaut", "ball", "cat"] and {row["gap"] for row in rows} == {4}
    assert json.loads((tmp_path / "config.json").read_text())["method"] == "identity"
    assert rows[1]["error"] > 5.0  # identity leaves the ball where it was
    for gaps in ("0", "x"):
        assert main(["eval", "motion", "--method", "identity", "--gaps", gaps, "--quiet"]) != 0
        assert "--gaps" in capsys.readouterr().err
