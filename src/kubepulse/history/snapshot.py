"""Reading a history file that another process writes (`up`, `server`, `dashboard`).

History (file.py) owns its file: it opens the only writer and serves reads from the
file and its memory together. A command that only reads (`kubepulse recommend`) opens
the file read-only instead, beside the running writer (WAL: readers never wait for it),
and sees what the writer has sealed: what `up` still holds in memory (at most the last
RAW_SEAL scrapes, 8 minutes at 15 s) is written when it seals it or stops.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kubepulse.history import chunks, matrix
from kubepulse.history import db as history_db
from kubepulse.history import pressure as history_pressure
from kubepulse.history import read as history_read
from kubepulse.history.chunks import Items, join
from kubepulse.history.codec import CorruptChunk
from kubepulse.history.matrix import StepMatrix
from kubepulse.history.read import Damage, HistoryPoint, StepColumns
from kubepulse.model import CgroupCounters

DECODERS = 1
"""Threads decoding chunks for matrices(), beside the caller computing on what they
decoded. More were no faster on 2 CPUs (bench.recommend_scale): the decoding holds the
GIL for much of its time."""
FAMILIES_AHEAD = 2


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
        if schema is None:
            # An empty file, or a database that kubepulse did not write: nothing to
            # migrate, and "schema None" would not say so.
            self._conn.close()
            raise SnapshotError(
                f"{path} is not a kubepulse history (it has none of its tables): give the"
                " file that `up` or `server --history-file` writes"
            )
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

    def pressure(self, start: float, end: float) -> dict[tuple[str, str, str], CgroupCounters]:
        """How much each container's OOM and throttling counters rose in the hours the
        window touches (history/pressure.py), by (namespace, pod, container)."""
        return history_pressure.increases(self._conn, start, end)

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

    def layouts(self) -> dict[int, int]:
        """Each series' first layout (the order that reads many series with each
        chunk decoded once: a node's series together)."""
        return {
            int(sid): int(layout)
            for sid, layout in self._conn.execute(
                "SELECT series_id, min(layout_id) FROM layout_series GROUP BY series_id"
            )
        }

    def many(
        self, series_ids: Sequence[int], width: int, start: float, end: float, step: float
    ) -> dict[int, StepColumns]:
        """Many series' steps of one tier in [start, end], each chunk decoded once for
        all the wanted series in it (read() decodes a chunk for each series)."""
        step_ms = max(1, round(step * 1000))
        lo, hi = int(start * 1000) // step_ms * step_ms, int(end * 1000)
        wanted = set(series_ids)
        parts: dict[int, list[Items]] = {sid: [] for sid in series_ids}
        marks = ",".join("?" * len(wanted))
        self._conn.execute("BEGIN")
        try:
            layouts = self._conn.execute(
                "SELECT DISTINCT l.id, l.ids FROM layout_series s JOIN layouts l"
                f" ON l.id = s.layout_id WHERE s.series_id IN ({marks})",
                tuple(wanted),
            ).fetchall()
            for layout, blob in layouts:
                ids = np.frombuffer(blob, np.int64)
                positions = [(i, int(sid)) for i, sid in enumerate(ids.tolist()) if sid in wanted]
                payloads = [
                    payload
                    for (payload,) in self._conn.execute(
                        "SELECT payload FROM chunks WHERE layout = ? AND width = ?"
                        " AND end_ms > ? AND start_ms <= ?",
                        (layout, width, lo, hi),
                    )
                ]
                if width == 0:
                    for payload in payloads:
                        self._split_raw(payload, len(ids), positions, parts)
                else:
                    self._split_buckets(payloads, len(ids), positions, parts)
        finally:
            self._conn.execute("COMMIT")
        found: dict[int, StepColumns] = {}
        for sid, items in parts.items():
            columns = history_read.step_columns(join(items), lo, hi, step_ms) if items else None
            if columns is not None:
                found[sid] = columns
        return found

    def matrices(
        self, series_ids: Sequence[int], width: int, start: float, end: float
    ) -> Iterator[StepMatrix]:
        """Many series' buckets of a coarse tier in [start, end], a node's series
        together, as matrices (history.matrix): each chunk decoded once, and only the
        columns that usage needs. A series with no bucket there is in none."""
        step_ms = width * 1000
        lo, hi = int(start * 1000) // step_ms * step_ms, int(end * 1000)
        self._conn.execute("BEGIN")
        try:
            wanted = set(series_ids)
            pairs = [
                (int(sid), int(layout))
                for sid, layout in self._conn.execute(
                    "SELECT series_id, layout_id FROM layout_series"
                )
                if sid in wanted
            ]
            groups = matrix.families(pairs, wanted)
            layouts_of: dict[int, list[int]] = {}
            for sid, layout in pairs:
                layouts_of.setdefault(sid, []).append(layout)
            needed = {layout for _, layout in pairs}
            layout_ids = {
                int(layout): np.frombuffer(blob, np.int64)
                for layout, blob in self._conn.execute("SELECT id, ids FROM layouts")
                if layout in needed
            }
        finally:
            self._conn.execute("COMMIT")
        # Chunks are decoded on their own thread, FAMILIES_AHEAD families ahead of the
        # caller, which computes on the one yielded meanwhile.
        with ThreadPoolExecutor(DECODERS, thread_name_prefix="history-decode") as pool:
            ahead: deque[list[Future[matrix.Piece | CorruptChunk]]] = deque()
            for members in groups:
                layouts = sorted({layout for sid in members for layout in layouts_of.get(sid, [])})
                jobs = self._payloads(
                    np.asarray(members, np.int64), layouts, layout_ids, width, lo, hi
                )
                ahead.append([pool.submit(_decoded, *job) for job in jobs])
                if len(ahead) > FAMILIES_AHEAD:
                    found = self._collected(ahead.popleft(), lo, hi)
                    if found is not None:
                        yield found
            while ahead:
                found = self._collected(ahead.popleft(), lo, hi)
                if found is not None:
                    yield found

    def _collected(
        self, futures: list[Future[matrix.Piece | CorruptChunk]], lo: int, hi: int
    ) -> StepMatrix | None:
        pieces = []
        for future in futures:
            piece = future.result()
            if isinstance(piece, CorruptChunk):
                self._damaged(piece)
            else:
                pieces.append(piece)
        return matrix.joined(pieces, lo, hi) if pieces else None

    def _payloads(
        self,
        members: npt.NDArray[np.int64],
        layouts: list[int],
        layout_ids: dict[int, npt.NDArray[np.int64]],
        width: int,
        lo: int,
        hi: int,
    ) -> list[tuple[bytes, npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
        """The chunks to decode: (payload, its layout's series, the wanted positions)."""
        jobs = []
        self._conn.execute("BEGIN")
        try:
            for layout in layouts:
                ids = layout_ids[layout]
                positions = matrix.positions_of(ids, members)
                # Rows in ascending series id, as the matrix has them.
                positions = positions[np.argsort(ids[positions], kind="stable")]
                for (payload,) in self._conn.execute(
                    "SELECT payload FROM chunks WHERE layout = ? AND width = ?"
                    " AND end_ms > ? AND start_ms <= ? ORDER BY start_ms",
                    (layout, width, lo, hi),
                ):
                    jobs.append((payload, ids, positions))
        finally:
            self._conn.execute("COMMIT")
        return jobs

    def _damaged(self, err: CorruptChunk) -> None:
        self.damage.chunks += 1
        self.damage.last = str(err)

    def _split_raw(
        self,
        payload: bytes,
        size: int,
        positions: list[tuple[int, int]],
        parts: dict[int, list[Items]],
    ) -> None:
        """A raw chunk's samples of the wanted series, as decode_raw gives them one at a
        time."""
        try:
            ts, cpu, mem = chunks.raw_columns(payload, size)
        except CorruptChunk as err:
            self._damaged(err)
            return
        for i, sid in positions:
            fresh = ts[:, i] > 0
            parts[sid].append(chunks.samples(ts[fresh, i], cpu[fresh, i], mem[fresh, i]))

    def _split_buckets(
        self,
        payloads: list[bytes],
        size: int,
        positions: list[tuple[int, int]],
        parts: dict[int, list[Items]],
    ) -> None:
        """One layout's bucket chunks joined along time, then each wanted series' present
        buckets taken once (as decode_buckets gives them): per series, one slice of the
        whole window instead of one a chunk."""
        decoded = []
        for payload in payloads:
            try:
                decoded.append(chunks.bucket_columns(payload, size))
            except CorruptChunk as err:
                self._damaged(err)
        if not decoded:
            return
        starts = np.concatenate([found for found, _ in decoded])
        # Series first and contiguous: each series' rows read as one block.
        by_series = np.ascontiguousarray(
            np.concatenate([fields for _, fields in decoded], axis=1).transpose(2, 0, 1)
        )
        for i, sid in positions:
            mine = by_series[i]
            present = mine[0] > 0
            parts[sid].append(Items(starts[present], *mine[:, present]))


def _decoded(
    payload: bytes, ids: npt.NDArray[np.int64], positions: npt.NDArray[np.int64]
) -> matrix.Piece | CorruptChunk:
    try:
        return matrix.Piece(ids[positions], *chunks.bucket_fields(payload, len(ids), positions))
    except CorruptChunk as err:
        return err
