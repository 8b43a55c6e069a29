"""The web app's HTTP API: confinement to the workspace, uploads, propagation jobs, exports."""

import asyncio
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the app needs fastapi (pip install -e '.[test]')")
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from colortrack.app.engine import Engine  # noqa: E402
from colortrack.app.exports import bounding_box, rle_decode, rle_encode  # noqa: E402
from colortrack.app.project import Project  # noqa: E402
from colortrack.app.server import AppState, create_app  # noqa: E402
from colortrack.app.workspace import PROJECTS_DIR, UPLOADS_DIR, UploadTooLarge, Workspace  # noqa: E402
from colortrack.demo.synthetic import make_video  # noqa: E402
from colortrack.io.masks import DAVIS_PALETTE  # noqa: E402
from colortrack.io.video import VideoReader, write_video  # noqa: E402

FRAMES, HEIGHT, WIDTH = 12, 48, 64


@pytest.fixture(scope="module")
def video():
    return make_video(num_frames=FRAMES, height=HEIGHT, width=WIDTH, num_objects=2, seed=3)


@pytest.fixture
def workspace(tmp_path, video):
    root = tmp_path / "ws"
    root.mkdir()
    write_video(root / "clip.mp4", video.frames, video.fps)
    return root


def make_client(root: Path, method: str = "identity", max_upload_bytes: int = 1 << 20) -> TestClient:
    state = AppState(Workspace.at(root, max_upload_bytes), Engine(method))
    return TestClient(create_app(state), base_url="http://127.0.0.1")


@pytest.fixture
def client(workspace):
    return make_client(workspace)


def finish(client: TestClient, job: dict) -> list[dict]:
    """The job's server-sent events until it ends."""
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as response:
        return [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]


def open_clip(client: TestClient) -> dict:
    response = client.post("/api/open", json={"path": "clip.mp4"})
    assert response.status_code == 200, response.text
    project = response.json()
    if "job" in project:
        assert finish(client, project["job"])[-1]["state"] == "done"
    return project


def mask_of(client: TestClient, project_id: str, index: int) -> np.ndarray:
    response = client.get(f"/api/projects/{project_id}/masks/{index}")
    assert response.status_code == 200
    return np.frombuffer(response.content, np.uint8).reshape(HEIGHT, WIDTH)


def test_opening_extracts_every_frame_for_display(client):
    project = open_clip(client)
    assert project["num_frames"] == FRAMES and (project["height"], project["width"]) == (HEIGHT, WIDTH)
    response = client.get(f"/api/projects/{project['id']}/frames/{FRAMES - 1}.jpg")
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (WIDTH, HEIGHT)
    assert client.get(f"/api/projects/{project['id']}/frames/{FRAMES}.jpg").status_code == 400


@pytest.mark.parametrize("path", ["../outside.mp4", "/etc/passwd", "sub/../../outside.mp4", f"{PROJECTS_DIR}/x.mp4"])
def test_paths_outside_the_workspace_are_refused(client, workspace, path):
    (workspace.parent / "outside.mp4").write_bytes((workspace / "clip.mp4").read_bytes())
    response = client.post("/api/open", json={"path": path})
    assert response.status_code == 403
    assert path in response.json()["error"]


def test_a_symlink_out_of_the_workspace_is_refused(client, workspace):
    (workspace.parent / "secret.mp4").write_bytes((workspace / "clip.mp4").read_bytes())
    (workspace / "link.mp4").symlink_to(workspace.parent / "secret.mp4")
    response = client.post("/api/open", json={"path": "link.mp4"})
    assert response.status_code == 403 and "outside the workspace" in response.json()["error"]


def test_the_video_list_holds_workspace_videos_only(client, workspace):
    (workspace / "notes.txt").write_text("x")
    for own in (workspace / PROJECTS_DIR / "p" / "exports", workspace / ".hidden"):
        own.mkdir(parents=True)
        (own / "overlay.mp4").write_bytes(b"")
    assert client.get("/api/videos").json() == {"videos": ["clip.mp4"]}


def test_uploads_over_the_limit_are_refused_and_leave_nothing(workspace):
    client = make_client(workspace, max_upload_bytes=1000)
    data = (workspace / "clip.mp4").read_bytes()
    response = client.put("/api/upload?name=big.mp4", content=data)
    assert response.status_code == 413
    assert "big.mp4" in response.json()["error"] and "limit" in response.json()["error"]
    assert not any((workspace / UPLOADS_DIR).glob("*"))


def test_a_stream_over_the_limit_is_cut_off(workspace):
    async def chunks():
        for _ in range(10):
            yield b"\0" * 400

    with pytest.raises(UploadTooLarge):
        asyncio.run(Workspace.at(workspace, 1000).save_upload("long.mp4", chunks()))
    assert not any((workspace / UPLOADS_DIR).glob("*"))


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [("notes.txt", b"hello", "not a video file"), ("fake.mp4", b"\0not a video" * 50, "fake.mp4: unreadable or corrupt video")],
)
def test_non_video_uploads_are_refused_and_leave_nothing(client, workspace, name, data, problem):
    response = client.put(f"/api/upload?name={name}", content=data)
    assert response.status_code == 400
    assert problem in response.json()["error"]
    assert not any((workspace / UPLOADS_DIR).glob("*"))


def test_an_uploaded_video_is_opened(client, workspace):
    response = client.put("/api/upload?name=../../my%20clip.mp4", content=(workspace / "clip.mp4").read_bytes())
    assert response.status_code == 200, response.text
    assert response.json()["video"] == f"{UPLOADS_DIR}/my_clip.mp4"
    assert (workspace / UPLOADS_DIR / "my_clip.mp4").is_file()


def test_requests_from_other_sites_and_hosts_are_refused(client):
    response = client.post("/api/open", json={"path": "clip.mp4"}, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert client.get("/api/videos", headers={"Host": "evil.example"}).status_code == 400


def test_a_keyframe_of_the_wrong_size_is_refused(client):
    project = open_clip(client)
    response = client.put(f"/api/projects/{project['id']}/keyframes/0", content=b"\0" * 10)
    assert response.status_code == 400 and f"expected {HEIGHT}x{WIDTH}" in response.json()["error"]


def propagated(client: TestClient, pid: str) -> list[dict]:
    response = client.post(f"/api/projects/{pid}/propagate")
    assert response.status_code == 200, response.text
    events = finish(client, response.json())
    assert events[-1]["state"] == "done", events[-1]["message"]
    return events


def test_propagation_streams_results_and_a_correction_recomputes_only_what_it_affects(client, video):
    pid = open_clip(client)["id"]
    summary = client.put(f"/api/projects/{pid}/keyframes/0", content=video.masks[0].tobytes()).json()
    assert [o["id"] for o in summary["objects"]] == [1, 2]
    assert summary["stale"] == list(range(1, FRAMES))
    events = propagated(client, pid)
    assert events[-1]["done"] == events[-1]["total"] == FRAMES - 1
    assert [index for event in events for index, _ in event["frames"]] == list(range(1, FRAMES))
    assert np.array_equal(mask_of(client, pid, FRAMES - 1), video.masks[0])  # identity: the keyframe repeated

    for index in (6, FRAMES - 1):
        client.put(f"/api/projects/{pid}/keyframes/{index}", content=video.masks[index].tobytes())
    propagated(client, pid)
    corrected = client.put(f"/api/projects/{pid}/keyframes/9", content=video.masks[9].tobytes()).json()
    assert corrected["stale"] == [7, 8, 10]
    events = propagated(client, pid)
    assert [index for event in events for index, _ in event["frames"]] == [7, 8, 10]
    summary = client.get(f"/api/projects/{pid}").json()
    assert summary["keyframes"] == [0, 6, 9, FRAMES - 1] and summary["stale"] == []
    assert set(summary["confidence"]) == {str(t) for t in range(1, FRAMES) if t not in (6, 9, FRAMES - 1)} | {"6", "9", str(FRAMES - 1)}
    assert np.array_equal(mask_of(client, pid, 9), video.masks[9])


def test_removing_a_keyframe_makes_its_neighbourhood_stale(client, video):
    pid = open_clip(client)["id"]
    for index in (0, 6):
        client.put(f"/api/projects/{pid}/keyframes/{index}", content=video.masks[index].tobytes())
    propagated(client, pid)
    summary = client.delete(f"/api/projects/{pid}/keyframes/6").json()
    assert summary["keyframes"] == [0] and summary["stale"] == list(range(1, FRAMES))
    propagated(client, pid)
    assert np.array_equal(mask_of(client, pid, 6), video.masks[0])


def test_exports_round_trip(client, video, workspace):
    pid = open_clip(client)["id"]
    client.put(f"/api/projects/{pid}/objects", json=[{"id": 1, "name": "ball", "color": "#ff0000"}, {"id": 2, "name": "box", "color": "#0000ff"}])
    response = client.post(f"/api/projects/{pid}/export/davis.zip")
    assert response.status_code == 200
    assert finish(client, response.json())[-1]["message"] == "frame 0: has no mask yet: propagate first"
    for t in range(FRAMES):
        client.put(f"/api/projects/{pid}/keyframes/{t}", content=video.masks[t].tobytes())
    for name in ("davis.zip", "coco.json", "overlay.mp4"):
        assert finish(client, client.post(f"/api/projects/{pid}/export/{name}").json())[-1]["state"] == "done"

    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/projects/{pid}/exports/davis.zip").content))
    assert archive.namelist() == [f"{t:05d}.png" for t in range(FRAMES)]
    png = Image.open(io.BytesIO(archive.read("00005.png")))
    assert png.mode == "P" and np.array_equal(np.asarray(png), video.masks[5])
    assert np.array_equal(np.asarray(png.getpalette()[:9]), DAVIS_PALETTE[:3].ravel())

    coco = client.get(f"/api/projects/{pid}/exports/coco.json").json()
    assert [c["name"] for c in coco["categories"]] == ["ball", "box"] and len(coco["images"]) == FRAMES
    for annotation in coco["annotations"]:
        truth = video.masks[annotation["image_id"] - 1] == annotation["category_id"]
        assert np.array_equal(rle_decode(annotation["segmentation"]), truth)
        assert annotation["area"] == truth.sum() and annotation["bbox"] == bounding_box(truth)
    assert len(coco["annotations"]) == sum(len(set(np.unique(m)) - {0}) for m in video.masks)

    overlay = workspace / PROJECTS_DIR / pid / "exports" / "overlay.mp4"
    frames = VideoReader(overlay).read_all()
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    inside = video.masks[0] == 1
    assert frames[0][inside].mean(axis=0)[0] > frames[0][inside].mean(axis=0)[2]  # object 1 tinted red


def test_rle_by_hand():
    assert rle_encode(np.array([[0, 1], [1, 1]], bool)) == {"size": [2, 2], "counts": [1, 3]}
    assert rle_encode(np.array([[1, 0], [0, 0]], bool)) == {"size": [2, 2], "counts": [0, 1, 3]}
    assert rle_encode(np.array([[1, 0, 1]], bool))["counts"] == [0, 1, 1, 1]
    mask = np.random.default_rng(0).random((7, 5)) > 0.5
    assert np.array_equal(rle_decode(rle_encode(mask)), mask)


class _Failing:
    def track(self, frames, first_labels, pinned=()):
        yield first_labels
        yield first_labels
        raise RuntimeError("the tracker broke")


def test_a_crashed_job_keeps_the_annotations_and_a_restart_resumes(workspace, video):
    client = make_client(workspace)
    pid = open_clip(client)["id"]
    client.put(f"/api/projects/{pid}/keyframes/0", content=video.masks[0].tobytes())
    client.put(f"/api/projects/{pid}/objects", json=[{"id": 1, "name": "ball", "color": "#ff0000"}])
    client.app.state.colortrack.engine._propagator = _Failing()
    last = finish(client, client.post(f"/api/projects/{pid}/propagate").json())[-1]
    assert last["state"] == "failed" and "the tracker broke" in last["message"] and last["done"] == 1

    restarted = make_client(workspace)
    project = open_clip(restarted)
    assert "job" not in project  # frames already extracted
    assert project["keyframes"] == [0] and project["objects"][0]["name"] == "ball"
    assert np.array_equal(mask_of(restarted, pid, 0), video.masks[0])
    assert list(project["confidence"]) == ["1"] and project["stale"] == list(range(2, FRAMES))


def test_a_second_job_waits_for_the_first(workspace, video):
    project = Project.open(Workspace.at(workspace), "clip.mp4")
    state = AppState(Workspace.at(workspace), Engine("identity"))
    started = state.jobs.start("slow", 1, lambda job: job.cancel_requested.wait(5))
    client = TestClient(create_app(state), base_url="http://127.0.0.1")
    response = client.post("/api/open", json={"path": project.video})
    assert response.status_code == 409 and "another job is running" in response.json()["error"]
    started.cancel_requested.set()


def test_a_reference_image_must_match_the_video(client, video):
    pid = open_clip(client)["id"]
    buffer = io.BytesIO()
    Image.fromarray(video.frames[0][:10]).save(buffer, format="PNG")
    response = client.put(f"/api/projects/{pid}/references/0?name=ref.png", content=buffer.getvalue())
    assert response.status_code == 400 and "ref.png: reference is" in response.json()["error"]
    response = client.put(f"/api/projects/{pid}/references/0?name=ref.png", content=b"junk")
    assert response.status_code == 400 and "ref.png" in response.json()["error"]
    buffer = io.BytesIO()
    Image.fromarray(video.frames[0]).save(buffer, format="PNG")
    response = client.put(f"/api/projects/{pid}/references/0?name=ref.png", content=buffer.getvalue())
    assert response.status_code == 200 and response.json()["references"] == [0]


def test_colorizing_from_a_reference_frame(workspace, video):
    client = make_client(workspace, method="color")
    pid = open_clip(client)["id"]
    buffer = io.BytesIO()
    Image.fromarray(video.frames[0]).save(buffer, format="PNG")
    client.put(f"/api/projects/{pid}/references/0?name=ref.png", content=buffer.getvalue())
    events = finish(client, client.post(f"/api/projects/{pid}/colorize").json())
    assert events[-1]["state"] == "done", events[-1]["message"]
    assert client.get(f"/api/projects/{pid}").json()["colorized"]
    preview = np.asarray(Image.open(io.BytesIO(client.get(f"/api/projects/{pid}/colorized/{FRAMES - 1}.jpg").content)))
    assert preview.shape == (HEIGHT, WIDTH, 3)
    assert preview.std(axis=2).mean() > 5  # coloured, not gray
    movie = client.get(f"/api/projects/{pid}/exports/colorized.mp4")
    assert movie.status_code == 200 and movie.headers["content-disposition"].endswith('clip-colorized.mp4"')


def test_the_command_refuses_a_video_outside_its_workspace(workspace, tmp_path, capsys):
    from colortrack.cli.main import main

    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes((workspace / "clip.mp4").read_bytes())
    assert main(["app", str(outside), "--root", str(workspace)]) == 2
    assert "is outside the workspace folder" in capsys.readouterr().err


def test_a_changed_video_keeps_the_keyframes_and_drops_the_rest(workspace, video):
    client = make_client(workspace)
    pid = open_clip(client)["id"]
    client.put(f"/api/projects/{pid}/keyframes/0", content=video.masks[0].tobytes())
    propagated(client, pid)
    write_video(workspace / "clip.mp4", video.frames[::-1], video.fps)
    project = open_clip(make_client(workspace))
    assert project["keyframes"] == [0] and project["confidence"] == {}
    assert project["stale"] == list(range(1, FRAMES))
