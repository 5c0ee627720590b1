"""Go durations and RFC 3339 times as Kubernetes writes and reads them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubepulse.timefmt import go_duration, parse_go_duration, parse_rfc3339, rfc3339


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (15, "15s"),
        (15.003, "15.003s"),
        (0.25, "250ms"),
        (90.5, "1m30.5s"),
        (3600, "1h0m0s"),
        (0.000_001, "1µs"),
    ],
)
def test_go_duration_writes_what_go_writes_and_reads_it_back(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "15", "s", "15x", "1m 30s", "-", "15s!"])
def test_parse_go_duration_refuses_what_is_not_one(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(text)


@given(st.integers(min_value=0, max_value=10**15))
def test_every_written_duration_reads_back_to_the_nanosecond(ns: int) -> None:
    assert round(parse_go_duration(go_duration(ns / 1e9)) * 1e9) == pytest.approx(ns, abs=1)


@given(st.integers(min_value=0, max_value=4_102_444_800))
def test_rfc3339_round_trips_whole_seconds(seconds: int) -> None:
    assert parse_rfc3339(rfc3339(seconds + 0.9)) == seconds
