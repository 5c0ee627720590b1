"""Chunks: the codec is exact, damage is found, and the chart queries give the points
the format before them (schema 3, tests/history/schema3.py) gives for the same samples,
also once a schema 3 file is migrated."""

from __future__ import annotations

import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kubepulse.history import codec, migrate
from kubepulse.history import db as history_db
from kubepulse.history.codec import CorruptChunk
from kubepulse.history.file import History
from kubepulse.history.read import HistoryPoint
from kubepulse.history.tiers import parse_tiers
from kubepulse.history.writer import Batch, chunk_rows
from tests.history import schema3

INT64 = st.integers(-(2**63), 2**63 - 1)
T0 = 1_700_000_100_000  # ms, a whole number of 15 minutes


def _column(draw: st.DrawFn, rows: int) -> list[int]:
    """Timestamps with gaps, values with jumps, zeros, counter resets, or any int64."""
    shape = draw(st.sampled_from(["time", "gauge", "counter", "any"]))
    if shape == "any":
        return draw(st.lists(INT64, min_size=rows, max_size=rows))
    out, value = [], draw(st.integers(0, 2**40))
    for _ in range(rows):
        if shape == "time":
            value += draw(st.sampled_from([15_000, 15_001, 14_998, 30_000, 0, 3_600_000]))
        elif shape == "counter":
            value = 0 if draw(st.integers(0, 9)) == 0 else value + draw(st.integers(0, 10**9))
        else:
            value = draw(st.sampled_from([0, value, value + 4096, max(0, value - 8192), 2**62]))
        out.append(value)
    return out


@st.composite
def matrices(draw: st.DrawFn) -> tuple[list[list[int]], list[int]]:
    columns, rows = draw(st.integers(1, 6)), draw(st.integers(0, 40))
    kinds = draw(st.lists(st.sampled_from([codec.DELTA, codec.DELTA2]), min_size=columns))
    return [_column(draw, rows) for _ in range(columns)], kinds[:columns]


@given(matrices())
@example(([[2**63 - 1, -(2**63), 0, 2**63 - 1]], [codec.DELTA2]))
@example(([[0, 0, 0], [4096, 8192, 4096]], [codec.DELTA, codec.DELTA]))
@example(([[-(2**63)], [-(2**63)]], [codec.DELTA, codec.DELTA2]))
def test_encode_and_decode_are_exact_inverses(found: tuple[list[list[int]], list[int]]) -> None:
    columns, kinds = found
    payload = codec.encode(columns, kinds)
    decoded = codec.decode(payload)
    assert [decoded[i].tolist() for i in range(len(columns))] == columns
    last = len(columns) - 1
    assert {i: c.tolist() for i, c in codec.decode(payload, [last, 0]).items()} == {
        0: columns[0],
        last: columns[last],
    }


def test_regular_series_take_a_few_bits_a_value() -> None:
    """Timestamps 15 s apart with a few ms of jitter, memory in pages: ~1 byte each."""
    rng = np.random.default_rng(1)
    ts = T0 + np.arange(240) * 15_000 + rng.integers(-20, 20, 240)
    mem = (1 << 28) + np.cumsum(rng.choice([0, 0, 0, 4096, -4096], 240))
    payload = codec.encode([ts.tolist(), mem.tolist()], [codec.DELTA2, codec.DELTA])
    assert len(payload) < 240 * 2 * 1.0


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p[:5],  # truncated header
        lambda p: p[: len(p) // 2],  # truncated body
        lambda p: b"XXXX" + p[4:],  # another magic
        lambda p: p[:20] + bytes([p[20] ^ 0x40]) + p[21:],  # a bit flipped in the body
        lambda p: p[:-1] + bytes([p[-1] ^ 1]),  # the checksum
    ],
    ids=["header", "body", "magic", "bit", "checksum"],
)
def test_a_damaged_chunk_is_an_error_not_other_numbers(damage: object) -> None:
    columns = [list(range(0, 50_000, 1000)), list(range(7, 57))]
    payload = codec.encode(columns, [codec.DELTA2, codec.DELTA])
    with pytest.raises(CorruptChunk):
        codec.decode(damage(payload))  # type: ignore[operator]


# -- the same samples in both formats ------------------------------------------------
TIERS = parse_tiers("raw=20m,1m=2h,15m=1d")
KEYS = [
    ("node", "", "node-a", ""),
    ("container", "ns", "web-0", "app"),
    ("container", "ns", "web-0", "sidecar"),
    ("pod", "ns", "web-0", ""),
]


@st.composite
def scrapes(draw: st.DrawFn) -> list[Batch]:
    """A node's scrapes over up to 3 hours: samples a few seconds before the scrape (so
    scrapes straddle buckets), repeats (no new sample), gaps, jumps, zeros; CPU in whole
    microcores (what schema 4 keeps)."""
    count = draw(st.integers(1, 720))
    interval = draw(st.sampled_from([15_000, 10_000, 60_000]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    batches, last = [], np.zeros(len(KEYS), np.int64)
    at = T0 + draw(st.integers(0, 900_000))
    for _ in range(count):
        at += interval * int(rng.choice([1, 1, 1, 1, 1, 1, 1, 2, 5]))  # gaps
        ts = at - rng.integers(0, 8_000, len(KEYS))
        repeat = rng.random(len(KEYS)) < 0.1
        ts = np.where(repeat & (last > 0), last, np.maximum(ts, last + 1))
        last = ts
        cpu = rng.choice([0, 1, 250, 10**6, 4 * 10**6], len(KEYS)) * 1000
        mem = rng.choice([0, 4096, 1 << 30, 1 << 40], len(KEYS)) + rng.integers(0, 9, len(KEYS))
        batches.append(
            Batch("node-a", tuple(KEYS), (ts / 1000).tolist(), cpu.tolist(), mem.tolist())
        )
    return batches


def _queries(newest_ms: int) -> list[tuple[float, float, float]]:
    """Ranges and steps a dashboard asks: each tier, aligned and not. Each stays a
    step inside its tier's retention: schema 3 deleted rows a minute at a time, schema 4
    deletes whole chunks, so what lies just beyond retention differs by design."""
    end = newest_ms / 1000
    return [
        (end - 900, end, 15),
        (end - 1200, end, 60),
        (end - 7000, end, 60),
        (end - 6600, end - 1234, 300),
        (end - 86000, end, 900),
        (end - 86000, end, 3600),
    ]


def _old_points(path: Path) -> dict[tuple[object, ...], list[HistoryPoint]]:
    conn = sqlite3.connect(path)
    try:
        newest = schema3.newest_ms(conn) or 0
        return {
            (key, q): schema3.query(conn, TIERS, key, *q) for key in KEYS for q in _queries(newest)
        }
    finally:
        conn.close()


def _new_points(
    h: History, newest_ms: int | None = None
) -> dict[tuple[object, ...], list[HistoryPoint]]:
    """The same queries of a schema 4 history (newest_ms: asked as of that moment)."""
    if newest_ms is None:
        stats = h.stats()
        assert stats.newest is not None
        newest_ms = round(stats.newest * 1000)
    return {(key, q): h.query(*key, *q) for key in KEYS for q in _queries(newest_ms)}


def assert_same_points(
    got: dict[tuple[object, ...], list[HistoryPoint]],
    expected: dict[tuple[object, ...], list[HistoryPoint]],
) -> None:
    """The same steps with the same values: raw samples exactly; a bucket's average and
    maximum CPU to the 10 microcores and its average memory to the page schema 4 keeps
    them to (history/chunks.py): within half of that."""
    assert got.keys() == expected.keys()
    for key, points in expected.items():
        found = got[key]
        assert [p.timestamp for p in found] == [p.timestamp for p in points], key
        start, end, step = key[1]  # type: ignore[misc]
        raw = step == 15 and end - start <= 900  # within every test's raw tier
        for a, b in zip(found, points, strict=True):
            if raw:
                assert a == b, key
                continue
            assert abs(a.cpu_nanocores - b.cpu_nanocores) <= 5000, (key, a, b)
            assert abs(a.cpu_max - b.cpu_max) <= 5000, (key, a, b)
            assert abs(a.memory_bytes - b.memory_bytes) <= 2048, (key, a, b)
            assert a.memory_max == b.memory_max, (key, a, b)


def _write_schema3(path: Path, batches: list[Batch]) -> None:
    old = schema3.HistoryWriter(path, TIERS)
    for at in range(0, len(batches), 40):
        old.write(batches[at : at + 40])
    old.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scrapes())
def test_chart_queries_give_the_points_of_schema_3(
    tmp_path_factory: pytest.TempPathFactory, batches: list[Batch]
) -> None:
    tmp = tmp_path_factory.mktemp("same")
    _write_schema3(tmp / "old.db", batches)
    expected = _old_points(tmp / "old.db")
    assert any(expected.values())
    with sqlite3.connect(tmp / "old.db") as conn:
        asked = schema3.newest_ms(conn)
    h = History(tmp / "new.db", TIERS, linger=0)
    for batch in batches:
        h.record_batch(batch)
    h.close()  # both formats seal their open buckets at close
    h = History(tmp / "new.db", TIERS)
    try:
        assert_same_points(_new_points(h, asked), expected)
    finally:
        h.close()
    # And a schema 3 file, migrated on open, gives them too.
    shutil.copy(tmp / "old.db", tmp / "migrated.db")
    h = History(tmp / "migrated.db", TIERS)
    try:
        assert_same_points(_new_points(h, asked), expected)
    finally:
        h.close()
    with sqlite3.connect(tmp / "migrated.db") as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert not {t for t in tables if t.startswith("samples_")}
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (4,)


def test_a_migration_stopped_half_way_goes_on_at_the_next_open(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    batches = []
    for group in ("node-a", "node-b"):
        keys = tuple((k, ns, f"{group}-{name}", c) for k, ns, name, c in KEYS)
        for i in range(200):
            ts = (T0 + i * 15_000) / 1000
            cpu = (rng.integers(0, 10**6, len(keys)) * 1000).tolist()
            batches.append(Batch(group, keys, [ts] * len(keys), cpu, [1 << 20] * len(keys)))
    _write_schema3(tmp_path / "h.db", batches)
    shutil.copy(tmp_path / "h.db", tmp_path / "old.db")
    # What a kubepulse killed after migrating the first layout leaves: both forms.
    conn = sqlite3.connect(tmp_path / "h.db", isolation_level=None)
    history_db.create_schema(conn)  # schema 3 still: its tables and the new ones
    first = conn.execute("SELECT min(id) FROM layouts").fetchone()[0]
    conn.execute("BEGIN")
    migrate._raw(conn, first, len(KEYS), 32)
    for name, width in (("samples_60s", 60), ("samples_900s", 900)):
        migrate._buckets(conn, name, width, first, len(KEYS), chunk_rows(TIERS)[0])
    conn.execute("COMMIT")
    conn.close()
    h = History(tmp_path / "h.db", TIERS)
    try:
        for group in ("node-a", "node-b"):
            key = ("container", "ns", f"{group}-web-0", "app")
            old = sqlite3.connect(tmp_path / "old.db")
            for q in [(T0 / 1000, T0 / 1000 + 3000, 15), (T0 / 1000, T0 / 1000 + 3000, 60)]:
                assert_same_points(
                    {(key, q): h.query(*key, *q)}, {(key, q): schema3.query(old, TIERS, key, *q)}
                )
                assert h.query(*key, *q)
            old.close()
    finally:
        h.close()


def test_small_chunks_are_merged_into_fewer_smaller_ones_that_read_the_same(
    tmp_path: Path,
) -> None:
    """Groups may seal small chunks (here 8 scrapes; 4 buckets by default) that upkeep
    merges. A history that never merges (raw chunks of 8) gives the same points from
    more, larger chunks."""
    rng = np.random.default_rng(4)
    level = rng.integers(10**3, 10**6, len(KEYS))
    batches = []
    for i in range(3 * 240):  # 3 hours of 15 s scrapes
        ts = (T0 + i * 15_000 - rng.integers(0, 3000, len(KEYS))) / 1000
        cpu = (level + rng.integers(0, 10**4, len(KEYS))) * 1000
        batches.append(Batch("node-a", tuple(KEYS), ts.tolist(), cpu.tolist(), [1 << 30] * 4))
    files = {}
    for name, raw_rows in (("merged", 32), ("unmerged", 8)):
        h = History(tmp_path / f"{name}.db", linger=0, raw_rows=raw_rows, raw_seal=8)
        for at in range(0, len(batches), 60):
            for batch in batches[at : at + 60]:
                h.record_batch(batch)
            assert h.flush(timeout=30)
        files[name] = _new_points(h)
        h.close()
        with sqlite3.connect(tmp_path / f"{name}.db") as conn:
            files[name + " chunks"] = conn.execute(
                "SELECT count(*), sum(length(payload)), max(rows) FROM chunks WHERE width = 0"
            ).fetchone()
    assert files["merged"] == files["unmerged"]
    assert any(files["merged"].values())
    merged, unmerged = files["merged chunks"], files["unmerged chunks"]
    assert merged[2] == 32 and unmerged[2] == 8
    assert merged[0] * 3 < unmerged[0]
    assert merged[1] < unmerged[1] * 0.9


def test_chunks_decode_the_same_on_many_threads_at_once() -> None:
    # recommend decodes on a thread beside its reader, the dashboard on any: a zstd
    # context shared between threads crashes the process or mixes their bytes.
    rng = np.random.default_rng(3)
    columns = [rng.integers(0, 1 << 40, (31, 96)) for _ in range(16)]
    payloads = [codec.encode(c, [codec.DELTA] * 31) for c in columns]

    def decode_all(_: int) -> bool:
        return all(
            np.array_equal(codec.decode_matrix(p), c)
            for _ in range(20)
            for p, c in zip(payloads, columns, strict=True)
        )

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(decode_all, range(8)))
