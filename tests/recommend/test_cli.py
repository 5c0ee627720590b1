"""Bad input: one line on stderr, exit 1, never a traceback."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kubepulse.api.selectors import SelectorError, parse_label_selector
from tests.recommend.support import MIB, container_rows, recommend, write_history


def selector_error(text: str) -> str:
    try:
        parse_label_selector(text)
    except SelectorError as err:
        return str(err)
    raise AssertionError(f"{text!r} parses")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--history-duration", "two weeks"], "invalid --history-duration 'two weeks'"),
        (["--history-duration", "0s"], "--history-duration must be greater than 0"),
        (["--cpu-percentile", "0"], "--cpu-percentile must be in (0, 100]"),
        (["--points-required", "0"], "--points-required must be at least 1"),
        (["-n", "a", "-A"], "-n and -A cannot be used together"),
        (["--strategy", "krr"], "argument --strategy: invalid choice: 'krr'"),
        (
            ["-o", "csv"],
            'error: unable to match a printer suitable for the output format "csv", allowed'
            " formats are: table,wide,json,yaml,patch",
        ),
        (["-l", "app in (a"], selector_error("app in (a")),
        (["--history", "h.db", "--prometheus-url", "http://x"], "cannot be used together"),
    ],
)
def test_a_bad_flag_is_refused_in_one_line(args: list[str], words: str, tmp_path: Path) -> None:
    out = recommend(*args)
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert words in lines[0], lines


def test_a_prometheus_url_that_is_not_http_is_refused() -> None:
    out = recommend("--prometheus-url", "ftp://x")
    assert out.returncode == 1
    assert out.stderr.startswith("error: --prometheus-url: 'ftp://x' is not an http://")


def test_a_missing_history_file_is_named(tmp_path: Path) -> None:
    out = recommend("--history", str(tmp_path / "nowhere.db"))
    assert (out.returncode, out.stderr) == (1, f"error: no history file at {tmp_path}/nowhere.db\n")


@pytest.mark.parametrize("tables", ["", "CREATE TABLE notes (text TEXT)"])
def test_an_empty_file_or_another_database_is_not_a_history(tables: str, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    other.touch()
    if tables:
        with sqlite3.connect(other) as conn:
            conn.execute(tables)
    out = recommend("--history", str(other))
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (
        f"error: {other} is not a kubepulse history (it has none of its tables): give the"
        " file that `up` or `server --history-file` writes\n"
    )


def test_a_file_that_is_not_a_history_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    out = recommend("--history", str(junk))
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: {junk}: ") and out.stderr.count("\n") == 1


def test_a_selector_without_a_cluster_says_what_it_needs(tmp_path: Path) -> None:
    path = write_history(
        tmp_path / "h.db", container_rows("default", "web", "app", [100] * 5, [MIB] * 5)
    )
    out = recommend("--history", str(path), "-l", "app=web")
    assert out.returncode == 1
    assert out.stderr == "error: -l needs the cluster's pods and their labels: give --kubeconfig\n"


def test_a_kubeconfig_asked_for_that_cannot_be_read_is_an_error(tmp_path: Path) -> None:
    path = write_history(
        tmp_path / "h.db", container_rows("default", "web", "app", [100] * 5, [MIB] * 5)
    )
    out = recommend("--history", str(path), "--kubeconfig", str(tmp_path / "kc"))
    assert out.returncode == 1
    assert out.stderr.startswith("error: no kubeconfig found") and out.stderr.count("\n") == 1


def test_a_reader_that_stops_early_gets_no_error_line(tmp_path: Path) -> None:
    # `kubepulse recommend -o json | head`: the pipe closes under the writer, which goes
    # quietly (as kubectl does), with nothing on stderr.
    rows = []
    for i in range(300):
        rows += container_rows("default", f"web-{i}", "app", [100] * 10, [100 * MIB] * 10)
    path = write_history(tmp_path / "h.db", rows)
    command = [sys.executable, "-m", "kubepulse", "recommend", "--history", str(path)]
    command += ["-A", "-o", "json", "--points-required", "5"]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert writer.stdout is not None and writer.stderr is not None
    assert writer.stdout.readline() == b"{\n"
    writer.stdout.close()
    stderr = writer.stderr.read()
    assert writer.wait(timeout=60) == 141
    assert stderr == b""
