"""Writing a table a line at a time prints what the whole-text tabwriter prints."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from kubepulse.top.tabwriter import render, write_lines

cells = st.text(alphabet="ab -?>m", max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.one_of(
        # Rows of one width, as recommend's table has them.
        st.integers(1, 6).flatmap(
            lambda n: st.lists(st.lists(cells, min_size=n, max_size=n), min_size=1, max_size=8)
        ),
        # Any rows: blocks of columns end where a line has fewer cells.
        st.lists(st.lists(cells, min_size=0, max_size=5), min_size=1, max_size=8),
    )
)
def test_a_table_written_line_by_line_is_the_rendered_text(lines: list[list[str]]) -> None:
    text = ["".join(f"{c}\t" for c in row) for row in lines]
    out = io.StringIO()
    write_lines(text, out)
    assert out.getvalue() == render("".join(f"{line}\n" for line in text))
