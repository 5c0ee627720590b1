"""Reading a history file that another process writes (`up`, `server`, `dashboard`).

History (file.py) owns its file: it opens the only writer and serves reads from the
file and its memory together. A command that only reads (`kubepulse recommend`) opens
the file read-only instead, beside the running writer (WAL: readers never wait for it),
and sees what the writer has sealed: what `up` still holds in memory (at most the last
RAW_SEAL scrapes, 8 minutes at 15 s) is written when it seals it or stops.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from kubepulse.history import db as history_db
from kubepulse.history import read as history_read
from kubepulse.history.chunks import join
from kubepulse.history.read import Damage, HistoryPoint


class SnapshotError(Exception):
    """The file is not a history this version can read (its words say why)."""


class HistorySnapshot:
    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise SnapshotError(f"no history file at {path}")
        self.path = path
        self.damage = Damage()
        try:
            self._conn = history_db.connect(path, writer=False)
            schema = history_db.schema_of(self._conn)
        except sqlite3.Error as err:
            raise SnapshotError(f"{path}: {err}") from err
        if schema != history_db.SCHEMA_VERSION:
            self._conn.close()
            raise SnapshotError(
                f"{path} has schema {schema}, not {history_db.SCHEMA_VERSION}: open it once"
                " with this version's `up` or `server` to migrate it"
            )

    def close(self) -> None:
        self._conn.close()

    def widths(self) -> dict[int, float]:
        """Each tier's width in seconds (0: raw) and the start of its oldest chunk."""
        return {
            int(width): oldest / 1000
            for width, oldest in self._conn.execute(
                "SELECT width, min(start_ms) FROM chunks GROUP BY width"
            )
        }

    def newest(self) -> float | None:
        """Epoch seconds of the newest sample written (None in an empty file): the raw
        tier's newest (a coarse chunk ends where its last bucket would end, ahead of
        the data), or what the writer saved of it."""
        row = self._conn.execute("SELECT max(end_ms) - 1 FROM chunks WHERE width = 0").fetchone()
        raw = row[0] if row and row[0] is not None else None
        saved = history_db.newest_ms(self._conn)
        found = max((ms for ms in (raw, saved) if ms is not None), default=None)
        return found / 1000 if found is not None else None

    def containers(self) -> Iterator[tuple[int, str, str, str]]:
        """Every container series: (id, namespace, pod, container)."""
        for sid, namespace, pod, container in self._conn.execute(
            "SELECT id, namespace, name, container FROM series WHERE kind = 'container'"
        ):
            yield int(sid), str(namespace), str(pod), str(container)

    def points(
        self, series_id: int, width: int, start: float, end: float, step: float
    ) -> list[HistoryPoint]:
        """One series' points of one tier in [start, end], one per step (History.query's
        shape, from the file alone)."""
        step_ms = max(1, round(step * 1000))
        lo, hi = int(start * 1000) // step_ms * step_ms, int(end * 1000)
        self._conn.execute("BEGIN")
        try:
            found = history_read.stored(self._conn, series_id, width, lo, hi, self.damage)
        finally:
            self._conn.execute("COMMIT")
        return history_read.steps(join(found), lo, hi, step_ms)
