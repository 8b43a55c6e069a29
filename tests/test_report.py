"""The HTML report (rendered in headless Chromium), its statistics, and the embedding video."""

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colortrack.cli.main import main
from colortrack.tasks.embed import PCAProjection, side_by_side
from colortrack.io.video import VideoReader, write_video
from colortrack.eval.report import failure_table, odds_ratio, time_profile
from colortrack.demo.synthetic import make_video

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# ----------------------------------------------------------------------------- statistics


def test_odds_ratio_of_a_hand_computed_table():
    # a d / b c = 20 * 15 / (10 * 5) = 6; SE = sqrt(1/20 + 1/10 + 1/5 + 1/15) = 0.645497
    result = odds_ratio(20, 10, 5, 15)
    assert result.ratio == pytest.approx(6.0)
    se = math.sqrt(1 / 20 + 1 / 10 + 1 / 5 + 1 / 15)
    assert se == pytest.approx(0.645497, abs=1e-6)
    assert result.low == pytest.approx(6.0 * math.exp(-1.96 * se))  # 1.6932
    assert result.high == pytest.approx(6.0 * math.exp(1.96 * se))  # 21.261
    assert result.low == pytest.approx(1.6932, abs=1e-3) and result.high == pytest.approx(21.261, abs=1e-2)
    assert not result.corrected and result.table == ((20, 10), (5, 15))


def test_odds_ratio_adds_one_half_to_every_cell_when_one_is_zero():
    result = odds_ratio(0, 5, 5, 5)
    assert result.corrected
    assert result.ratio == pytest.approx(0.5 * 5.5 / (5.5 * 5.5))
    se = math.sqrt(1 / 0.5 + 3 / 5.5)
    assert result.high == pytest.approx(result.ratio * math.exp(1.96 * se))


def test_failure_table_counts_frames_against_the_median_error():
    j = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.95])
    errors = np.array([9.0, 1.0, 2.0, 8.0, 7.0, 0.5])  # median 4.5: frames 0, 3, 4 fail
    # track fail (J < 0.5): frames 0, 1, 4 -> a = {0, 4}, b = {1}, c = {3}, d = {2, 5}
    assert failure_table(j, errors) == (2, 1, 1, 2)


def test_time_profile_bins_normalised_time():
    profile = time_profile([np.linspace(1, 0, 11), np.ones(3)], bins=2)
    # sequence 1: bin 0 = t < 0.5 -> values 1.0 .. 0.6 (mean 0.8), bin 1 -> 0.5 .. 0 (0.25)
    # sequence 2: positions 0, 0.5, 1 -> bin 0 = [1], bin 1 = [1, 1]
    np.testing.assert_allclose(profile, [(0.8 + 1) / 2, (0.25 + 1) / 2])


# ----------------------------------------------------------------------------- PCA colours


def test_pca_gives_one_embedding_the_same_colour_in_every_frame():
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(16, 6, 7)), rng.normal(size=(16, 6, 7))
    special = rng.normal(size=16) * 3
    first[:, 1, 2] = special
    second[:, 5, 0] = special  # the same embedding elsewhere in another frame
    samples = np.concatenate([f.reshape(16, -1).T for f in (first, second)])
    projection = PCAProjection.fit(samples)
    a, b = projection.project(first), projection.project(second)
    assert a.shape == (6, 7, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a[1, 2], b[5, 0])
    # the projection uses all three channels: the colours vary
    assert len({tuple(c) for c in a.reshape(-1, 3)}) > 10
    # a refit on the same samples is identical (deterministic signs)
    np.testing.assert_array_equal(PCAProjection.fit(samples).project(first), a)


def test_side_by_side_puts_the_upsampled_colours_right_of_the_frame():
    frame = np.zeros((16, 24, 3), np.uint8)
    colors = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = side_by_side(frame, colors)
    assert out.shape == (16, 48, 3)
    np.testing.assert_array_equal(out[0, 24], colors[0, 0])
    np.testing.assert_array_equal(out[15, 47], colors[1, 2])


def test_embed_writes_frames_and_embeddings_side_by_side(tmp_path):
    video = make_video(num_frames=6, height=48, width=64, num_objects=1, seed=3)
    write_video(tmp_path / "clip.mp4", video.frames, video.fps)
    out = tmp_path / "embed.mp4"
    assert main(["embed", str(tmp_path / "clip.mp4"), "--out", str(out), "--quiet"]) == 0
    reader = VideoReader(out)
    assert reader.info.num_frames == 6
    assert (reader.info.height, reader.info.width) == (48, 128)


# ----------------------------------------------------------------------------- the report


@pytest.fixture(scope="module")
def two_evals(tmp_path_factory, davis_root):
    """The generated dataset evaluated with identity and flow, and their report."""
    base, root = tmp_path_factory.mktemp("report"), davis_root
    dirs = []
    for method in ("identity", "flow"):
        out = base / method
        assert main(["eval", "davis", "--root", str(root), "--method", method, "--out", str(out), "--quiet"]) == 0
        dirs.append(out)
    report = base / "report.html"
    assert main(["report", *map(str, dirs), "--out", str(report), "--color-step", "2", "--quiet"]) == 0
    return base, dirs, report


def test_report_is_self_contained_with_tables_plots_and_caches(two_evals):
    _, dirs, report = two_evals
    page = report.read_text()
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network
    assert page.count("<tr class='seq'>") == 2
    assert page.count("src='data:image/png;base64,") == 3  # time, attributes, odds ratios
    assert page.count("src='data:image/jpeg;base64,") == 2  # one contact sheet per sequence
    cache = json.loads((dirs[0] / "report_colorization.json").read_text())
    assert cache["settings"]["embedder"] == "gray"
    assert sorted(cache["sequences"]["alpha"]) == ["2", "4", "6"]  # every 2nd frame, last (7) excluded
    frames = json.loads((dirs[1] / "report_frames.json").read_text())
    assert len(frames["sequences"]["beta"]["J"]) == 6  # frames 1 .. T-2


def test_report_renders_in_headless_chromium(two_evals, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium not installed (make chromium installs Debian's chromium with apt-get)")
    _, _, report = two_evals
    url = report.resolve().as_uri()
    shot = tmp_path / "shot.png"
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,2000", url],
        capture_output=True, timeout=120, check=True,
    )
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (2000, 1200)
    colors = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colors) > 500, f"only {len(colors)} colours: blank page?"
    assert (image < 128).mean() > 0.005  # some dark pixels: text and plots drawn
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert dom.count('<tr class="seq">') == 2
    for plot in ("plot-time", "plot-attributes", "plot-failures"):
        assert f'id="{plot}"' in dom
    assert dom.count("<img") == 5  # 3 plots + 2 contact sheets
    assert 'id="sequences"' in dom and 'id="failures"' in dom


def test_report_reads_an_unfinished_eval_folder(two_evals, tmp_path):
    base, dirs, _ = two_evals
    running = tmp_path / "running"
    shutil.copytree(dirs[1], running)
    for name in ("results.json", "report_frames.json", "report_colorization.json"):
        (running / name).unlink()
    (running / "progress" / "beta.json").unlink()  # beta not finished yet
    out = tmp_path / "partial.html"
    args = ["report", str(dirs[0]), str(running), "--out", str(out), "--no-sheets", "--no-colorization", "--quiet"]
    assert main(args) == 0
    page = out.read_text()
    assert "unfinished: 1 of 2 sequences" in page
    assert "1 evaluated by every method" in page
    finished = json.loads((dirs[1] / "results.json").read_text())["sequences"][0]
    assert finished["sequence"] == "alpha" and f"{finished['J']:.1f}" in page


def _failure_row(page: str, label: str) -> list[str]:
    table = page.split("<table id='failures'>", 1)[1].split("</table>", 1)[0]
    row = next(r for r in table.split("<tr>") if r.startswith(f"<td>{label}</td>"))
    return re.findall(r"<td[^>]*>(.*?)</td>", row)


def _check_failure_row(page: str, folder: Path) -> None:
    """The page's failure table row of ``folder`` is the 2x2 table and odds ratio of its cached
    per-frame J (frame t at index t - 1) and colorization errors."""
    frame_j = json.loads((folder / "report_frames.json").read_text())["sequences"]
    errors = json.loads((folder / "report_colorization.json").read_text())["sequences"]
    pairs = [(frame_j[name]["J"][int(t) - 1], error) for name in errors for t, error in errors[name].items()]
    cells = failure_table(np.array([j for j, _ in pairs]), np.array([e for _, e in pairs]))
    expected = odds_ratio(*cells)
    label, note, frames, *table, ratio, interval = _failure_row(page, folder.name)
    assert [int(x) for x in table] == list(cells) and int(frames) == len(pairs)
    assert ratio == f"{expected.ratio:.2f}" + (" *" if expected.corrected else "")
    assert interval == f"{expected.low:.2f} &ndash; {expected.high:.2f}"


def test_report_failure_tables_are_those_of_the_cached_scores(two_evals):
    _, dirs, report = two_evals
    for folder in dirs:
        _check_failure_row(report.read_text(), folder)


def test_report_gives_the_odds_ratio_of_the_shipped_model(davis_root, tmp_path):
    out = tmp_path / "model"
    assert main(["eval", "davis", "--root", str(davis_root), "--method", "model", "--out", str(out), "--quiet"]) == 0
    report = tmp_path / "report.html"
    assert main(["report", str(out), "--out", str(report), "--color-step", "2", "--no-sheets", "--quiet"]) == 0
    label, note, frames, *_ = _failure_row(report.read_text(), "model")
    assert note == "embedder model" and int(frames) == 6  # frames 2, 4, 6 of both sequences
    assert json.loads((out / "report_colorization.json").read_text())["settings"]["embedder"] == "model"
    _check_failure_row(report.read_text(), out)
