"""The web app: a FastAPI application over one workspace, its static UI served by the package.

Safe by default: :func:`create_app` answers only requests addressed to the hosts it was given
(no DNS rebinding), refuses state-changing requests from other origins, and every path it
touches is resolved inside the workspace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel
from starlette.middleware.trustedhost import TrustedHostMiddleware

from colortrack.app.engine import Engine
from colortrack.app.exports import EXPORTS
from colortrack.app.jobs import Busy, Job, JobRunner
from colortrack.app.project import ObjectInfo, Project
from colortrack.app.workspace import ForbiddenPath, UploadTooLarge, Workspace
from colortrack.errors import InputError
from colortrack.io.atomic import atomic_write
from colortrack.io.video import VideoWriter

STATIC = Path(str(resources.files("colortrack") / "app" / "static"))
UPLOAD_CHUNK = 1 << 20
EVENT_INTERVAL_S = 0.2


@dataclass
class AppState:
    workspace: Workspace
    engine: Engine
    video: str | None = None
    jobs: JobRunner = field(default_factory=JobRunner)
    projects: dict[str, Project] = field(default_factory=dict)

    def open(self, video: str) -> Project:
        project = Project.open(self.workspace, video)
        self.projects[project.id] = project
        return project

    def project(self, project_id: str) -> Project:
        if project_id not in self.projects:
            raise NotFound(project_id, "no such open project (open its video first)")
        return self.projects[project_id]


class NotFound(InputError):
    pass


_STATUS = ((NotFound, 404), (ForbiddenPath, 403), (UploadTooLarge, 413), (Busy, 409), (InputError, 400))


class OpenRequest(BaseModel):
    path: str


class ObjectModel(BaseModel):
    id: int
    name: str
    color: str


def create_app(state: AppState, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> FastAPI:
    app = FastAPI(title="colortrack", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.colortrack = state
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))
    app.middleware("http")(_same_origin_writes)
    app.add_exception_handler(InputError, _input_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.get("/")(lambda: FileResponse(STATIC / "index.html"))
    _add_project_routes(app, state)
    _add_mask_routes(app, state)
    _add_job_routes(app, state)
    _add_colorize_routes(app, state)
    return app


async def _same_origin_writes(request: Request, call_next):
    """Another site's page may send a form to 127.0.0.1; a write from a foreign origin is refused."""
    origin = request.headers.get("origin")
    if request.method not in ("GET", "HEAD") and origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin != own:
            return JSONResponse({"error": f"{origin}: requests from other sites are refused"}, status_code=403)
    return await call_next(request)


async def _input_error(request: Request, error: InputError) -> JSONResponse:
    status = next(code for kind, code in _STATUS if isinstance(error, kind))
    return JSONResponse({"error": str(error)}, status_code=status)


def _add_project_routes(app: FastAPI, state: AppState) -> None:
    @app.get("/api/config")
    def config() -> dict:
        return {"video": state.video, "method": state.engine.method, "max_upload_bytes": state.workspace.max_upload_bytes}

    @app.get("/api/videos")
    def videos() -> dict:
        return {"videos": state.workspace.list_videos()}

    @app.post("/api/open")
    def open_video(request: OpenRequest) -> dict:
        return _opened(state, state.open(request.path))

    @app.put("/api/upload")
    async def upload(name: str, request: Request) -> dict:
        """The request's body is the video file; ``name`` its file name."""
        state.workspace.check_upload_size(name, _declared_length(request))
        video = await state.workspace.save_upload(name, request.stream())
        return _opened(state, state.open(video))

    @app.get("/api/projects/{project_id}")
    def project(project_id: str) -> dict:
        return state.project(project_id).summary()

    @app.put("/api/projects/{project_id}/objects")
    def objects(project_id: str, objects: list[ObjectModel]) -> dict:
        project = state.project(project_id)
        project.set_objects([ObjectInfo.parse(o.model_dump()) for o in objects])
        return project.summary()

    @app.get("/api/projects/{project_id}/frames/{index}.jpg")
    def frame(project_id: str, index: int) -> FileResponse:
        return _file(state.project(project_id).frame_path(index), f"frame {index}", "not extracted yet")


def _file(path: Path, where: str, missing: str, filename: str | None = None) -> FileResponse:
    if not path.is_file():
        raise NotFound(where, missing)
    return FileResponse(path, filename=filename)


def _declared_length(request: Request) -> int | None:
    length = request.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def _opened(state: AppState, project: Project) -> dict:
    """The project's summary; the extraction of its display frames starts when they are missing."""
    summary = project.summary()
    if not project.frames_ready():
        job = state.jobs.start("frames", project.num_frames, lambda job: project.extract_frames(job.advance))
        summary["job"] = job.snapshot()
    return summary


def _add_mask_routes(app: FastAPI, state: AppState) -> None:
    @app.get("/api/projects/{project_id}/masks/{index}")
    def mask(project_id: str, index: int) -> Response:
        """The frame's ids as raw bytes (H x W, row-major uint8); 204 when it has none."""
        project = state.project(project_id)
        ids = project.mask(index)
        if ids is None:
            return Response(status_code=204)
        source = "keyframe" if index in project.keyframes() else "propagated"
        return Response(ids.tobytes(), media_type="application/octet-stream", headers={"X-Mask-Source": source})

    @app.put("/api/projects/{project_id}/keyframes/{index}")
    async def set_keyframe(project_id: str, index: int, request: Request) -> dict:
        project = state.project(project_id)
        height, width = project.size
        body = await request.body()
        if len(body) != height * width:
            raise InputError(f"frame {index}", f"mask has {len(body)} bytes, expected {height}x{width} = {height * width}")
        project.set_keyframe(index, np.frombuffer(body, np.uint8).reshape(height, width))
        return project.summary()

    @app.delete("/api/projects/{project_id}/keyframes/{index}")
    def delete_keyframe(project_id: str, index: int) -> dict:
        project = state.project(project_id)
        project.delete_keyframe(index)
        return project.summary()

    @app.post("/api/projects/{project_id}/propagate")
    def propagate(project_id: str) -> dict:
        """Re-computes the frames that the keyframes changed since the last propagation."""
        project = state.project(project_id)
        keyframes = project.read_keyframes()

        def work(job: Job) -> str:
            for update in state.engine.propagate(project.key, project.reader, keyframes):
                job.total = update.total
                project.write_result(update.index, update.mask, update.confidence)
                job.advance(update.index, update.confidence)
            return f"propagated {job.done} frames"

        return state.jobs.start("propagate", len(project.stale()) or project.num_frames, work).snapshot()

    @app.post("/api/projects/{project_id}/export/{name}")
    def export(project_id: str, name: str) -> dict:
        project = state.project(project_id)
        if name not in EXPORTS:
            raise NotFound(name, f"unknown export (choose {', '.join(EXPORTS)})")
        path = project.export_path(name)
        job = state.jobs.start(f"export {name}", project.num_frames, lambda job: EXPORTS[name](project, path, job.advance).name)
        return job.snapshot()

    @app.get("/api/projects/{project_id}/exports/{name}")
    def download(project_id: str, name: str) -> FileResponse:
        project = state.project(project_id)
        if name not in (*EXPORTS, "colorized.mp4"):
            raise NotFound(name, "no such export")
        return _file(project.export_path(name), name, "not exported yet", filename=f"{Path(project.video).stem}-{name}")


def _add_job_routes(app: FastAPI, state: AppState) -> None:
    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> dict:
        return _job(state, job_id).snapshot()

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict:
        job = _job(state, job_id)
        job.cancel_requested.set()
        return job.snapshot()

    @app.get("/api/jobs/{job_id}/events")
    def events(job_id: str) -> StreamingResponse:
        """Server-sent events: the job's progress and the frames finished since the last event."""
        job = _job(state, job_id)

        async def stream():
            sent = 0
            while True:
                snapshot = job.snapshot(since=sent)
                sent = snapshot["done"]
                yield f"data: {json.dumps(snapshot)}\n\n"
                if snapshot["state"] != "running":
                    return
                await asyncio.sleep(EVENT_INTERVAL_S)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _job(state: AppState, job_id: str) -> Job:
    try:
        return state.jobs.get(job_id)
    except KeyError:
        raise NotFound(job_id, "no such job") from None


def _add_colorize_routes(app: FastAPI, state: AppState) -> None:
    @app.put("/api/projects/{project_id}/references/{index}")
    async def set_reference(project_id: str, index: int, name: str, request: Request) -> dict:
        """The request's body is the colour image of frame ``index``; ``name`` its file name."""
        project = state.project(project_id)
        state.workspace.check_upload_size(name, _declared_length(request))
        image = await state.workspace.receive_image(name, request.stream(), project.reference_path(index).parent)
        project.set_reference(index, image, name)
        return project.summary()

    @app.delete("/api/projects/{project_id}/references/{index}")
    def delete_reference(project_id: str, index: int) -> dict:
        project = state.project(project_id)
        project.delete_reference(index)
        return project.summary()

    @app.get("/api/projects/{project_id}/references/{index}.png")
    def reference(project_id: str, index: int) -> FileResponse:
        return _file(state.project(project_id).reference_path(index), f"frame {index}", "has no reference image")

    @app.post("/api/projects/{project_id}/colorize")
    def colorize(project_id: str) -> dict:
        project = state.project(project_id)
        references = project.references()
        return state.jobs.start("colorize", project.num_frames, lambda job: _colorize(state, project, references, job)).snapshot()

    @app.get("/api/projects/{project_id}/colorized/{index}.jpg")
    def colorized(project_id: str, index: int) -> FileResponse:
        return _file(state.project(project_id).colorized_path(index), f"frame {index}", "not colorized yet")


def _colorize(state: AppState, project: Project, references: dict[int, np.ndarray], job: Job) -> str:
    """Writes a preview JPEG per frame as it comes, then ``exports/colorized.mp4``."""
    path = project.export_path("colorized.mp4")
    with VideoWriter(path, project.reader.info.fps) as writer:
        for index, frame in enumerate(state.engine.colorize(project.reader, references)):
            writer.write(frame)
            with atomic_write(project.colorized_path(index)) as tmp:
                Image.fromarray(frame).save(tmp, format="JPEG", quality=90)
            job.advance(index)
    return f"colorized {job.done} frames"


@contextlib.contextmanager
def serving(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a thread (port 0: any free one) for the ``with`` block; yields its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="colortrack-app", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the app could not listen on {host}:{port}")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}/"
    finally:
        server.should_exit = True
        thread.join()
