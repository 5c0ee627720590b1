"""Failed sign-ins, counted per client address and slowed down.

A token is a long random secret, but a login form that answers as fast as it is asked
lets anyone try them by the thousand. So more than `failures` failed sign-ins from one
address within `window` seconds close the form to that address until the oldest of
them is a window old: each attempt then gets 429 and a Retry-After, without its token
being checked. Failures are logged with the address and never the token; refusals are
logged once a minute per address, however many there are.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable

log = logging.getLogger("kubepulse.dashboard")

MAX_ADDRESSES = 10_000
"""Addresses remembered at most: the oldest is forgotten first."""


class SignInThrottle:
    def __init__(
        self,
        failures: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures, self.window, self.clock = failures, window, clock
        self._failed: OrderedDict[str, deque[float]] = OrderedDict()
        self._refused: dict[str, tuple[float, int]] = {}  # address -> (said at, since)

    def wait(self, address: str) -> float:
        """Seconds before `address` may try again; 0 when it may now."""
        times = self._recent(address)
        if len(times) < self.failures:
            return 0.0
        wait = times[0] + self.window - self.clock()
        self._say_refused(address)
        return max(wait, 0.001)

    def failed(self, address: str) -> None:
        times = self._recent(address)
        times.append(self.clock())
        self._failed[address] = times
        self._failed.move_to_end(address)
        while len(self._failed) > MAX_ADDRESSES:
            self._failed.popitem(last=False)
        log.warning("failed sign-in from %s (%d in the last minute)", address, len(times))

    def succeeded(self, address: str) -> None:
        self._failed.pop(address, None)
        self._refused.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        times = self._failed.get(address, deque())
        since = self.clock() - self.window
        while times and times[0] <= since:
            times.popleft()
        if not times:
            self._failed.pop(address, None)
        return times

    def _say_refused(self, address: str) -> None:
        now = self.clock()
        said, count = self._refused.get(address, (now - self.window, 0))
        count += 1
        if now - said >= self.window:
            log.warning(
                "refusing sign-ins from %s: %d failed in a minute (%d refused since)",
                address,
                self.failures,
                count,
            )
            said, count = now, 0
        self._refused[address] = (said, count)
