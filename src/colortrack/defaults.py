"""The user-facing names and defaults of every command, in one place and without importing torch:
the command line's parser reads them, and the library builds its configurations from them
(:func:`colortrack.models.registry.track_config`, :func:`colortrack.tasks.colorize.colorize_config`)."""

from __future__ import annotations

SHIPPED_MODEL = "model"  # the trained embedder packaged in colortrack/weights/model
# The model shipped until 2026-11-29 (trained on the DAVIS frames the dev sequences score), kept for comparison.
FIRST_MODEL = "model-v1"
# Vondrick et al.'s "single image colorization" baseline: the same network trained to colourize each
# frame on its own (``colortrack train --objective image``), packaged in colortrack/weights/image-colorization.
IMAGE_COLORIZATION = "image-colorization"
PACKAGED_MODELS = (SHIPPED_MODEL, FIRST_MODEL, IMAGE_COLORIZATION)
# The shipped model, then the training-free ones (farneback: OpenCV's coarse-to-fine optical flow).
TRACK_METHODS = (SHIPPED_MODEL, "identity", "flow", "color", "farneback")
DEFAULT_METHOD = SHIPPED_MODEL

# The settings of each preset are colortrack.core.tracker.PRESETS (a test keeps the names equal).
PRESET_NAMES = ("paper", "default", "quality", "color")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
# The tracking settings a command line or ``Tracker.pretrained`` may override in a preset.
TRACK_OPTIONS = (
    "temperature", "topk", "radius", "recent", "first_frame", "anchors", "short_side", "precision", "flip", "extra_short_sides",
    "fine_weight", "embed_dims",
)

COLORIZE_METHODS = ("propagate", "reference", "spatiotemporal")
# Reference frames of ``eval colorize``: frame 0, the 10th frame, the first and last, the 10th and (N-10)th.
COLORIZE_REFERENCES = ("first", "10th", "first+last", "10th+N-10th")
DEFAULT_COLORIZE_METHOD = "propagate"
GRAY_EMBEDDER = "gray"  # the training-free embedder of colorization
SHIPPED_REFINER = "refiner"  # the refiner weights packaged in colortrack/weights
# Refinement is on by default once the shipped weights beat plain warping (docs/benchmarks.md).
REFINE_BY_DEFAULT = True
# `reproduce akimoto`: frames shrunk to this shorter side, then colourized and scored, with embeddings
# at AKIMOTO_SHORT_SIDE: the full grid in ~40 CPU-minutes (docs/reproduce.md).
AKIMOTO_FRAME_SHORT_SIDE = 240
AKIMOTO_SHORT_SIDE = 160

# The demo scene (colortrack.demo.scene): 16:9 frames of this height, this many frames.
DEMO_HEIGHT = 360
DEMO_FRAMES = 40


def default_preset(method: str) -> str:
    """The preset tuned for a tracking ``method``: ``color`` for the colour embedder, ``default`` otherwise."""
    return "color" if method == "color" else "default"
