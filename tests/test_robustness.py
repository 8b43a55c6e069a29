"""Bad inputs on every command fail with one clear line and exit code 2; a full or read-only disk
does too; real bugs still raise; ``track`` skips what an identical earlier run finished."""

from __future__ import annotations

import dataclasses
import errno
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import scipy.io
from PIL import Image

from colortrack.cli.main import main
from colortrack.errors import ColortrackError, InputError, OutputError
from colortrack.io import atomic
from colortrack.io.atomic import atomic_write_text
from colortrack.io.masks import write_mask
from colortrack.io.video import write_frames_png, write_video
from colortrack.models.network import ColorizationNet, ModelConfig
from colortrack.demo.synthetic import make_video
from colortrack.train import checkpoint as ckpt
from colortrack.train.trainer import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ModelConfig(
    widths=(8, 16), blocks=(1, 1), strides=(1, 1), dilations=(1, 1), embed_dim=16, head_layers=2, head_width=16
)
H, W, T = 32, 48, 6


def _davis(root: Path, frames: np.ndarray, masks: list[np.ndarray], name: str = "seq") -> Path:
    write_frames_png(root / "JPEGImages" / "480p" / name, frames)
    for index, mask in enumerate(masks):
        write_mask(root / "Annotations" / "480p" / name / f"{index:05d}.png", mask)
    return root


def _checkpoint(folder: Path, model_config: ModelConfig) -> Path:
    """A checkpoint of TINY whose checkpoint.json claims ``model_config``."""
    meta = {"train_config": {}, "model_config": model_config.to_dict(), "color_centers": [[0.0, 0.0]] * 4}
    ckpt.save_checkpoint(folder, 1, ColorizationNet(TINY), meta, {})
    return folder


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    """Good and bad inputs of every kind, made once."""
    d = tmp_path_factory.mktemp("inputs")
    video = make_video(num_frames=T, height=H, width=W, num_objects=2, seed=4)
    write_video(d / "v.mp4", video.frames, video.fps)
    write_frames_png(d / "frames", video.frames)
    write_mask(d / "m.png", video.masks[0])
    (d / "afile").write_text("a file, not a folder")
    raw = (d / "m.png").read_bytes()
    (d / "trunc.png").write_bytes(raw[: len(raw) // 2])
    Image.fromarray(np.full((H, W), 300, np.uint16)).save(d / "big.png")
    Image.fromarray(np.full((H, W, 3), (1, 2, 3), np.uint8)).save(d / "rgb.png")
    write_mask(d / "small.png", np.zeros((16, 24), np.uint8))
    mp4 = (d / "v.mp4").read_bytes()
    (d / "trunc.mp4").write_bytes(mp4[: len(mp4) // 2])
    (d / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "notes.txt").write_text("not a video")
    container = av.open(str(d / "zero.mkv"), "w")  # a video stream and no frame
    stream = container.add_stream("libx264", rate=24)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    container.start_encoding()
    container.close()
    shutil.copytree(d / "frames", d / "cut_frames")
    frame = (d / "cut_frames" / "00002.png").read_bytes()
    (d / "cut_frames" / "00002.png").write_bytes(frame[: len(frame) // 3])
    (d / "empty").mkdir()
    (d / "ok.json").write_text(json.dumps({"points": [{"name": "a", "x": 10, "y": 10}]}))
    (d / "nan.json").write_text('{"points": [{"name": "a", "x": NaN, "y": 1}]}')
    (d / "far.csv").write_text("name,x,y\na,10,10\nb,100,5\n")
    (d / "huge.json").write_text('{"points": [{"name": "a", "x": 1%s, "y": 1}]}' % ("0" * 400))
    (d / "bad.csv").write_text("name,x,y\na,ten,10\n")
    _checkpoint(d / "other_shape", dataclasses.replace(TINY, embed_dim=8))
    _checkpoint(d / "broken", TINY)
    (d / "broken" / "checkpoints" / "step_000001" / ckpt.WEIGHTS).write_bytes(b"\x00" * 20)
    # DAVIS roots, each with one problem
    frames, masks = video.frames, list(video.masks)
    _davis(d / "davis_ok", frames, masks)
    _davis(d / "davis_fewer", frames, masks[:3])
    _davis(d / "davis_stray", frames, masks)
    write_mask(d / "davis_stray" / "Annotations" / "480p" / "seq" / "00009.png", masks[0])
    _davis(d / "davis_size", frames, masks[:4] + [np.zeros((16, 24), np.uint8)] + masks[5:])
    _davis(d / "davis_big", frames, masks)
    shutil.copy(d / "big.png", d / "davis_big" / "Annotations" / "480p" / "seq" / "00003.png")
    _davis(d / "davis_rgb", frames, masks)
    shutil.copy(d / "rgb.png", d / "davis_rgb" / "Annotations" / "480p" / "seq" / "00001.png")
    _davis(d / "davis_cut", frames, masks)
    shutil.copy(d / "trunc.png", d / "davis_cut" / "Annotations" / "480p" / "seq" / "00002.png")
    # JHMDB roots: a NaN joint, and joints for fewer frames than the clip has
    for name, pos in (("jhmdb_nan", np.full((2, 15, T), np.nan)), ("jhmdb_count", np.full((2, 15, T - 2), 5.0))):
        write_frames_png(d / name / "Rename_Images" / "run" / "clip", frames, start_index=1)
        (d / name / "joint_positions" / "run" / "clip").mkdir(parents=True)
        scipy.io.savemat(d / name / "joint_positions" / "run" / "clip" / "joint_positions.mat", {"pos_img": pos})
    # training data: one good frame folder; a folder holding only a corrupt video
    write_frames_png(d / "train_data" / "a", make_video(num_frames=12, height=32, width=32, seed=0).frames)
    (d / "bad_data").mkdir()
    shutil.copy(d / "noise.mp4", d / "bad_data" / "noise.mp4")
    # a run whose checkpoint holds another network than its config.json describes
    run = d / "run_other_shape"
    config = TrainConfig(data=[str(d / "train_data")], out=str(run), model=TINY, crop_size=32, cache_short_side=32, fps=24)
    (run).mkdir()
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    other = ColorizationNet(dataclasses.replace(TINY, embed_dim=8))
    meta = {"train_config": config.to_dict(), "model_config": other.config.to_dict(), "color_centers": [[0.0, 0.0]] * 16}
    ckpt.save_checkpoint(run, 3, other, meta, {})
    return d


def fails(capsys, argv: list, expected: str, warnings: bool = False) -> str:
    """Run the CLI in-process: exit code 2 and exactly one 'colortrack: error: ' line holding ``expected``
    (after 'warning: ' lines about skipped training videos, where ``warnings``)."""
    capsys.readouterr()
    code = main([str(arg) for arg in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = err.splitlines()
    if warnings:
        assert all(line.startswith("warning: ") for line in lines[:-1]), err
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("colortrack: error: "), err
    assert expected in lines[0], lines[0]
    return lines[0]


def track(d: Path, video: str, first: str, out: str = "out", *extra: str) -> list:
    option = "--points" if first.endswith((".json", ".csv", ".mat")) else "--mask"
    return ["track", d / video, option, d / first, "--out", d / out, "--quiet", *extra]


# --------------------------------------------------------------------------- every command, bad inputs

BAD_TRACK = [
    (("no.mp4", "m.png"), "no.mp4: no such file"),
    (("notes.txt", "m.png"), "notes.txt: unsupported extension"),
    (("noise.mp4", "m.png"), "noise.mp4: unreadable or corrupt video"),
    (("trunc.mp4", "m.png"), "trunc.mp4: corrupt video"),
    (("zero.mkv", "m.png"), "zero.mkv: "),
    (("empty", "m.png"), "empty: folder has no image files"),
    (("cut_frames", "m.png"), "00002.png: truncated PNG"),
    (("v.mp4", "no.png"), "no.png: no such mask file"),
    (("v.mp4", "trunc.png"), "trunc.png: corrupt or unreadable mask"),
    (("v.mp4", "small.png"), "small.png: mask is 24x16 but the video is 48x32"),
    (("v.mp4", "big.png"), "big.png: mask ids above 255"),
    (("v.mp4", "rgb.png"), "rgb.png: color (1,2,3) at x=0, y=0 is not in the DAVIS palette"),
    (("v.mp4", "nan.json"), "nan.json: point 'a' x: coordinate is nan"),
    (("v.mp4", "far.csv"), "far.csv: point 'b' at x=100, y=5 is outside the 48x32 frame"),
    (("v.mp4", "bad.csv"), "bad.csv: line 2: 'ten' is not a number"),
    (("v.mp4", "huge.json"), "huge.json: point 'a' x: coordinate 10000000000000000000... is too large"),
    (("v.mp4", "m.png", "afile"), "afile: output path exists and is not a folder"),
    (("v.mp4", "m.png", "afile/sub"), "afile: exists and is not a folder"),
    (("v.mp4", "ok.json", "afile/sub"), "afile: exists and is not a folder"),
]


@pytest.mark.parametrize("names, expected", BAD_TRACK, ids=[e for _, e in BAD_TRACK])
def test_track_bad_inputs(d, capsys, names, expected):
    fails(capsys, track(d, *names), expected)


@pytest.mark.parametrize(
    "method, expected",
    [
        ("nope", "--method: unknown method 'nope'"),
        ("other_shape", "checkpoint does not match the model: shape"),
        ("broken", "model.safetensors: unreadable weights"),
    ],
)
def test_track_bad_method_or_checkpoint(d, capsys, method, expected):
    spec = method if method == "nope" else str(d / method)
    fails(capsys, track(d, "v.mp4", "m.png", "out_m", "--method", spec), expected)
    fails(capsys, track(d, "v.mp4", "ok.json", "out_p", "--method", spec), expected)


@pytest.mark.parametrize(
    "root, expected",
    [
        ("nowhere", "nowhere: no such DAVIS folder"),
        ("afile", "afile: no such DAVIS folder"),
        ("davis_stray", "00009.png: sequence 'seq': no frame named 00009 for this mask"),
        ("davis_size", "00004.png: mask is 24x16, expected 48x32"),
        ("davis_cut", "00002.png: unreadable image"),
        ("davis_big", "00003.png: mask ids above 255"),
        ("davis_rgb", "00001.png: color (1,2,3)"),
    ],
)
def test_eval_davis_bad_inputs(d, tmp_path, capsys, root, expected):
    fails(capsys, ["eval", "davis", "--root", d / root, "--method", "identity", "--out", tmp_path / "o", "--quiet"], expected)


def test_eval_davis_checks_every_file_before_tracking(d, tmp_path, capsys):
    """A bad mask late in the dataset fails before any sequence is tracked."""
    fails(capsys, ["eval", "davis", "--root", d / "davis_size", "--method", "identity", "--out", tmp_path, "--quiet"], "00004.png")
    assert not (tmp_path / "seq").exists()


def test_eval_davis_other_commands_bad_inputs(d, tmp_path, capsys):
    root = ["--root", d / "davis_ok", "--quiet"]
    fails(capsys, ["eval", "davis", *root, "--method", "nope", "--out", tmp_path / "a"], "unknown method 'nope'")
    fails(capsys, ["eval", "davis", *root, "--method", "identity", "--out", d / "afile"], "afile: output path exists")
    fails(capsys, ["eval", "davis", *root, "--method", "identity", "--out", d / "afile" / "x"], "afile: exists and is not a folder")
    fails(capsys, ["eval", "davis", *root, "--sequences", "nope", "--out", tmp_path / "b"], "no sequence 'nope'")
    fails(capsys, ["eval", "davis", *root, "--method", d / "other_shape", "--out", tmp_path / "c"], "does not match the model")


@pytest.mark.parametrize(
    "root, expected",
    [
        ("afile", "afile: no Rename_Images/ folder"),
        ("jhmdb_nan", "joint_positions.mat: 'pos_img' has a NaN or infinite value"),
        ("jhmdb_count", "joint_positions.mat: has joints for 4 frames"),
    ],
)
def test_eval_jhmdb_bad_inputs(d, tmp_path, capsys, root, expected):
    fails(capsys, ["eval", "jhmdb", "--root", d / root, "--method", "identity", "--out", tmp_path, "--quiet"], expected)


def test_eval_colorize_bad_inputs(d, tmp_path, capsys):
    base = ["eval", "colorize", "--quiet", "--out", tmp_path / "o"]
    fails(capsys, [*base, "--root", d / "nowhere"], "nowhere: no such DAVIS folder")
    fails(capsys, [*base, "--root", d / "davis_fewer"], "6 frames but 3 masks")
    fails(capsys, [*base, "--root", d / "davis_ok", "--method", "nope"], "unknown method 'nope'")
    fails(capsys, [*base, "--root", d / "davis_ok", "--embedder", d / "nowhere"], "no such checkpoint")
    fails(capsys, [*base, "--root", d / "davis_ok", "--embedder", d / "other_shape"], "does not match the model")
    fails(capsys, ["eval", "colorize", "--quiet", "--root", d / "davis_ok", "--out", d / "afile"], "afile: output path exists")


def test_colorize_bad_inputs(d, tmp_path, capsys):
    ref = d / "frames" / "00000.png"
    base = ["colorize", "--quiet"]
    out = ["--out", tmp_path / "c.mp4"]
    fails(capsys, [*base, d / "noise.mp4", "--ref", ref, *out], "noise.mp4: unreadable or corrupt video")
    fails(capsys, [*base, d / "v.mp4", "--ref", d / "trunc.png", *out], "trunc.png: corrupt or unreadable image")
    fails(capsys, [*base, d / "v.mp4", "--ref", d / "no.png", *out], "no.png: no such file")
    fails(capsys, [*base, d / "v.mp4", "--ref", d / "small.png", *out], "small.png: reference is 24x16")
    fails(capsys, [*base, d / "v.mp4", "--ref", f"{ref}@99", *out], "frame 99 is past the video's last frame")
    fails(capsys, [*base, d / "v.mp4", "--ref", ref, "--instances", d / "big.png", *out], "big.png: mask ids above 255")
    fails(capsys, [*base, d / "v.mp4", "--ref", ref, "--embedder", d / "other_shape", *out], "does not match the model")
    fails(capsys, [*base, d / "v.mp4", "--ref", ref, "--out", d / "afile" / "c.mp4"], "afile: exists and is not a folder")
    fails(capsys, [*base, d / "v.mp4", "--ref", ref, *out, "--frames-dir", d / "afile"], "afile: exists and is not a folder")
    fails(capsys, [*base, d / "v.mp4", "--ref", ref, "--out", tmp_path / "c.avi"], "c.avi: cannot write '.avi' video")
    assert not (tmp_path / "c.mp4").exists()


def test_train_bad_inputs(d, tmp_path, capsys):
    tiny = ["--crop-size", "32", "--cache-short-side", "32", "--fps", "24", "--steps", "1", "--quiet", "--device", "cpu"]
    fails(capsys, ["train", "--data", d / "nowhere", "--out", tmp_path / "a", *tiny], "nowhere: no such file or folder")
    fails(capsys, ["train", "--data", d / "bad_data", "--out", tmp_path / "b", *tiny], "no usable training video",
          warnings=True)
    fails(capsys, ["train", "--data", d / "empty", "--out", tmp_path / "c", *tiny], "no video files or frame folders")
    fails(capsys, ["train", "--data", d / "train_data", "--out", d / "afile", *tiny], "afile: exists and is not a folder")
    fails(capsys, ["train", "--data", d / "train_data", "--out", tmp_path / "d", "--crop-size", "30"], "--crop-size: 30")
    fails(capsys, ["train", "--data", d / "train_data", "--out", tmp_path / "e", "--lr", "x:y"], "--lr: expected LR")
    fails(capsys, ["train", "--out", d / "run_other_shape", "--resume", "--quiet"], "checkpoint does not match the model")


def test_demo_into_a_file(d, capsys):
    fails(capsys, ["demo", "--out", d / "afile", "--quiet", "--method", "identity"], "afile: exists and is not a folder")
    fails(capsys, ["demo", "--out", d / "x", "--quiet", "--method", "nope"], "unknown method 'nope'")


def test_one_line_and_no_traceback_from_the_real_command(d, tmp_path):
    """The same through ``python -m colortrack``: stderr is one line, never a traceback."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "colortrack", *map(str, track(d, "v.mp4", "rgb.png", str(tmp_path / "o")))],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"colortrack: error: {d / 'rgb.png'}: color (1,2,3) at x=0, y=0 is not in the DAVIS palette"
    ]


# --------------------------------------------------------------------------- full disk, read-only, bugs


def _raise(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, __import__("os").strerror(code))

    return fail


def test_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")
    monkeypatch.setattr(Path, "write_text", _raise(errno.ENOSPC))
    with pytest.raises(OutputError, match="results.json: cannot write \\(No space left on device\\)"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES])
def test_track_on_a_full_or_read_only_disk_fails_with_one_line(d, tmp_path, capsys, monkeypatch, code):
    monkeypatch.setattr(Image.Image, "save", _raise(code))  # the mask PNGs
    line = fails(capsys, track(d, "v.mp4", "m.png", str(tmp_path / "o"), "--method", "identity"), "00000.png: cannot write")
    assert __import__("os").strerror(code) in line
    assert not [p for p in (tmp_path / "o" / "masks").iterdir()]  # no temporary file left behind


def test_a_full_disk_while_writing_the_video_or_a_checkpoint(d, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(atomic.os, "replace", _raise(errno.ENOSPC))
    fails(capsys, ["colorize", "--quiet", d / "v.mp4", "--ref", d / "frames" / "00000.png", "--out", tmp_path / "c.mp4"],
          "c.mp4: cannot write (No space left on device)")
    fails(capsys, ["train", "--data", d / "train_data", "--out", tmp_path / "run", "--crop-size", "32", "--cache-short-side",
                   "32", "--fps", "24", "--steps", "1", "--quiet", "--device", "cpu"], "cannot write (No space left on device)")
    assert not list(tmp_path.rglob("*.tmp*"))


def test_os_errors_outside_atomic_writes_are_one_line_at_the_cli(d, tmp_path, capsys, monkeypatch):
    """E.g. the append-only training log: caught at the CLI boundary, the file named."""
    import colortrack.train.trainer as trainer

    def full(path, row):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(trainer, "_append_log", full)
    fails(capsys, ["train", "--data", d / "train_data", "--out", tmp_path / "run", "--crop-size", "32", "--cache-short-side",
                   "32", "--fps", "24", "--steps", "1", "--log-every", "1", "--quiet", "--device", "cpu", "--kmeans-samples", "200"],
          f"{tmp_path / 'run' / 'log.csv'}: No space left on device")


def test_real_bugs_keep_their_traceback(d, tmp_path, monkeypatch):
    import colortrack.tasks.masks as pipeline

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(pipeline, "overlay_masks", bug)
    with pytest.raises(ZeroDivisionError):
        main([str(a) for a in track(d, "v.mp4", "m.png", str(tmp_path / "o"), "--method", "identity")])
    monkeypatch.setattr(pipeline, "write_mask", _raise(errno.ENOENT))  # not a "cannot write here" error
    with pytest.raises(FileNotFoundError):
        main([str(a) for a in track(d, "v.mp4", "m.png", str(tmp_path / "p"), "--method", "identity")])


def test_one_error_hierarchy():
    assert issubclass(OutputError, ColortrackError) and issubclass(InputError, ColortrackError)
    assert not issubclass(OutputError, InputError)


# --------------------------------------------------------------------------- re-runs of track


def _stamps(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_track_rerun_skips_a_complete_identical_run_and_redoes_otherwise(d, tmp_path, capsys):
    out = tmp_path / "o"
    argv = [str(a) for a in track(d, "v.mp4", "m.png", str(out), "--method", "identity")]
    assert main(argv) == 0
    first = _stamps(out)
    assert len([k for k in first if k.startswith("masks/")]) == T and "overlay.mp4" in first
    assert main(argv) == 0
    assert _stamps(out) == first  # nothing rewritten
    # an interrupted run (one mask and the overlay missing) is redone
    (out / "masks" / "00003.png").unlink()
    (out / "overlay.mp4").unlink()
    assert main(argv) == 0
    redone = _stamps(out)
    assert set(redone) == set(first) and all(redone[k] != first[k] for k in first)
    # another configuration is redone, and so is a changed input
    assert main(argv + ["--temperature", "0.5"]) == 0
    assert json.loads((out / "config.json").read_text())["track"]["affinity"]["temperature"] == 0.5
    assert _stamps(out)["masks/00000.png"] != redone["masks/00000.png"]
    # --no-overlay after a full run is complete already; a full run after --no-overlay is not
    before = _stamps(out)
    assert main(argv + ["--temperature", "0.5", "--no-overlay"]) == 0
    assert _stamps(out) == before


def test_track_rerun_after_an_interrupted_run_of_another_configuration(d, tmp_path, capsys, monkeypatch):
    """Masks left by a complete run A must not make an interrupted run B look complete."""
    import colortrack.tasks.masks as pipeline

    out = tmp_path / "o"
    argv = [str(a) for a in track(d, "v.mp4", "m.png", str(out), "--method", "identity", "--no-overlay")]
    assert main(argv) == 0  # run A
    written = []
    real = pipeline.write_mask

    def interrupted(path, mask):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(path)
        return real(path, mask)

    monkeypatch.setattr(pipeline, "write_mask", interrupted)
    assert main(argv + ["--temperature", "0.5"]) == 130  # run B, interrupted after 2 masks
    monkeypatch.undo()
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["00000.png", "00001.png"]
    before = _stamps(out)
    assert main(argv + ["--temperature", "0.5"]) == 0  # run B again: redone in full
    after = _stamps(out)
    assert len([k for k in after if k.startswith("masks/")]) == T and after["masks/00000.png"] != before["masks/00000.png"]


def test_track_points_rerun_skips_a_complete_identical_run(d, tmp_path, capsys):
    out = tmp_path / "o"
    argv = [str(a) for a in track(d, "v.mp4", "ok.json", str(out), "--method", "identity")]
    assert main(argv) == 0
    first = _stamps(out)
    assert set(first) == {"config.json", "keypoints.json", "overlay.mp4"}
    assert main(argv) == 0
    assert _stamps(out) == first
    assert "wrote 6 frames of points" in capsys.readouterr().out
    (out / "overlay.mp4").unlink()
    assert main(argv) == 0
    assert _stamps(out)["keypoints.json"] != first["keypoints.json"]
