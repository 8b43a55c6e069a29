"""colortrack: self-supervised tracking by colorization, and reference-based video colorization.

``colortrack.Tracker`` and ``colortrack.Colorizer`` (see :mod:`colortrack.api`) are imported on
first use, so that ``import colortrack`` (and the command line's start) stays instant.
"""

__version__ = "0.1.0"

_API = ("Tracker", "Colorizer", "MaskFrame", "PointFrame", "ColorFrame", "collect_masks", "collect_points", "collect_colors")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name == "MaskFrame":
        from colortrack.tasks.masks import MaskFrame

        return MaskFrame
    if name in _API:
        from colortrack import api

        return getattr(api, name)
    raise AttributeError(f"module 'colortrack' has no attribute {name!r}")
