"""A chunk of history: many series' integers over a stretch of time, in a few bytes each.

The rules are Gorilla's (Pelkonen et al., VLDB 2015) and Prometheus's chunk encoding for
time, with integer deltas instead of XOR for values, since every value here is an
integer (milliseconds, microcores, bytes):
- timestamps are regular (one per scrape or per bucket), so each is stored as the change
  of its interval: delta-of-delta (DELTA2), nearly always zero or a few milliseconds;
- values are stored as the change from the series' previous value (DELTA): CPU moves by
  a fraction of its level, memory by whole pages, often not at all;
- a column's usual change (the median: a scrape interval of timestamps that wander) is
  taken out of every change but the first, and the changes are divided by their
  greatest common divisor (memory moves in 4 KiB pages, time in whole seconds: 12 and
  10 bits a value saved, exactly), then zigzag-encoded (Protocol Buffers' sint64: small
  negative and positive changes both become small numbers);
- the chunk's integers, column by column, are laid out as 64-bit little-endian words and
  byte-shuffled (all first bytes, then all second bytes, ...), so that the zero high
  bytes of small changes lie together, then compressed with zstd. The shuffle is
  Blosc's: it lets a general compressor see what a bit-packer would.

A chunk is (columns, rows) of integers: `encode(columns, kinds)` and `decode(payload)`
are exact inverses for any int64 values (tests/history/test_chunks.py). What the columns
mean is the writer's business (chunks.py); the codec knows integers only.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import zstandard

MAGIC = b"KPC3"
_HEADER = struct.Struct("<4sII")  # magic, columns, rows
_PER_COLUMN = 17  # its kind (1 byte), usual change and divisor (8 bytes each)
LEVEL = 3
"""zstd's default: hundreds of MB/s; higher levels save a few percent at a multiple of CPU."""

DELTA = 0
"""A column stored as changes from its previous value (the first from 0)."""
DELTA2 = 1
"""A column stored as changes of its changes: timestamps."""

Ints = npt.NDArray[np.int64]

# Neither a ZstdCompressor nor a ZstdDecompressor is safe to share between threads
# (python-zstandard's docs), and the history is encoded and decoded on several: each
# thread has its own.
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    found = getattr(_local, "compressor", None)
    if found is None:
        # A checksum (4 bytes) makes a damaged chunk an error, not different numbers.
        found = _local.compressor = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True)
    return found


def _decompressor() -> zstandard.ZstdDecompressor:
    found = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


class CorruptChunk(ValueError):
    """A payload that is not a chunk this codec wrote: it is skipped, and counted."""


def encode(columns: Ints | Sequence[Sequence[int]], kinds: Sequence[int]) -> bytes:
    """One chunk of equally long integer columns (a 2-D array, a row per column);
    kinds[i] is DELTA or DELTA2."""
    matrix = np.asarray(columns, dtype=np.int64)
    if matrix.ndim != 2:
        matrix = matrix.reshape(len(kinds), -1)
    count, rows = matrix.shape
    if count != len(kinds):
        raise ValueError("a kind for every column")
    with np.errstate(over="ignore"):  # wrapping is exact: decode wraps back
        changes = _deltas(matrix)
        twice = np.asarray(kinds, dtype=bool)
        if twice.any():
            changes[twice] = _deltas(changes[twice])
        usual = np.zeros(count, np.int64)
        if rows > 2:
            usual = np.median(changes[:, 1:], axis=1).astype(np.int64)
            changes[:, 1:] -= usual[:, None]
        divisors = np.gcd.reduce(changes, axis=1) if rows else np.zeros(count, np.int64)
        divisors[divisors <= 0] = 1  # all zero (gcd 0), or -2^63 (gcd stays negative)
        scaled = changes // divisors[:, None]
        zigzag = (scaled << 1) ^ (scaled >> 63)
    words = np.ascontiguousarray(zigzag, dtype="<i8")
    shuffled = words.view(np.uint8).reshape(-1, 8).T.tobytes()
    head = (
        np.asarray(kinds, dtype=np.uint8).tobytes()
        + usual.astype("<i8").tobytes()
        + divisors.astype("<i8").tobytes()
    )
    return _HEADER.pack(MAGIC, count, rows) + _compressor().compress(head + shuffled)


def decode(payload: bytes, wanted: Iterable[int] | None = None) -> dict[int, Ints]:
    """The columns of a chunk, as encode() was given them, by position; with `wanted`,
    only those (a reader of one series needs three of a node's few hundred)."""
    picked = None if wanted is None else list(wanted)
    values = decode_matrix(payload, picked)
    return {i: values[k] for k, i in enumerate(range(len(values)) if picked is None else picked)}


def shape(payload: bytes) -> tuple[int, int]:
    """A chunk's (columns, rows), from its header alone."""
    try:
        magic, count, rows = _HEADER.unpack_from(payload)
    except struct.error as err:
        raise CorruptChunk(f"chunk too short: {len(payload)} bytes") from err
    if magic != MAGIC:
        raise CorruptChunk("not a kubepulse chunk")
    return int(count), int(rows)


def decode_matrix(payload: bytes, picked: list[int] | None = None) -> Ints:
    """decode() as one array: a row per column (every one, or those picked, in order)."""
    count, rows = shape(payload)
    size = count * _PER_COLUMN + count * rows * 8
    try:
        body = _decompressor().decompress(payload[_HEADER.size :], max_output_size=size)
    except zstandard.ZstdError as err:
        raise CorruptChunk(f"chunk does not decompress: {err}") from err
    if len(body) != size:
        raise CorruptChunk(f"chunk holds {len(body)} bytes, not {size}")
    kinds = np.frombuffer(body, np.uint8, count)
    usual = np.frombuffer(body, "<i8", count, offset=count)
    divisors = np.frombuffer(body, "<i8", count, offset=count * 9)
    planes = np.frombuffer(body, np.uint8, offset=count * _PER_COLUMN).reshape(8, count * rows)
    chosen = np.arange(count) if picked is None else np.asarray(picked, dtype=np.int64)
    outside = chosen[(chosen < 0) | (chosen >= count)]
    if len(outside):
        raise CorruptChunk(f"no column {int(outside[0])} in a chunk of {count}")
    by_column = planes.reshape(8, count, rows)
    if picked is not None:
        by_column = np.take(by_column, chosen, axis=1)
    # The shuffle undone a byte plane at a time: eight strided copies are several
    # times faster than one transposing copy of the (8, n) bytes, and a plane of zeros
    # (the high bytes of small changes, the usual case) needs none.
    unshuffled = np.zeros((len(chosen), rows, 8), np.uint8)
    for k in range(8):
        if by_column[k].any():
            unshuffled[:, :, k] = by_column[k]
    changes = unshuffled.view("<i8").reshape(len(chosen), rows)
    with np.errstate(over="ignore"):
        # zigzag undone in place: (z >>> 1) ^ -(z & 1)
        low = changes & 1
        np.negative(low, out=low)
        np.right_shift(changes.view(np.uint64), np.uint64(1), out=changes.view(np.uint64))
        changes ^= low
        changes *= divisors[chosen][:, None]
        changes[:, 1:] += usual[chosen][:, None]
        twice = np.flatnonzero(kinds[chosen] == DELTA2)
        if len(twice):
            changes[twice] = np.cumsum(changes[twice], axis=1)
        return np.cumsum(changes, axis=1, out=changes)


def _deltas(matrix: Ints) -> Ints:
    """Each value's change from the one before in its row (the first: from 0)."""
    out = np.empty_like(matrix)
    if matrix.shape[1]:
        out[:, 0] = matrix[:, 0]
        np.subtract(matrix[:, 1:], matrix[:, :-1], out=out[:, 1:])
    return out
