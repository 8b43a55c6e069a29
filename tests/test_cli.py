"""The command line end to end, on generated videos and a generated DAVIS-layout dataset."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from colortrack.cli.main import main
from colortrack.errors import InputError
from colortrack.io.davis import write_sequence
from colortrack.io.masks import read_mask, write_mask
from colortrack.io.video import VideoReader, write_frames_png, write_video
from colortrack.demo.synthetic import make_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    video = make_video(num_frames=10, height=64, width=96, num_objects=2, seed=4)
    write_video(folder / "video.mp4", video.frames, video.fps)
    write_mask(folder / "first.png", video.masks[0])
    write_mask(folder / "sixth.png", video.masks[5])
    return folder, video


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory):
    """Two sequences in the DAVIS layout: one DAVIS-2016 style (0/255), one with two palette ids."""
    root = tmp_path_factory.mktemp("davis")
    for name, objects, seed in (("alpha", 1, 1), ("beta", 2, 2)):
        video = make_video(num_frames=8, height=48, width=64, num_objects=objects, seed=seed)
        write_sequence(root, name, video.frames, video.masks)
    return root


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "colortrack", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_track_writes_native_size_masks_and_an_overlay(clip, tmp_path):
    folder, video = clip
    assert main(["track", str(folder / "video.mp4"), "--mask", str(folder / "first.png"), "--out", str(tmp_path), "--quiet"]) == 0
    masks = sorted((tmp_path / "masks").glob("*.png"))
    assert [path.name for path in masks] == [f"{index:05d}.png" for index in range(10)]
    assert read_mask(masks[-1]).shape == (64, 96)
    np.testing.assert_array_equal(read_mask(masks[0]), video.masks[0])
    assert VideoReader(tmp_path / "overlay.mp4").info.num_frames == 10
    assert json.loads((tmp_path / "config.json").read_text())["method"] == "model"


def test_track_from_two_keyframes_keeps_both_annotations(clip, tmp_path):
    folder, video = clip
    args = ["track", str(folder / "video.mp4"), "--mask", str(folder / "first.png"), "--mask", f"{folder / 'sixth.png'}@5"]
    assert main([*args, "--out", str(tmp_path), "--quiet", "--method", "color", "--no-overlay"]) == 0
    masks = sorted((tmp_path / "masks").glob("*.png"))
    assert len(masks) == 10
    np.testing.assert_array_equal(read_mask(masks[0]), video.masks[0])
    np.testing.assert_array_equal(read_mask(masks[5]), video.masks[5])
    assert set(json.loads((tmp_path / "config.json").read_text())["inputs"]["keyframes"]) == {"0", "5"}


@pytest.mark.parametrize("method", ["identity", "flow", "color"])
def test_eval_davis_writes_predictions_and_results(davis_root, tmp_path, method):
    out = tmp_path / method
    assert main(["eval", "davis", "--root", str(davis_root), "--method", method, "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert {"J&F", "J", "F", "J-Recall", "J-Decay", "sequences", "seconds_per_frame"} <= set(results)
    assert [row["sequence"] for row in results["sequences"]] == ["alpha", "beta", "beta"]
    assert len(list((out / "beta").glob("*.png"))) == 8
    # the results are the scores of the written predictions; identity's stand still, flow's follow the motion
    predicted = _davis_scores(davis_root, lambda seq: [read_mask(p) for p in sorted((out / seq.name).glob("*.png"))])
    standing = _davis_scores(davis_root, lambda seq: [seq.first_mask()] * len(seq))
    for key in ("J&F", "J", "F"):
        assert results[key] == pytest.approx(predicted[key])
    assert results["J&F"] == pytest.approx((results["J"] + results["F"]) / 2)
    if method == "identity":
        assert results["J&F"] == pytest.approx(standing["J&F"])
    if method == "flow":
        assert results["J&F"] > standing["J&F"] + 5


def _davis_scores(root, predict) -> dict:
    """The summary of DAVIS scores of ``predict(sequence)`` (a list of id masks) on every sequence."""
    from colortrack.eval.metrics.davis import evaluate_sequence, summarize
    from colortrack.io.davis import DavisDataset

    scores = []
    for sequence in DavisDataset(root).sequences:
        scores.extend(evaluate_sequence(sequence.name, np.stack(predict(sequence)), sequence.read_masks()))
    return summarize(scores).to_json()


def test_eval_identity_scores_a_static_video_perfectly(tmp_path):
    root = tmp_path / "davis"
    video = make_video(num_frames=5, height=32, width=32, num_objects=1, seed=0)
    write_frames_png(root / "JPEGImages" / "480p" / "still", np.repeat(video.frames[:1], 5, axis=0))
    for index in range(5):
        write_mask(root / "Annotations" / "480p" / "still" / f"{index:05d}.png", video.masks[0])
    assert main(["eval", "davis", "--root", str(root), "--method", "identity", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["J&F"] == pytest.approx(100.0)


def test_eval_rerun_skips_finished_sequences(davis_root, tmp_path):
    args = ["eval", "davis", "--root", str(davis_root), "--method", "identity", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    first = json.loads((tmp_path / "results.json").read_text())
    marker = tmp_path / "alpha" / "00003.png"
    stamp = marker.stat().st_mtime_ns
    assert main(args) == 0
    assert marker.stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "results.json").read_text())["J&F"] == first["J&F"]


def test_eval_refuses_to_mix_configurations(davis_root, tmp_path):
    base = ["eval", "davis", "--root", str(davis_root), "--out", str(tmp_path), "--quiet", "--sequences", "alpha"]
    assert main(base + ["--method", "identity"]) == 0
    result = run_cli(*base, "--method", "flow")
    assert result.returncode == 2
    assert "another configuration" in result.stderr


@pytest.mark.parametrize(
    "make_args, expected",
    [
        (lambda d, c: ["track", d / "missing.mp4", "--mask", c / "first.png", "--out", d / "o"], "missing.mp4"),
        (lambda d, c: ["track", c / "video.mp4", "--mask", d / "missing.png", "--out", d / "o"], "missing.png"),
        (lambda d, c: ["track", d / "corrupt.mp4", "--mask", c / "first.png", "--out", d / "o"], "corrupt.mp4"),
        (lambda d, c: ["track", d / "empty", "--mask", c / "first.png", "--out", d / "o"], "empty"),
        (lambda d, c: ["track", c / "video.mp4", "--mask", d / "small.png", "--out", d / "o"], "small.png: mask is 32x16 but the video is 96x64"),
        (lambda d, c: ["track", c / "video.mp4", "--mask", c / "first.png", "--out", d / "o", "--method", "nope"], "unknown method 'nope'"),
        (lambda d, c: ["track", c / "video.mp4", "--mask", c / "first.png", "--out", d / "afile"], "afile: output path exists and is not a folder"),
        (lambda d, c: ["eval", "davis", "--root", d / "nodavis", "--out", d / "o"], "nodavis"),
        (lambda d, c: ["track", c / "video.mp4", "--mask", f"{c / 'sixth.png'}@10", "--out", d / "o"], "sixth.png: frame index 10 is out of range: the video has frames 0..9"),
        (lambda d, c: ["track", c / "video.mp4", "--mask", c / "first.png", "--mask", f"{d / 'small.png'}@4", "--out", d / "o"], "small.png: mask is 32x16 but the video is 96x64"),
        (lambda d, c: ["track", c / "video.mp4", "--mask", c / "first.png", "--mask", f"{c / 'sixth.png'}@0", "--out", d / "o"], "frame 0 is already annotated by"),
        (lambda d, c: ["track", c / "video.mp4", "--mask", f"{c / 'sixth.png'}@x", "--out", d / "o"], "is not a whole number"),
    ],
)
def test_bad_input_fails_with_one_clear_line(clip, tmp_path, make_args, expected):
    folder, _ = clip
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    write_mask(tmp_path / "small.png", np.zeros((16, 32), np.uint8))
    result = run_cli(*make_args(tmp_path, folder))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("colortrack: error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_command_line_overrides_the_preset():
    from colortrack.cli.main import build_parser
    from colortrack.cli.options import track_config

    args = build_parser().parse_args(
        ["track", "v.mp4", "--mask", "m.png", "--out", "o", "--preset", "paper", "--topk", "5", "--radius", "0", "--recent", "7", "--first-frame", "keep",
         "--anchors", "global"]
    )
    config = track_config(args)
    assert (config.affinity.topk, config.affinity.radius, config.affinity.temperature) == (5, None, 0.5)
    assert (config.memory.recent, config.memory.keep_first, config.memory.global_anchors) == (7, True, True)
    assert not track_config(build_parser().parse_args(["track", "v.mp4", "--mask", "m.png", "--out", "o"])).memory.global_anchors


def test_fine_weight_and_projection_come_with_the_preset_and_points_keep_every_direction():
    from colortrack.cli.main import build_parser
    from colortrack.cli.options import track_config

    def config(*extra):
        return track_config(build_parser().parse_args(["track", "v.mp4", "--mask", "m.png", "--out", "o", *extra]))

    assert (config().fine_weight, config().embed_dims, config().for_points().embed_dims) == (100.0, 48, None)
    assert (config("--preset", "quality").fine_weight, config("--preset", "quality").embed_dims) == (100.0, None)
    assert (config("--fine-weight", "0", "--embed-dims", "0").fine_weight, config("--embed-dims", "0").embed_dims) == (0.0, None)
    assert config("--embed-dims", "32").embed_dims == 32
    assert config("--preset", "paper").fine_weight == 0.0
    assert config("--method", "color", "--preset", "default").fine_weight == 0.0
    with pytest.raises(InputError, match="--fine-weight.*'color'"):
        config("--method", "color", "--fine-weight", "5")
    with pytest.raises(InputError, match="embed_dims"):
        config("--embed-dims", "-1")


def test_input_height_is_an_old_name_of_short_side():
    from colortrack.cli.main import build_parser
    from colortrack.cli.options import track_config

    base = ["track", "v.mp4", "--mask", "m.png", "--out", "o"]
    assert track_config(build_parser().parse_args(base)).short_side == 240
    assert track_config(build_parser().parse_args([*base, "--short-side", "0"])).short_side is None
    assert track_config(build_parser().parse_args([*base, "--input-height", "360"])).short_side == 360


def test_fusion_options_override_the_preset_and_the_library_agrees():
    from colortrack.cli.main import build_parser
    from colortrack.cli.options import track_config
    from colortrack.models.registry import track_config as library_config

    base = ["track", "v.mp4", "--mask", "m.png", "--out", "o"]
    plain = track_config(build_parser().parse_args(base))
    assert (plain.flip, plain.extra_short_sides) == (False, ())
    fused = track_config(build_parser().parse_args([*base, "--flip", "on", "--extra-short-sides", "360", "480"]))
    assert (fused.flip, fused.extra_short_sides) == (True, (360, 480))
    assert fused == library_config(flip=True, extra_short_sides=[360, 480])
    assert track_config(build_parser().parse_args([*base, "--topk", "5"])).flip is False


def test_the_command_line_lets_idle_threads_sleep(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "unset below; restored after the test")
    monkeypatch.delenv("OMP_WAIT_POLICY")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
