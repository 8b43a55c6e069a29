"""The app in a real browser (headless Chromium): paint two objects on frame 0 with the polygon
tool, propagate, jump to the least confident frame, erase it and paint it again, re-propagate,
export, and check the exported masks against the generated video's ground truth."""

import io
import json
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the app needs fastapi (pip install -e '.[test]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')")

from colortrack.app.engine import Engine  # noqa: E402
from colortrack.app.exports import rle_decode  # noqa: E402
from colortrack.app.server import AppState, create_app, serving  # noqa: E402
from colortrack.app.workspace import Workspace  # noqa: E402
from colortrack.demo.synthetic import make_video  # noqa: E402
from colortrack.io.video import write_video  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
FRAMES, HEIGHT, WIDTH = 20, 96, 128
JOB_TIMEOUT_MS = 60_000


def launch(playwright):
    if CHROMIUM is None:
        pytest.skip("chromium not installed (make chromium installs Debian's chromium with apt-get)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def serve(root: Path, num_frames: int, height: int, width: int):
    video = make_video(num_frames=num_frames, height=height, width=width, num_objects=2, seed=1)
    root.mkdir()
    write_video(root / "clip.mp4", video.frames, video.fps)
    state = AppState(Workspace.at(root), Engine("flow"), video="clip.mp4")
    return video, serving(create_app(state))


@pytest.fixture
def app_url(tmp_path):
    video, server = serve(tmp_path / "workspace", FRAMES, HEIGHT, WIDTH)
    with server as url:
        yield url, video


@pytest.fixture
def small_app_url(tmp_path):
    video, server = serve(tmp_path / "workspace", 6, 48, 64)
    with server as url:
        yield url, video


def outline(mask: np.ndarray) -> list[tuple[float, float]]:
    """The corners of the largest outer contour of ``mask``, as pixel-centre coordinates."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contour = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 0.7, True)
    return [(x + 0.5, y + 0.5) for x, y in contour[:, 0]]


class AppPage:
    def __init__(self, page):
        self.page = page

    def wait_idle(self) -> None:
        self.page.wait_for_selector("body[data-job=idle]", timeout=JOB_TIMEOUT_MS)
        assert "error" not in (self.page.get_attribute("#status", "class") or ""), self.page.inner_text("#status")

    def to_screen(self, x: float, y: float) -> tuple[float, float]:
        box = self.page.locator("#draft").bounding_box()
        return box["x"] + x * box["width"] / WIDTH, box["y"] + y * box["height"] / HEIGHT

    def saves(self) -> int:
        return int(self.page.evaluate("Number(document.body.dataset.saves || 0)"))

    def saved_after(self, action) -> None:
        before = self.saves()
        action()
        self.page.wait_for_function(f"Number(document.body.dataset.saves || 0) > {before}")

    def polygon(self, object_id: int, mask: np.ndarray) -> None:
        self.page.check(f"#objects li[data-object='{object_id}'] input[type=radio]")
        self.page.keyboard.press("p")

        def draw():
            for x, y in outline(mask):
                self.page.mouse.click(*self.to_screen(x, y))
            self.page.keyboard.press("Enter")

        self.saved_after(draw)

    def erase_everything(self) -> None:
        self.page.keyboard.press("e")
        self.page.locator("#brush-size").fill("80")
        for y in [*range(1, HEIGHT, 8), HEIGHT - 1]:
            def stroke(y=y):
                self.page.mouse.move(*self.to_screen(0.5, y))
                self.page.mouse.down()
                self.page.mouse.move(*self.to_screen(WIDTH - 0.5, y), steps=4)
                self.page.mouse.up()

            self.saved_after(stroke)

    def propagate(self) -> None:
        self.page.click("#propagate")
        self.page.wait_for_selector("body[data-job=running]")
        self.wait_idle()

    def export(self, name: str, folder: Path) -> Path:
        with self.page.expect_download(timeout=JOB_TIMEOUT_MS) as download:
            self.page.click(f"button[data-export='{name}']")
        path = folder / name
        download.value.save_as(path)
        self.wait_idle()
        return path

    def frame(self) -> int:
        return int(self.page.get_attribute("body", "data-frame"))


def mask_of(page, index: int) -> np.ndarray:
    data = page.evaluate(
        "async (t) => Array.from(new Uint8Array(await (await fetch(`/api/projects/${document.body.dataset.project}/masks/${t}`)).arrayBuffer()))",
        index,
    )
    return np.asarray(data, np.uint8).reshape(HEIGHT, WIDTH)


def mean_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    ious = []
    for object_id in (1, 2):
        a, b = predicted == object_id, truth == object_id
        ious.append((a & b).sum() / max((a | b).sum(), 1))
    return float(np.mean(ious))


def test_annotate_propagate_correct_export(app_url, tmp_path):
    url, video = app_url
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        app = AppPage(page)
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        app.wait_idle()

        app.polygon(1, video.masks[0] == 1)
        page.click("#add-object")
        app.polygon(2, video.masks[0] == 2)
        page.fill("#objects li[data-object='1'] input[type=text]", "ball")
        page.keyboard.press("Tab")
        assert mean_iou(mask_of(page, 0), video.masks[0]) > 0.85
        app.propagate()
        before = [mask_of(page, t) for t in range(FRAMES)]

        page.click("#least-confident button >> nth=0")
        page.wait_for_function("document.body.dataset.maskSource === 'propagated'")
        corrected = app.frame()
        assert corrected > 0
        app.erase_everything()
        assert not mask_of(page, corrected).any()
        app.polygon(1, video.masks[corrected] == 1)
        app.polygon(2, video.masks[corrected] == 2)
        assert "out of date" in page.inner_text("#stale-hint")
        app.propagate()
        assert page.inner_text("#stale-hint") == "every frame is up to date"

        davis = zipfile.ZipFile(app.export("davis.zip", tmp_path))
        coco = json.loads(app.export("coco.json", tmp_path).read_text())
        assert errors == []
        browser.close()

    from PIL import Image

    exported = np.stack([np.asarray(Image.open(io.BytesIO(davis.read(f"{t:05d}.png")))) for t in range(FRAMES)])
    for annotation in coco["annotations"]:
        frame = exported[annotation["image_id"] - 1]
        assert np.array_equal(rle_decode(annotation["segmentation"]), frame == annotation["category_id"])
    assert [c["name"] for c in coco["categories"]] == ["ball", "object 2"]
    after = [mean_iou(exported[t], video.masks[t]) for t in range(FRAMES)]
    earlier = [mean_iou(before[t], video.masks[t]) for t in range(FRAMES)]
    assert after[0] > 0.85 and after[corrected] > 0.85
    assert np.mean(after) > 0.7
    assert np.mean(after[1:]) > np.mean(earlier[1:]) + 0.05  # the correction helped


def test_colorize_tab(small_app_url, tmp_path):
    url, video = small_app_url
    reference = tmp_path / "frame0.png"
    cv2.imwrite(str(reference), cv2.cvtColor(video.frames[0], cv2.COLOR_RGB2BGR))
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        app = AppPage(page)
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        app.wait_idle()
        page.click("#tab-colorize")
        page.set_input_files("#reference-file", str(reference))
        page.wait_for_selector("#references li")
        page.click("#colorize-run")
        page.wait_for_selector("body[data-job=running]")
        app.wait_idle()
        page.locator("#color-scrub").evaluate("(el) => { el.value = 4; el.dispatchEvent(new Event('input')); }")
        page.wait_for_function("document.getElementById('color-output').naturalWidth === 64")
        assert page.is_visible("#colorized-download")
        browser.close()
