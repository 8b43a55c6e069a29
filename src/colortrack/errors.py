"""The errors a user sees: a file (or argument) and what is wrong with it, in one line.

``ColortrackError`` is the root: ``InputError`` (bad input: a file, an array, an argument) and
``OutputError`` (an output that cannot be written). The library raises them for every problem
the user can fix; any other exception is a bug."""

from __future__ import annotations

import sys
from collections.abc import Callable
from os import PathLike


class ColortrackError(Exception):
    """A problem the user can fix. The CLI prints ``str(err)`` as one line and exits non-zero.

    ``where`` names the file (or the argument) and ``problem`` says what is wrong with it.
    """

    def __init__(self, where: str | PathLike, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


class InputError(ColortrackError):
    """Bad user input: a file, an array or an argument."""


class OutputError(ColortrackError):
    """An output that cannot be written: no space left, a read-only or forbidden location, or a
    file where a folder is needed."""


def run_with_clear_errors(prog: str, run: Callable[[], int]) -> int:
    """Run a command; a :class:`ColortrackError` becomes one line on stderr and exit 2.
    Any other exception is a bug and keeps its traceback."""
    from colortrack.io.atomic import is_write_error

    try:
        return run()
    except ColortrackError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # disk full, read-only, no permission: not a bug, one line
        if not is_write_error(error):
            raise
        print(f"{prog}: error: {error.filename or '(output)'}: {error.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished outputs are kept, re-run to continue", file=sys.stderr)
        return 130
