"""`kubepulse up`'s state directory broken the ways disks and people break it: each time
`up` either repairs it and says so, or refuses in one line that says what to do."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_kubectl_up import HOST, Up, start_up
from tests.support import KUBEPULSE, free_port


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
