"""``colortrack demo``: generate a video with known masks, track its objects and colour its grey
version from the first frame, scoring both against the known truth."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from colortrack.api import Colorizer
from colortrack.cli.options import tracker_of
from colortrack.tasks.colorize import colorize_video, to_gray
from colortrack.io.atomic import make_dirs
from colortrack.io.masks import read_mask, write_mask
from colortrack.io.video import VideoReader, VideoWriter
from colortrack.eval.metrics.color import psnr
from colortrack.eval.metrics.davis import evaluate_sequence, format_table, summarize
from colortrack.tasks.masks import track_video
from colortrack.demo.synthetic import make_video


def run_demo(args: argparse.Namespace) -> int:
    out_dir: Path = args.out
    video = make_video(num_frames=40, height=240, width=320, num_objects=3, seed=0)
    inputs = out_dir / "input"
    make_dirs(inputs)
    video_path, mask_path = inputs / "video.mp4", inputs / "first_mask.png"
    with VideoWriter(video_path, video.fps) as writer:
        for frame in video.frames:
            writer.write(frame)
    write_mask(mask_path, video.masks[0])

    tracker = tracker_of(args)
    output = track_video(
        video_path, mask_path, out_dir / "tracked", tracker.propagator, tracker.settings(), progress=not args.quiet
    )

    predictions = np.stack([read_mask(output.masks_dir / f"{i:05d}.png") for i in range(output.num_frames)])
    summary = summarize(evaluate_sequence("synthetic", predictions, video.masks))
    print(f"input video: {video_path}  first-frame mask: {mask_path}")
    print(format_table(summary))
    print(f"masks: {output.masks_dir}  overlay: {output.overlay}")
    _colorize_demo(video.frames, out_dir, args)
    return 0


def _colorize_demo(frames: np.ndarray, out_dir: Path, args: argparse.Namespace) -> None:
    """Colour the grey version of the video from its first frame and score it against the original."""
    gray_path, reference_path = out_dir / "input" / "gray.mp4", out_dir / "input" / "reference.png"
    with VideoWriter(gray_path, 24.0) as writer:
        for frame in frames:
            writer.write(to_gray(frame))
    Image.fromarray(frames[0]).save(reference_path)
    colorized_path = out_dir / "colorized.mp4"
    colorizer = Colorizer.pretrained(device=args.device)  # `colortrack colorize`'s defaults
    refs = [f"{reference_path}@0"]
    colorize_video(gray_path, refs, colorized_path, colorizer.engine, colorizer.settings(), progress=not args.quiet)
    colorized = VideoReader(colorized_path).read_all()
    scores = [psnr(pred, truth) for pred, truth in zip(colorized[1:], frames[1:])]
    print(f"colorized {gray_path} from {reference_path}: {colorized_path}, PSNR {np.mean(scores):.1f} dB")
