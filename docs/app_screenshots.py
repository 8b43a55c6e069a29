"""Screenshots of ``colortrack app`` for the docs, taken with Playwright and headless Chromium on
a generated video (``colortrack.demo.synthetic``).

    python docs/app_screenshots.py [--method model] [--out docs]

Writes ``app-annotate.png`` (after propagating two keyframes, with the confidence timeline),
``app-correct.png`` (a polygon being drawn on the least confident frame) and ``app-colorize.png``
(the colorize tab on a gray copy of the video, one colour reference frame).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from playwright.sync_api import sync_playwright

from colortrack.app.engine import Engine
from colortrack.app.server import AppState, create_app, serving
from colortrack.app.workspace import Workspace
from colortrack.demo.synthetic import make_video
from colortrack.io.video import write_video

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
JOB_MS = 1_800_000
FRAMES, HEIGHT, WIDTH = 24, 192, 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="model")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    video = make_video(num_frames=FRAMES, height=HEIGHT, width=WIDTH, num_objects=3, seed=7, scale_range=(0.8, 1.3))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_video(root / "objects.mp4", video.frames, video.fps)
        gray = video.frames.mean(axis=3, keepdims=True).repeat(3, axis=3).astype(np.uint8)
        write_video(root / "objects-gray.mp4", gray, video.fps)
        cv2.imwrite(str(root / "reference.png"), cv2.cvtColor(video.frames[0], cv2.COLOR_RGB2BGR))
        state = AppState(Workspace.at(root), Engine(args.method), video="objects.mp4")
        with serving(create_app(state)) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 860}, device_scale_factor=1)
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            idle(page)
            annotate(page, video, args.out)
            colorize(page, root, args.out)
            browser.close()


def idle(page) -> None:
    page.wait_for_selector("body[data-job=idle]", timeout=JOB_MS)


def annotate(page, video, out: Path) -> None:
    names = {1: "ball", 2: "box", 3: "disc"}
    for index in (0, len(video.masks) - 1):
        page.evaluate(
            "async ([t, ids]) => { await fetch(`/api/projects/${document.body.dataset.project}/keyframes/${t}`,"
            " {method: 'PUT', body: new Uint8Array(ids)}); }",
            [index, video.masks[index].ravel().tolist()],
        )
    colors = ("#ff4d4d", "#4dd2ff", "#ffd24d")
    page.evaluate(
        "async (objects) => { await fetch(`/api/projects/${document.body.dataset.project}/objects`,"
        " {method: 'PUT', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(objects)}); }",
        [{"id": i, "name": n, "color": c} for (i, n), c in zip(names.items(), colors)],
    )
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.click("#propagate")
    page.wait_for_selector("body[data-job=running]")
    idle(page)
    page.click("#least-confident button >> nth=0")
    page.wait_for_function("document.body.dataset.maskSource === 'propagated'")
    page.screenshot(path=str(out / "app-annotate.png"))
    page.keyboard.press("p")
    box = page.locator("#draft").bounding_box()
    frame = int(page.get_attribute("body", "data-frame"))
    predicted = np.asarray(page.evaluate("Array.from(state.ids)"), np.uint8).reshape(HEIGHT, WIDTH)
    worst = min(names, key=lambda i: iou(predicted == i, video.masks[frame] == i))  # the one to correct
    page.check(f"#objects li[data-object='{worst}'] input[type=radio]")
    contours, _ = cv2.findContours((video.masks[frame] == worst).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    corners = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 1.0, True)[:, 0]
    for x, y in corners[: max(3, len(corners) * 2 // 3)]:
        page.mouse.click(box["x"] + (x + 0.5) * box["width"] / WIDTH, box["y"] + (y + 0.5) * box["height"] / HEIGHT)
    page.screenshot(path=str(out / "app-correct.png"))
    page.keyboard.press("Escape")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def colorize(page, root: Path, out: Path) -> None:
    page.select_option("#video-list", "objects-gray.mp4")
    page.click("#open-video")
    page.wait_for_function("document.getElementById('video-name').textContent.startsWith('objects-gray.mp4')")
    idle(page)
    page.click("#tab-colorize")
    page.set_input_files("#reference-file", str(root / "reference.png"))
    page.wait_for_selector("#references li")
    page.click("#colorize-run")
    page.wait_for_selector("body[data-job=running]")
    idle(page)
    page.locator("#color-scrub").evaluate("(el) => { el.value = 16; el.dispatchEvent(new Event('input')); }")
    page.wait_for_function("document.getElementById('color-output').complete")
    page.screenshot(path=str(out / "app-colorize.png"))


if __name__ == "__main__":
    main()
