"""Track the objects of a video from its first mask, then colourize its grey version from its first
frame, with the library's two classes. Runs on a generated clip whose true masks are known:

    python examples/track_and_colorize.py [OUT_DIR]
"""

import sys
from pathlib import Path

import numpy as np

import colortrack
from colortrack.demo.synthetic import make_video
from colortrack.io.masks import write_mask
from colortrack.io.video import write_video
from colortrack.tasks.colorize import to_gray


def main(out_dir: Path) -> None:
    clip = make_video(num_frames=12, height=96, width=128, num_objects=2, seed=0)

    tracker = colortrack.Tracker.pretrained()  # the shipped model with `colortrack track`'s defaults
    masks = colortrack.collect_masks(tracker.track_masks(clip.frames, clip.masks[0]))
    print(f"tracked {len(masks)} frames, {np.mean(masks == clip.masks):.1%} of pixels right")

    colorizer = colortrack.Colorizer.pretrained()  # `colortrack colorize`'s defaults (refined)
    gray = (to_gray(frame) for frame in clip.frames)  # any iterable of frames, read once
    colors = colortrack.collect_colors(colorizer.colorize(gray, {0: clip.frames[0]}))
    error = np.abs(colors.astype(int) - clip.frames).mean()
    print(f"colorized {len(colors)} frames, mean absolute error {error:.1f} / 255")

    out_dir.mkdir(parents=True, exist_ok=True)
    write_video(out_dir / "colorized.mp4", colors, clip.fps)
    for index, mask in enumerate(masks):
        write_mask(out_dir / f"{index:05d}.png", mask)
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/example"))
