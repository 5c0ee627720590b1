"""The agent answers only to a good bearer token or a client cert from its CA."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepulse import pki
from tests.agent.conftest import Agent, start_agent
from tests.support import KUBEPULSE


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("certs")
    good_ca, other_ca = pki.new_ca("client-ca"), pki.new_ca("someone-elses-ca")
    good_ca.write(base / "ca.crt", base / "ca.key")
    for name, ca in (("good", good_ca), ("other", other_ca)):
        pair = pki.issue(ca, "metrics-scraper", organizations=["scrapers"], client=True)
        pair.write(base / f"{name}.crt", base / f"{name}.key")
    return {"dir": base, "ca": base / "ca.crt"}


@pytest.fixture(scope="module")
def secured_agent(
    tmp_path_factory: pytest.TempPathFactory, certs: dict[str, Path]
) -> Iterator[Agent]:
    tmp = tmp_path_factory.mktemp("agent")
    yield from start_agent(tmp, "--client-ca-file", str(certs["ca"]))


def pair(certs: dict[str, Path], name: str) -> tuple[Path, Path]:
    return certs["dir"] / f"{name}.crt", certs["dir"] / f"{name}.key"


@pytest.mark.parametrize(
    ("token", "cert", "expected"),
    [
        pytest.param(None, None, 401, id="no-credentials"),
        pytest.param("not-the-token", None, 401, id="wrong-token"),
        pytest.param("", None, 401, id="empty-bearer"),
        pytest.param("default", None, 200, id="good-token"),
        pytest.param(None, "good", 200, id="good-client-cert"),
    ],
)
@pytest.mark.parametrize("path", ["/metrics/resource", "/stats/summary"])
def test_only_known_identities_get_stats(
    secured_agent: Agent,
    certs: dict[str, Path],
    path: str,
    token: str | None,
    cert: str | None,
    expected: int,
) -> None:
    status, body = secured_agent.get(path, token=token, cert=pair(certs, cert) if cert else None)
    assert status == expected
    if expected == 401:
        assert json.loads(body) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }


@pytest.mark.parametrize("token", [None, "default"])
def test_a_client_cert_from_another_ca_fails_the_handshake(
    secured_agent: Agent, certs: dict[str, Path], token: str | None
) -> None:
    """The kubelet would answer 401 (or serve the good token); the agent verifies client
    certificates against --client-ca-file in the TLS handshake, because Python's ssl
    cannot hand an unverified certificate to the authenticator (see kubepulse.tlsauth)."""
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        secured_agent.get("/metrics/resource", token=token, cert=pair(certs, "other"))


def test_unknown_paths_are_404_status(secured_agent: Agent) -> None:
    for path in ("/", "/metrics", "/stats/summary/extra", "/pods", "/metrics/probes"):
        status, body = secured_agent.get(path)
        assert status == 404, path
        assert json.loads(body)["reason"] == "NotFound"


def test_healthz_is_open(secured_agent: Agent) -> None:
    assert secured_agent.get("/healthz", token=None) == (200, b"ok")


def test_token_never_appears_in_the_log(secured_agent: Agent) -> None:
    secured_agent.get("/metrics/resource")
    assert secured_agent.token not in secured_agent.running.log()


def test_authentication_skip_serves_anyone_and_warns(tmp_path: Path) -> None:
    gen = start_agent(tmp_path, "--authentication-skip")
    agent = next(gen)
    try:
        status, _ = agent.get("/metrics/resource", token=None)
        assert status == 200
        assert "--authentication-skip" in agent.running.log()
        assert "WARNING" in agent.running.log()
    finally:
        gen.close()


def test_agent_without_any_authentication_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [*KUBEPULSE, "agent", "--port", "0", "--cert-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: no authentication configured: give --token-file or --client-ca-file "
        "(or --authentication-skip, insecure)"
    ]
    assert "Traceback" not in result.stderr
