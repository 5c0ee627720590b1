from __future__ import annotations

from kubepulse.errors import Failure


class CommandError(Failure):
    """A bad command line, in one line (see Failure)."""
