"""The scrape loop's schedule: upstream's spread of a tick's requests, in steps."""

from __future__ import annotations

import random

import pytest

from kubepulse.scrape.manager import MAX_SPREAD, SPREAD_STEP, start_delays


@pytest.mark.parametrize(
    ("nodes", "steps"),
    [
        (0, 0),  # nothing to scrape
        (1, 1),  # 8 ms of spread: everything at once
        (31, 1),  # 248 ms: still within one step
        (32, 2),  # 256 ms: just over one step
        (100, 4),  # 800 ms
        (500, 16),  # 4 s: the cap
        (5000, 16),  # capped at 4 s however many nodes
    ],
)
def test_scrapes_start_in_steps_within_upstreams_spread(nodes: int, steps: int) -> None:
    delays = start_delays(nodes, random.Random(7))
    assert len(delays) == nodes
    # Every delay is a whole step, below min(8 ms x nodes, 4 s) rounded up to a step.
    assert all(d / SPREAD_STEP == round(d / SPREAD_STEP) for d in delays)
    assert all(0 <= d < steps * SPREAD_STEP for d in delays)
    assert max(delays, default=0) < MAX_SPREAD
    if nodes >= 100:
        # Spread, not bunched: every step is used.
        assert len(set(delays)) == steps


def test_steps_are_drawn_at_random_for_each_tick() -> None:
    rng = random.Random(3)
    first, second = start_delays(1000, rng), start_delays(1000, rng)
    assert first != second
    # Roughly even: no step takes more than twice its share of 1,000 nodes.
    assert max(first.count(d) for d in set(first)) < 2 * 1000 / 16
