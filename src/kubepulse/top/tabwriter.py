"""Go's text/tabwriter, as kubectl configures it (printers.GetNewTabWriter).

kubectl writes tab-terminated cells through tabwriter.NewWriter(out, 6, 4, 3, ' ', 0):
each column is as wide as its widest cell plus 3 spaces, and at least 6. A column
block is a run of consecutive lines that have a cell in that column; it is sized on
its own, which is why `kubectl top pod --sum` lines up the way it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

MIN_WIDTH = 6
PADDING = 3


def render(text: str) -> str:
    lines = [line.split("\t") for line in text.split("\n")]
    trailing_newline = text.endswith("\n")
    if trailing_newline:
        lines.pop()
    out: list[str] = []
    _format(lines, 0, len(lines), [], out)
    return "\n".join(out) + ("\n" if trailing_newline else "")


def _format(
    lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str]
) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        # A block of lines with a cell in this column begins here.
        _write(lines, line0, this, widths, out)
        line0 = this
        width = MIN_WIDTH
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + PADDING)
            this += 1
        _format(lines, line0, this, [*widths, width], out)
        line0 = this
    _write(lines, line0, line1, widths, out)


def _write(
    lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str]
) -> None:
    for cells in lines[line0:line1]:
        parts = []
        for j, cell in enumerate(cells):
            parts.append(cell.ljust(widths[j]) if j < len(widths) else cell)
        out.append("".join(parts))


def write_lines(lines: Sequence[str], out: IO[str]) -> None:
    """render() of lines (no newlines in them) written a line at a time, without the
    cells of every line held at once: what `kubepulse recommend` prints for 150,000
    containers. Lines with the same number of cells are one block per column (every
    column as wide as its widest cell); any other text goes through render()."""
    counts = {line.count("\t") for line in lines}
    if len(counts) != 1:
        out.write(render("".join(f"{line}\n" for line in lines)))
        return
    widths = [MIN_WIDTH] * counts.pop()
    for line in lines:
        for j, cell in enumerate(line.split("\t")[:-1]):
            if len(cell) + PADDING > widths[j]:
                widths[j] = len(cell) + PADDING
    for line in lines:
        cells = line.split("\t")
        padded = "".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=False))
        out.write(padded + cells[-1] + "\n")
