"""``colortrack app``: the annotation and colorization web app on a local port."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from colortrack.errors import InputError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_app_parser(commands) -> None:
    parser = commands.add_parser("app")
    parser.add_argument("video", nargs="?", type=Path, help="video to open first (inside the workspace)")
    parser.add_argument(
        "--root", type=Path,
        help="workspace folder: the only one read and written (default: the video's folder, else the current one)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--method", default="model", help="model (default), color, flow, identity or a checkpoint")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.add_argument("--max-upload-mb", type=float, default=2048, help="largest upload accepted (default 2048)")
    parser.set_defaults(run=run_app)


def run_app(args: argparse.Namespace) -> int:
    import uvicorn

    from colortrack.app.engine import Engine
    from colortrack.app.server import AppState, create_app
    from colortrack.app.workspace import Workspace

    root = args.root or (args.video.parent if args.video is not None else Path.cwd())
    workspace = Workspace.at(root, int(args.max_upload_mb * 2**20))
    video = None
    if args.video is not None:
        video = workspace.relative(workspace.resolve(args.video.resolve()))
        workspace.open_video(video)
    if args.max_upload_mb <= 0:
        raise InputError("--max-upload-mb", f"must be positive, got {args.max_upload_mb}")
    state = AppState(workspace, Engine(args.method, args.device), video)
    app = create_app(state, hosts=_allowed_hosts(args.host))
    if args.host not in LOCAL_HOSTS:
        print(f"colortrack app: listening on {args.host}: anyone who can reach it can read and write {workspace.root}", file=sys.stderr)
    print(f"colortrack app: workspace {workspace.root}; open http://{_url_host(args.host)}:{args.port}/ (Ctrl+C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _allowed_hosts(host: str) -> tuple[str, ...]:
    """Host headers the app answers: the local names, plus the address it was told to listen on
    (any name when that is 0.0.0.0 or ::)."""
    if host in ("0.0.0.0", "::"):
        return ("*",)
    return ("127.0.0.1", "localhost", host)


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
