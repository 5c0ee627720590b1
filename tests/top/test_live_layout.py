"""The live view's lines for a terminal size, and its sparkline's time slices."""

from __future__ import annotations

import pytest

from kubepulse.top.layout import (
    ASCII,
    SPARK_WIDTH,
    UNICODE,
    View,
    buckets,
    lines,
    sparkline,
    window_seconds,
)
from kubepulse.top.printer import CpuMemory

MI = 1024 * 1024
NOW = 10_000.0


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([], [None] * 5),
        ([(NOW, 7)], [None, None, None, None, 7]),
        # Five slices of 60 s over the last 300 s: [NOW-300, NOW-240) is the first.
        ([(NOW - 300, 1)], [1, None, None, None, None]),
        ([(NOW - 241, 1), (NOW - 239, 2)], [1, 2, None, None, None]),
        ([(NOW - 301, 9), (NOW + 1, 9)], [None] * 5),  # outside the window
        ([(NOW - 50, 3), (NOW - 40, 8), (NOW - 30, 5)], [None, None, None, None, 8]),
        # The server was away in between: those slices stay empty.
        ([(NOW - 250, 4), (NOW - 130, 6), (NOW - 10, 2)], [4, None, 6, None, 2]),
    ],
)
def test_each_cell_is_the_peak_of_its_time_slice(
    samples: list[tuple[float, int]], expected: list[int | None]
) -> None:
    assert buckets(samples, NOW, 300.0, 5) == expected


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ([None, 0, 7, 14], " 037"),
        ([0, 0], "00"),
        ([None, None], "  "),
        ([3], "7"),
    ],
)
def test_sparkline_scales_to_the_row_peak_and_leaves_gaps_blank(
    cells: list[int | None], expected: str
) -> None:
    assert sparkline(cells, "01234567") == expected


@pytest.mark.parametrize(
    ("interval", "minutes"),
    [(0.5, 5), (2.0, 5), (9.0, 5), (10.0, 6), (60.0, 32)],
)
def test_window_is_five_minutes_unless_refreshes_are_too_slow(
    interval: float, minutes: int
) -> None:
    # A cell spans at least two refreshes: 16 cells x 2 x interval.
    assert window_seconds(interval) == minutes * 60


def spark_of(view: View, now: float) -> str:
    row = lines(view, 80, 24, UNICODE, now)[4][0]
    return row[-SPARK_WIDTH:]


def test_sparkline_covers_the_last_five_minutes_at_the_default_interval() -> None:
    view = View("pod", 2.0)
    for i in range(301):  # ten minutes of refreshes; CPU rises from 0m over the last five
        usage = CpuMemory(max(0, i - 150), MI)
        view.update([("default", "web-1", usage)], CpuMemory(0, 0), 2.0 * i, 0.0)
    row = view.rows[("default", "web-1")]
    assert row.samples[0][0] == 600.0 - 300.0  # older samples are dropped
    # Each of the 16 cells is a slice of 18.75 s holding samples: rising from the first
    # cell, five minutes ago, to the last.
    spark = spark_of(view, 600.0)
    assert " " not in spark
    assert [UNICODE.blocks.index(c) for c in spark] == sorted(
        UNICODE.blocks.index(c) for c in spark
    )
    assert (spark[0], spark[-1]) == ("▁", "█")
    # A minute without answers (3.2 slices): the newest three are empty, the rest slid left.
    later = spark_of(view, 660.0)
    assert later[-3:] == "   "
    assert " " not in later[:-3]
    assert later[-4] == "█"


LONG_NAMESPACE = "payments-team-production-eu-west"
LONG_NAME = "checkout-service-7db6d8ff4d-x2x9p-with-a-rather-long-name-suffix"


def pods_view() -> View:
    view = View("pod", 2.0)
    items = [
        (LONG_NAMESPACE, LONG_NAME, CpuMemory(12345, 2048 * MI)),
        ("default", "web-1", CpuMemory(350, 3 * MI)),
    ]
    view.update(items, CpuMemory(0, 0), NOW, 0.0)
    return view


def shown_name(row: str, namespace_shown: bool) -> str:
    return row.split()[1 if namespace_shown else 0]


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_pod_columns_stay_whole_at_any_width(width: int) -> None:
    out = [text for text, _style in lines(pods_view(), width, 24, UNICODE, NOW)]
    assert all(len(text) <= width - 1 for text in out)  # curses cannot fill the last column
    header, busy, web = out[3], out[4], out[5]
    assert header.split() == ["NAMESPACE", "NAME", "CPUv", "MEMORY", "CPU", "5m"]
    for row, cpu, memory in [(busy, "12345m", "2048Mi"), (web, "350m", "3Mi")]:
        assert row[-SPARK_WIDTH:] == " " * (SPARK_WIDTH - 1) + "█"
        assert row[:-SPARK_WIDTH].split()[-2:] == [cpu, memory]
        # Right-aligned under their headers.
        assert row.index(cpu) + len(cpu) == header.index("CPUv") + len("CPUv")
        assert row.index(memory) + len(memory) == header.index("MEMORY") + len("MEMORY")
        assert row.index(" " * (SPARK_WIDTH - 1) + "█") == header.index("CPU 5m")
    name = shown_name(busy, namespace_shown=True)
    assert name == LONG_NAME or (name.endswith("…") and LONG_NAME.startswith(name[:-1]))
    assert busy.split()[0].rstrip("…") in LONG_NAMESPACE


def test_wider_terminals_give_the_name_column_the_room() -> None:
    def name_at(width: int) -> str:
        return shown_name(lines(pods_view(), width, 24, UNICODE, NOW)[4][0], True)

    assert len(name_at(80)) < len(name_at(120)) < len(name_at(200))
    assert name_at(200) == LONG_NAME
    assert name_at(80).endswith("…")


def test_nodes_have_no_namespace_column_and_ascii_terminals_get_ascii() -> None:
    view = View("node", 2.0, sort="name")
    view.update([("", "node-a", CpuMemory(500, MI))], CpuMemory(3800, 4 * 1024 * MI), NOW, 0.0)
    out = [text for text, _style in lines(view, 80, 24, ASCII, NOW)]
    assert out[1] == "CPU 500m of 3800m (13%)   MEM 1Mi of 4096Mi (0%)"
    assert out[3].split() == ["NAMEv", "CPU", "MEMORY", "CPU", "5m"]
    assert out[4].split() == ["node-a", "500m", "1Mi", "#"]


def test_rows_beyond_the_terminal_height_are_left_out() -> None:
    view = View("pod", 2.0)
    view.update(
        [("default", f"web-{i}", CpuMemory(i, MI)) for i in range(30)], CpuMemory(0, 0), NOW, 0.0
    )
    out = lines(view, 80, 10, UNICODE, NOW)
    assert len(out) == 10
    assert "30 of 30 shown" in out[0][0]
