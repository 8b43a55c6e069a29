"""The one error type a user sees: a file (or argument) and what is wrong with it."""

from __future__ import annotations

from os import PathLike


class InputError(Exception):
    """Bad user input. The CLI prints ``str(err)`` as one line and exits non-zero.

    ``where`` names the file (or the argument) and ``problem`` says what is wrong with it.
    """

    def __init__(self, where: str | PathLike, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


class OutputError(InputError):
    """An output that cannot be written: no space left, a read-only or forbidden location, or a
    file where a folder is needed. An :class:`InputError`, so the CLI reports it the same way."""
