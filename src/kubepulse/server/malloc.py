"""glibc malloc for a server that receives thousands of kubelet answers a cycle.

A cycle's answers, their gunzipped bodies, decoded text and TLS records are freed as
soon as each node is stored, but glibc keeps freed memory in its heap and returns only
the free space at the top of it (M_TRIM_THRESHOLD) or in blocks it mapped on their own
(above M_MMAP_THRESHOLD). Both defaults move against a server like this one: the mmap
threshold rises to the size of the largest block freed (up to 32 MiB), so that after the
first large answer every later one is carved out of the heap; and a long-lived
allocation made meanwhile (a stored point, a grown dict, an OpenSSL buffer) pins the heap
above the free space, so the resident size keeps the peak of every cycle's transient
memory, fragmented, for good.

So the server, at start (tune()):
- fixes M_MMAP_THRESHOLD at MMAP_THRESHOLD, which also stops it from rising: a block of
  that size or more (an answer's body, its text) is mapped on its own and unmapped when
  freed;
- caps the malloc arenas at ARENA_MAX: threads (the history writer, the default
  executor) would each get an arena of their own otherwise;
and after each scrape cycle (trim()) gives back to the kernel every free page in the
heap, not only at its top (malloc_trim(0) madvises the pages inside free chunks away).

Only glibc has these; elsewhere (musl, macOS) both do nothing. Nothing here changes what
the process computes, only where freed memory goes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD = 64 * 1024
"""Bytes from which a block is mapped on its own: below a typical kubelet answer
(20-250 KB plain), above nearly every object Python allocates."""
ARENA_MAX = 2

_libc: ctypes.CDLL | None = None


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            return None
        _libc = libc
    return _libc


def tune() -> bool:
    """Set the thresholds (module docstring); False where malloc is not glibc's."""
    libc = _glibc()
    if libc is None:
        return False
    ok = int(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) == 1
    ok = int(libc.mallopt(M_ARENA_MAX, ARENA_MAX)) == 1 and ok
    if not ok:
        log.debug("mallopt refused a setting")
    return ok


def trim() -> None:
    """Give every free page of the heap back to the kernel (glibc's malloc_trim(0))."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


class TrimAfterCycle:
    """A scrape Recorder that trims the heap once a cycle is over."""

    def node_stored(self, node_name: str) -> None:
        pass

    def tick_done(self) -> None:
        trim()
