"""``colortrack demo`` end to end on a tiny scene: the one-line summaries, the files, and the page in Chromium."""

import io
import json
import re
from base64 import b64decode
from contextlib import redirect_stdout

import numpy as np
import pytest
from PIL import Image

from colortrack.cli.main import main

FRAMES = 6
TASKS = ("masks from the first frame", "masks from keyframes 0, 5", "keypoints", "colorization", "embedding")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with redirect_stdout(printed):  # in process: the tiny scene costs less than starting torch again
        code = main(["demo", "--out", str(out), "--frames", str(FRAMES), "--scene-height", "72", "--short-side", "72", "--device", "cpu"])
    assert code == 0
    return out, printed.getvalue()


def test_demo_prints_one_line_per_task_and_the_page(demo):
    out, stdout = demo
    lines = stdout.strip().splitlines()
    for task in TASKS[:-1]:
        assert any(line.startswith(f"{task}: model ") for line in lines), stdout
    assert lines[-1] == f"demo page: {(out / 'demo.html').resolve()}"
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores) == list(TASKS)
    assert set(scores["keypoints"]["scores"]) == {"model", "identity", "flow"}
    assert set(scores["colorization"]["scores"]) == {"model", "flow", "copy"}
    assert set(scores["keypoints"]["scores"]["flow"]) == {"PCK@0.1", "PCK@0.2", "astronaut", "ball", "cat"}
    timing = json.loads((out / "timing.json").read_text())
    assert list(timing["stages"]) == ["scene", *TASKS, "page"]
    assert all(stage["wall"] >= 0 and stage["cpu"] >= 0 for stage in timing["stages"].values())
    assert (out / "input" / "video.mp4").is_file() and (out / "input" / "first_mask.png").is_file()
    with Image.open(out / "still.jpg") as still:
        assert still.width > still.height > 0


def test_the_page_holds_every_task_and_animates_the_whole_clip(demo):
    out, _ = demo
    page = (out / "demo.html").read_text()
    assert "http://" not in page and "https://" not in page  # self-contained
    animations = re.findall(r"src='data:image/webp;base64,([^']+)'", page)
    assert len(animations) == len(TASKS)
    with Image.open(io.BytesIO(b64decode(animations[0]))) as image:
        assert image.n_frames == FRAMES


def test_the_page_renders_in_headless_chromium(demo):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')")
    from test_app_browser import launch

    out, _ = demo
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400})
            page.goto((out / "demo.html").resolve().as_uri())
            page.wait_for_function("Array.from(document.images).every(image => image.complete)")
            sizes = page.evaluate("Array.from(document.images).map(image => [image.naturalWidth, image.naturalHeight])")
            assert len(sizes) == 2 * len(TASKS) and all(w > 0 and h > 0 for w, h in sizes)  # every image decoded
            assert page.locator("table.scores").count() == len(TASKS) - 1
            assert page.locator("h2").all_inner_texts() == list(TASKS)
            shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"))
            assert shot.std() > 20  # drawn, not a blank page
        finally:
            browser.close()
