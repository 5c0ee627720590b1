"""`kubepulse up`'s state directory broken the ways disks and people break it: each time
`up` either repairs it and says so, or refuses in one line that says what to do."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.test_kubectl_up import HOST, Up, start_up
from tests.history.damage import parametrize_damage
from tests.support import KUBEPULSE, fill, free_port, small_disk, wait_for


def run_up(state: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`up` that is expected to refuse: its exit code and its words."""
    command = [*KUBEPULSE, "up", "--state-dir", str(state)]
    command += ["--port", str(free_port()), "--agent-port", str(free_port())]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def first_up(tmp: Path) -> Path:
    """A state dir an earlier `up` made and left."""
    state = tmp / "state"
    gen = start_up(state, tmp / "first.log")
    up = next(gen)
    up.running.proc.send_signal(signal.SIGTERM)
    assert up.running.proc.wait(timeout=30) == 0
    gen.close()
    return state


def works(up: Up) -> None:
    nodes = json.loads(up.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").stdout)
    assert HOST in {n["metadata"]["name"] for n in nodes["items"]}


def test_a_lost_ca_key_means_a_new_ca_and_every_certificate_again(tmp_path: Path) -> None:
    state = first_up(tmp_path)
    old_ca = (state / "pki" / "ca.crt").read_bytes()
    (state / "pki" / "ca.key").unlink()

    gen = start_up(state, tmp_path / "second.log")
    up = next(gen)
    try:
        assert (state / "pki" / "ca.crt").read_bytes() != old_ca
        works(up)  # kubectl trusts the API's new certificate; the server its agent's
        log = up.running.log()
        assert "ca.key is missing: making a new CA" in log
        assert "give the new kubeconfig to clients that had the old one" in log
    finally:
        gen.close()


def test_a_second_up_on_one_state_dir_is_refused_with_the_first_ones_pid(
    tmp_path: Path,
) -> None:
    gen = start_up(tmp_path / "state", tmp_path / "first.log")
    up = next(gen)
    try:
        kubeconfig = up.kubeconfig.read_text()
        second = run_up(tmp_path / "state")
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"error: another kubepulse up (pid {up.running.proc.pid}) is using "
            f"{tmp_path / 'state'}: stop it first, or give this one another --state-dir"
        ]
        assert up.kubeconfig.read_text() == kubeconfig  # the first one's, untouched
        works(up)
    finally:
        gen.close()


def test_files_others_could_read_or_write_are_made_owner_only(tmp_path: Path) -> None:
    state = first_up(tmp_path)
    os.chmod(state, 0o755)
    os.chmod(state / "tokens.csv", 0o666)
    os.chmod(state / "history.db", 0o644)
    gen = start_up(state, tmp_path / "second.log")
    up = next(gen)
    try:
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()}
        modes |= {f"pki/{p.name}": stat.S_IMODE(p.stat().st_mode) for p in state.glob("pki/*")}
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        others = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
        assert others == {}, others  # history.db and its WAL too
        log = up.running.log()
        assert "tokens.csv was writable to others (mode 0666): made it owner-only" in log
    finally:
        gen.close()


@pytest.mark.parametrize(
    ("file", "content", "said"),
    [
        pytest.param(
            "pki/ca.crt",
            b"junk",
            "error: cannot load the CA in {pki} (Unable to load PEM file. See "
            "https://cryptography.io/en/latest/faq/#why-can-t-i-import-my-pem-file for more "
            "details. MalformedFraming): delete {pki}/ca.crt and {pki}/ca.key to make a new "
            "one (clients then need the new kubeconfig)",
            id="junk-ca",
        ),
        pytest.param(
            "tokens.csv",
            b"\xff\xfe\x00garbage",
            "error: {state}/tokens.csv is not a token file: it is not text; fix it, or delete "
            "{state}/tokens.csv to make a new admin token",
            id="junk-tokens",
        ),
        pytest.param(
            "tokens.csv",
            b"just,two\n",
            'error: {state}/tokens.csv: line 1: want token,user,uid[,"groups"]; fix it, or '
            "delete {state}/tokens.csv to make a new admin token",
            id="short-token-line",
        ),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_naming_it_and_the_fix(
    tmp_path: Path, file: str, content: bytes, said: str
) -> None:
    state = first_up(tmp_path)
    (state / file).write_bytes(content)
    refused = run_up(state)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert lines[-1] == said.format(state=state, pki=state / "pki"), refused.stderr
    assert "Traceback" not in refused.stderr


def test_an_empty_agent_token_is_made_anew(tmp_path: Path) -> None:
    state = first_up(tmp_path)
    (state / "agent-token").write_text("")
    gen = start_up(state, tmp_path / "second.log")
    up = next(gen)
    try:
        works(up)
        assert (state / "agent-token").read_text().strip()
        assert "agent-token was empty or unreadable: made a new one" in up.running.log()
    finally:
        gen.close()


def test_a_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory")
    refused = run_up(tmp_path / "state")
    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: cannot make {tmp_path / 'state'}")
    )


# -- history.db: whatever happens to it, the API and the dashboard stay up ---------------
def stopped_cleanly(up: Up) -> str:
    """SIGTERM; up exits 0 without a traceback. Returns its log."""
    up.running.proc.send_signal(signal.SIGTERM)
    assert up.running.proc.wait(timeout=30) == 0, up.running.log()
    log = up.running.log()
    assert "Traceback" not in log, log
    return log


def logged(up: Up, pattern: str, timeout: float = 30) -> re.Match[str]:
    """The first line of up's log that pattern matches, once there is one."""
    return wait_for(
        lambda: re.search(pattern, up.running.log(), re.MULTILINE), timeout, repr(pattern)
    )


def _contents(path: Path) -> bytes | dict[str, bytes]:
    """What a file or directory holds (the check at open writes nothing first)."""
    if path.is_dir():
        return {p.name: p.read_bytes() for p in path.iterdir()}
    return path.read_bytes()


@parametrize_damage()
def test_a_history_file_that_cannot_be_used_is_moved_aside_and_up_serves(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    state = first_up(tmp_path)
    db = state / "history.db"
    damage(db)
    damaged = _contents(db)

    gen = start_up(state, tmp_path / "second.log")
    up = next(gen)
    try:
        works(up)
        moved = logged(
            up,
            rf"WARNING .*history: .*: moved it to ({re.escape(str(db))}\.corrupt-\d{{8}}T\d{{6}}Z)"
            rf" and started a new {re.escape(str(db))}$",
        )
        aside = Path(moved.group(1))
        assert _contents(aside) == damaged  # moved, not deleted nor changed
        wait_for(
            lambda: db.is_file() and db.read_bytes().startswith(b"SQLite format 3\0"),
            30,
            "a new history.db",
        )
        works(up)
        stopped_cleanly(up)
    finally:
        gen.close()


@pytest.fixture
def small_state(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/state on a 20 MB tmpfs of its own (root: mount), so that it can be filled."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    state = tmp_path / "state"
    with small_disk(state):
        yield state


@pytest.mark.root
def test_a_full_disk_at_start_leaves_history_off_and_up_serves(
    tmp_path: Path, small_state: Path
) -> None:
    first_up(tmp_path)  # on the tmpfs: its certificates, tokens and kubeconfig exist
    fill(small_state)

    gen = start_up(small_state, tmp_path / "second.log")
    up = next(gen)
    try:
        works(up)
        # SQLite's words here are "disk I/O error" (SQLITE_IOERR_SHMSIZE: the -shm cannot grow).
        db = re.escape(str(small_state / "history.db"))
        logged(up, rf"WARNING .*history: cannot open {db}: .+; the API goes on without history")
        works(up)
        log = stopped_cleanly(up)
        assert log.count("the API goes on without history") == 1  # said once
    finally:
        gen.close()


@pytest.mark.root
def test_a_disk_that_fills_at_run_time_leaves_up_serving_and_stopping_cleanly(
    tmp_path: Path, small_state: Path
) -> None:
    gen = start_up(small_state, tmp_path / "up.log")
    up = next(gen)
    try:
        fill(small_state)
        # A new state dir's series and layouts are written with the first rates recorded
        # (the second scrape, ~10 s after up is up), upkeep every 60 s of samples after
        # that: no need to wait for a chunk to be sealed.
        logged(up, r"WARNING .*history: cannot write .*: database or disk is full", 120)
        works(up)
        assert HOST in up.kubectl("top", "nodes").stdout
        log = stopped_cleanly(up)
        assert "cannot rollback" not in log
        assert "samples not written at exit: database or disk is full" in log
    finally:
        gen.close()
