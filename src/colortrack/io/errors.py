"""What the readers catch and how they word it: one line per bad file (see :class:`colortrack.errors.InputError`)."""

from __future__ import annotations

from PIL import Image

# What PIL raises on a bad image file.
PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def one_line(err: BaseException) -> str:
    """``err`` as a short single line, for an InputError message."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."
