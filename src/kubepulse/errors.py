"""The one error type a user is shown: a line, never a traceback."""

from __future__ import annotations


class Failure(Exception):
    """Something to tell the user in one line: bad input, a file that cannot be read, a
    port that is taken. Each package raises its own subclass; the command line prints
    it as "error: <message>", or as the message alone when raw (kubectl prints server
    errors as "Error from server (Reason): ..." without the prefix), and exits 1.
    """

    def __init__(self, message: str, raw: bool = False) -> None:
        super().__init__(message)
        self.raw = raw

    def line(self) -> str:
        return str(self) if self.raw else f"error: {self}"
