"""The library's facade (colortrack.Tracker / colortrack.Colorizer): the command line's results,
every form of input (path, array, one-pass iterable), one error hierarchy, an instant start."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import colortrack
from colortrack.cli.main import main
from colortrack.demo.synthetic import make_video
from colortrack.errors import InputError
from colortrack.io.masks import read_mask, write_mask
from colortrack.io.video import read_image, write_frames_png

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 6-frame synthetic clip as lossless PNG frames (so path and array inputs are the same
    pixels), its first mask, its first frame as a colour reference and its points as JSON."""
    folder = tmp_path_factory.mktemp("api")
    video = make_video(num_frames=6, height=48, width=80, num_objects=2, points_per_object=2, seed=3)
    write_frames_png(folder / "frames", video.frames)
    write_mask(folder / "first.png", video.masks[0])
    write_frames_png(folder / "ref", video.frames[:1])
    points = [{"name": f"p{k}", "x": float(x), "y": float(y)} for k, (x, y) in enumerate(video.points[0])]
    (folder / "points.json").write_text(json.dumps({"points": points}))
    return folder, video


def _run(*args) -> None:
    assert main([str(arg) for arg in args] + ["--quiet"]) == 0


def test_masks_are_the_command_lines(clip, tmp_path):
    folder, video = clip
    _run("track", folder / "frames", "--mask", folder / "first.png", "--out", tmp_path, "--no-overlay")
    cli = np.stack([read_mask(path) for path in sorted((tmp_path / "masks").glob("*.png"))])
    tracker = colortrack.Tracker.pretrained()
    frames = list(tracker.track_masks(folder / "frames", folder / "first.png"))
    np.testing.assert_array_equal(colortrack.collect_masks(frames), cli)
    assert json.loads((tmp_path / "config.json").read_text())["track"] == tracker.settings()["track"]
    assert [frame.index for frame in frames] == list(range(6))
    assert frames[3].probabilities.shape == (3, 48, 80) and frames[3].ids == (0, 1, 2)
    np.testing.assert_array_equal(frames[3].confidence, frames[3].probabilities.max(axis=0))
    assert (cli[1:] == video.masks[1:]).mean() > 0.9  # it tracks


def test_points_are_the_command_lines(clip, tmp_path):
    folder, _ = clip
    _run("track", folder / "frames", "--points", folder / "points.json", "--out", tmp_path, "--no-overlay",
         "--method", "color", "--sigma", "3")
    saved = json.loads((tmp_path / "keypoints.json").read_text())
    tracked = colortrack.collect_points(
        colortrack.Tracker.pretrained("color", sigma=3).track_points(folder / "frames", folder / "points.json")
    )
    assert tracked.xy.shape == (6, 4, 2) and tracked.to_json() == saved


def test_points_keep_every_direction_of_the_embedding_masks_are_projected_as_the_command_line(clip, tmp_path):
    folder, _ = clip
    _run("track", folder / "frames", "--points", folder / "points.json", "--out", tmp_path, "--no-overlay")
    tracker = colortrack.Tracker.pretrained()
    pointer = tracker.for_points()
    assert (tracker.config.embed_dims, pointer.config.embed_dims, pointer.config.fine_weight) == (48, None, 100.0)
    assert pointer.propagator.embedder is tracker.propagator.embedder  # the network is loaded once
    assert json.loads((tmp_path / "config.json").read_text())["track"] == pointer.settings()["track"]
    saved = json.loads((tmp_path / "keypoints.json").read_text())
    assert colortrack.collect_points(tracker.track_points(folder / "frames", folder / "points.json")).to_json() == saved
    unprojected = colortrack.Tracker.pretrained(embed_dims=0)
    assert unprojected.for_points() is unprojected
    without = colortrack.Tracker.pretrained(fine_weight=0, embed_dims=0)
    assert colortrack.collect_points(without.track_points(folder / "frames", folder / "points.json")).to_json() != saved


def test_keyframes_are_the_command_lines(clip, tmp_path):
    folder, video = clip
    write_mask(tmp_path / "k4.png", video.masks[4])
    _run("track", folder / "frames", "--mask", folder / "first.png", "--mask", f"{tmp_path / 'k4.png'}@4",
         "--out", tmp_path / "out", "--no-overlay", "--method", "color")
    cli = np.stack([read_mask(path) for path in sorted((tmp_path / "out" / "masks").glob("*.png"))])
    tracker = colortrack.Tracker.pretrained("color")
    one_pass = iter(list(video.frames))
    library = colortrack.collect_masks(tracker.track_masks(one_pass, {0: video.masks[0], 4: tmp_path / "k4.png"}))
    np.testing.assert_array_equal(library, cli)
    np.testing.assert_array_equal(library[4], video.masks[4])


def test_colors_are_the_command_lines(clip, tmp_path):
    folder, video = clip
    _run("colorize", folder / "frames", "--ref", folder / "ref" / "00000.png", "--out", tmp_path / "out.mp4",
         "--frames-dir", tmp_path / "png")
    cli = np.stack([read_image(path) for path in sorted((tmp_path / "png").glob("*.png"))])
    colorizer = colortrack.Colorizer.pretrained()
    library = colortrack.collect_colors(colorizer.colorize(folder / "frames", folder / "ref" / "00000.png"))
    np.testing.assert_array_equal(library, cli)
    saved = json.loads((tmp_path / "out.json").read_text())
    assert {key: saved[key] for key in colorizer.settings()} == colorizer.settings()
    assert colorizer.settings()["refiner"] == "refiner" and colorizer.config.short_side == 240


def test_every_input_form_gives_the_same_masks(clip):
    folder, video = clip
    tracker = colortrack.Tracker.pretrained("color")
    by_path = colortrack.collect_masks(tracker.track_masks(folder / "frames", folder / "first.png"))
    by_array = colortrack.collect_masks(tracker.track_masks(video.frames, video.masks[0]))
    one_pass = colortrack.collect_masks(tracker.track_masks(iter(list(video.frames)), {0: video.masks[0]}))
    gray = colortrack.collect_masks(tracker.track_masks(video.frames[..., 0], video.masks[0]))
    np.testing.assert_array_equal(by_array, by_path)
    np.testing.assert_array_equal(one_pass, by_path)
    assert gray.shape == by_path.shape


@pytest.mark.parametrize("method", ["propagate", "reference"])
def test_a_one_pass_iterable_is_colorized(clip, method):
    """A generator is read once: every frame comes out, the same as from an array or a path."""
    folder, video = clip
    colorizer = colortrack.Colorizer.pretrained("gray", method, refine=False)
    refs = {0: video.frames[0], 4: folder / "frames" / "00004.png"}
    consumed = []

    def generator():
        for frame in video.frames:
            consumed.append(1)
            yield frame

    one_pass = colortrack.collect_colors(colorizer.colorize(generator(), refs))
    assert len(consumed) == 6 and one_pass.shape == (6, 48, 80, 3)
    np.testing.assert_array_equal(one_pass, colortrack.collect_colors(colorizer.colorize(video.frames, refs)))
    np.testing.assert_array_equal(one_pass, colortrack.collect_colors(colorizer.colorize(folder / "frames", refs)))
    np.testing.assert_array_equal(one_pass[[0, 4]], video.frames[[0, 4]])  # references come back exactly


@pytest.mark.parametrize("refs, held_at_first_output", [({0: 0}, 1), ({3: 3}, 4), ({0: 0, 5: 5}, 6)])
def test_colorization_streams(clip, refs, held_at_first_output):
    """Frames are read as they are coloured: only those up to the earliest reference (and, from a
    one-pass source, up to the last one) are read before the first frame comes out."""
    _, video = clip
    colorizer = colortrack.Colorizer.pretrained("gray", refine=True)
    consumed = []

    def generator():
        for frame in video.frames:
            consumed.append(1)
            yield frame

    colors = colorizer.colorize(generator(), {t: video.frames[index] for t, index in refs.items()})
    next(colors)
    assert len(consumed) == held_at_first_output
    assert len(list(colors)) == 5 and len(consumed) == 6


def test_library_defaults_are_the_command_lines():
    from colortrack.cli.colorize import overrides, short_side
    from colortrack.cli.main import build_parser
    from colortrack.core.tracker import PRESETS
    from colortrack.defaults import PRESET_NAMES
    from colortrack.tasks.colorize import ColorizeConfig, colorize_config

    assert set(PRESETS) == set(PRESET_NAMES)
    args = build_parser().parse_args(["colorize", "v.mp4", "--ref", "r.png", "--out", "o.mp4"])
    cli = ColorizeConfig.for_method(args.method, short_side=short_side(args), **overrides(args))
    assert colorize_config() == cli
    assert cli.affinity.temperature != ColorizeConfig().affinity.temperature  # the model's, not the gray default
    gray = build_parser().parse_args(["colorize", "v.mp4", "--ref", "r.png", "--out", "o.mp4", "--embedder", "gray"])
    assert colorize_config(embedder="gray") == ColorizeConfig.for_method(
        "propagate", short_side=short_side(gray), **overrides(gray)
    )
    assert colorize_config(embedder="gray").short_side is None


def test_clear_errors(clip):
    folder, video = clip
    tracker = colortrack.Tracker.pretrained("identity")
    with pytest.raises(InputError, match="mask is 80x40 but the video is 80x48"):
        tracker.track_masks(video.frames, video.masks[0][:40])
    with pytest.raises(InputError, match="out of range"):
        list(tracker.track_masks(video.frames, {0: video.masks[0], 9: video.masks[3]}))
    with pytest.raises(InputError, match="whole numbers"):
        tracker.track_masks(video.frames, {"3": video.masks[3]})
    with pytest.raises(InputError, match="uint8"):
        list(tracker.track_masks(video.frames.astype(np.float32), video.masks[0]))
    with pytest.raises(InputError, match="no frames"):
        tracker.track_masks(iter([]), video.masks[0])
    with pytest.raises(InputError, match="frame 2 is 40x48"):
        list(tracker.track_masks([video.frames[0], video.frames[1], video.frames[2][:, :40]], video.masks[0]))
    with pytest.raises(InputError, match="unknown tracking setting"):
        colortrack.Tracker.pretrained("identity", temprature=0.1)
    with pytest.raises(InputError, match="unknown colorization setting"):
        colortrack.Colorizer.pretrained("gray", refine=False, input_height=240)
    with pytest.raises(InputError, match="past the video's last frame"):
        colortrack.Colorizer.pretrained("gray", refine=False).colorize(video.frames, {9: video.frames[0]})
    with pytest.raises(InputError, match="outside the frame|outside"):
        tracker.track_points(video.frames, {"far": (500.0, 5.0)})


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "; import sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("command", ["", "track", "eval", "colorize", "embed", "demo", "report", "app", "shards"])
def test_the_command_line_starts_without_torch(command):
    """``colortrack --help`` and argument errors must not wait for torch, OpenCV, PyAV or matplotlib."""
    code = f"import colortrack, colortrack.cli.main as m; m.build_parser({command!r})"
    heavy = {"torch", "cv2", "av", "matplotlib"} & _modules_after(code)
    assert not heavy, f"building the parser of {command or 'colortrack'} imported {sorted(heavy)}"


def test_tracking_masks_does_not_load_the_colorizer():
    """``colortrack track --mask`` starts without colourization's modules (scipy among them)."""
    code = (
        "import colortrack.cli.track as t, colortrack.cli.options as o, colortrack.tasks.masks; "
        "t.keyframe_paths(['m.png@3'], '--mask'); colortrack.Tracker.pretrained('model')"
    )
    assert "colortrack.tasks.colorize" not in _modules_after("import colortrack; " + code)


def test_the_facade_loads_on_first_use():
    assert "torch" not in _modules_after("import colortrack, colortrack.api")
    assert "torch" in _modules_after("import colortrack; colortrack.Tracker.pretrained('identity')")


def test_the_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "track_and_colorize.py"), str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "tracked 12 frames" in result.stdout and "colorized 12 frames" in result.stdout
    assert len(list(tmp_path.glob("*.png"))) == 12 and (tmp_path / "colorized.mp4").is_file()


def test_a_checkpoint_carries_its_own_point_defaults_and_options_still_win(tmp_path):
    import shutil

    from colortrack.api import Tracker
    from colortrack.models.registry import shipped_model_path

    folder = tmp_path / "ckpt"
    shutil.copytree(shipped_model_path(), folder)
    meta = json.loads((folder / "checkpoint.json").read_text())
    (folder / "checkpoint.json").write_text(json.dumps({**meta, "point_defaults": {"fade_below": 0.05}}))
    assert Tracker.pretrained(str(folder)).points.fade_below == 0.05
    assert Tracker.pretrained(str(folder), fade_below=0.3).points.fade_below == 0.3
    assert Tracker.pretrained("flow").points.fade_below == Tracker.pretrained("identity").points.fade_below
    (folder / "checkpoint.json").write_text(json.dumps({**meta, "point_defaults": {"fade": 0.05}}))
    with pytest.raises(InputError, match="point_defaults"):
        Tracker.pretrained(str(folder))
