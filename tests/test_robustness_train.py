"""``colortrack train`` killed with SIGKILL at a random moment resumes from its last checkpoint,
nothing corrupted, to the weights of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from colortrack.cli.main import main
from colortrack.io.video import write_frames_png
from colortrack.demo.synthetic import make_video
from colortrack.train import checkpoint as ckpt
from colortrack.train.trainer import _trim_log

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 40


def tiny_args(data: Path, out: Path) -> list[str]:
    return [
        "train", "--data", str(data), "--out", str(out), "--model", "small", "--crop-size", "32", "--batch-size", "2",
        "--cache-short-side", "32", "--fps", "24", "--num-colors", "4", "--kmeans-samples", "200",
        "--steps", str(STEPS), "--checkpoint-every", "1", "--keep-checkpoints", "3", "--log-every", "1",
        "--device", "cpu", "--quiet",
    ]


def run_cli(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "colortrack", *args], env=env, stderr=subprocess.PIPE, text=True, **kwargs)


def test_sigkill_at_a_random_moment_then_resume(tmp_path):
    data = tmp_path / "data"
    write_frames_png(data / "a", make_video(num_frames=12, height=32, width=32, seed=0).frames)
    run = tmp_path / "run"
    delay = random.Random().uniform(0.0, 0.4)
    process = run_cli(tiny_args(data, run))
    deadline = time.monotonic() + 120
    while ckpt.latest_checkpoint(run) is None:
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, f"the run ended before the kill (delay {delay:.2f} s)"

    # every complete checkpoint loads; an incomplete one (no checkpoint.json) is ignored
    complete = [p for p in (run / ckpt.CHECKPOINTS).iterdir() if (p / ckpt.META).is_file()]
    assert complete, f"delay {delay:.2f} s"
    for folder in complete:
        ckpt.load_embedder(folder)
        assert ckpt.load_training_state(folder)["step"] == ckpt.read_meta(folder)["step"]
    latest = ckpt.latest_checkpoint(run)
    killed_at = ckpt.read_meta(latest)["step"]
    assert killed_at < STEPS

    resumed = run_cli([*tiny_args(data, run), "--resume"])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    final = ckpt.latest_checkpoint(run)
    assert ckpt.read_meta(final)["step"] == STEPS
    ckpt.load_embedder(run)
    steps = [int(row.split(",")[0]) for row in (run / "log.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, STEPS + 1)), f"log.csv after a kill at step {killed_at}"

    # the same weights as an uninterrupted run (run here, in-process, one thread as the children)
    whole = tmp_path / "whole"
    assert main(tiny_args(data, whole)) == 0
    expected = load_file(str(ckpt.latest_checkpoint(whole) / ckpt.WEIGHTS))
    actual = load_file(str(final / ckpt.WEIGHTS))
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-6, msg=f"{name} (killed at {killed_at})")


@pytest.mark.parametrize(
    "text",
    ["", "step,lo", "step,loss,lr,clips_per_s,elapsed\n1,0.5,0.001,2.0,0.1\n2,0.4", "step,loss,lr,clips_per_s,elapsed\n1,0.5,0.001,2.0,0.1\n9,0.4,0.001,2.0,0.1\n"],
)
def test_log_cut_by_a_kill_is_repaired_on_resume(tmp_path, text):
    log = tmp_path / "log.csv"
    log.write_text(text)
    _trim_log(log, 1)
    lines = log.read_text().splitlines()
    assert lines[0] == "step,loss,lr,clips_per_s,elapsed"
    assert all(len(line.split(",")) == 5 and int(line.split(",")[0]) <= 1 for line in lines[1:])
