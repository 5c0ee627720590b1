"""--tls-min-version, --tls-cipher-suites, --tls-sni-cert-key and --permit-port-sharing
of a real `kubepulse server`, checked from outside with `openssl s_client`."""

from __future__ import annotations

import ipaddress
import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from kubepulse import pki
from kubepulse.server.config import ServerConfig, ServingOptions
from tests.support import (
    KUBEPULSE,
    Running,
    free_port,
    negotiated,
    run_kubepulse,
    s_client,
    wait_serving,
)

LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and serving certificates named by their CN: default, wildcard (*.example.com
    given on the command line), api (api.example.com in its SAN), db-found (db.example.com
    in its SAN) and db-given (db.example.com given on the command line)."""
    base = tmp_path_factory.mktemp("tls")
    ca = pki.new_ca("test-ca")
    ca.write(base / "ca.crt", base / "ca.key")
    names = {
        "default": ["kubepulse.test"],
        "wildcard": ["unrelated.test"],
        "api": ["api.example.com"],
        "db-found": ["db.example.com"],
        "db-given": ["unrelated-too.test"],
    }
    for cn, dns in names.items():
        pki.issue(ca, cn, dns_names=dns, ips=[LOOPBACK]).write(
            base / f"{cn}.crt", base / f"{cn}.key"
        )
    (base / "tokens.csv").write_text('0123456789abcdef,admin,1,"system:masters"\n')
    # One node, whose kubelet is not there: these tests look at the server's TLS only.
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-a"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.9"}]},
    }
    (base / "targets.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [node]})
    )
    return base


def pair(certs: Path, cn: str, names: str = "") -> str:
    return f"{certs / cn}.crt,{certs / cn}.key" + (f":{names}" if names else "")


@contextmanager
def server(
    certs: Path, tmp: Path, *extra: str, port: int | None = None
) -> Iterator[tuple[int, Running]]:
    port = port or free_port()
    args = [
        "server",
        "--targets", str(certs / "targets.yaml"),
        "--bind-address", "127.0.0.1",
        "--secure-port", str(port),
        "--tls-cert-file", str(certs / "default.crt"),
        "--tls-private-key-file", str(certs / "default.key"),
        "--token-auth-file", str(certs / "tokens.csv"),
        *extra,
    ]  # fmt: skip
    with run_kubepulse(args, tmp / f"server-{port}-{len(list(tmp.iterdir()))}.log") as running:
        wait_serving(running, port)
        yield port, running


def test_under_tls13_a_client_offering_only_tls12_is_refused(certs: Path, tmp_path: Path) -> None:
    with server(certs, tmp_path, "--tls-min-version=VersionTLS13") as (port, _):
        assert negotiated(s_client(port, "-tls1_2")) == {}
        assert negotiated(s_client(port, "-tls1_3"))["Protocol version"] == "TLSv1.3"


def test_the_default_minimum_is_tls12(certs: Path, tmp_path: Path) -> None:
    with server(certs, tmp_path) as (port, _):
        assert negotiated(s_client(port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")) == {}
        assert negotiated(s_client(port, "-tls1_2"))["Protocol version"] == "TLSv1.2"


def test_only_the_chosen_suites_are_negotiated(certs: Path, tmp_path: Path) -> None:
    suites = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256"
    with server(certs, tmp_path, f"--tls-cipher-suites={suites}") as (port, _):
        chosen = negotiated(s_client(port, "-tls1_2"))
        assert chosen["Ciphersuite"] == "ECDHE-ECDSA-AES256-GCM-SHA384"
        other = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert negotiated(other) == {}
        # TLS 1.3 suites are not configurable, in Go as here: any of them is served.
        tls13 = s_client(port, "-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
        assert negotiated(tls13)["Ciphersuite"] == "TLS_CHACHA20_POLY1305_SHA256"


def test_an_unknown_suite_is_refused_as_kubernetes_refuses_it(certs: Path) -> None:
    done = subprocess.run(
        [*KUBEPULSE, "server", "--targets", str(certs / "targets.yaml"),
         "--token-auth-file", str(certs / "tokens.csv"),
         "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_MADE_UP"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: Cipher suite TLS_MADE_UP not supported or doesn't exist"
    ]


def test_an_insecure_suite_is_allowed_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    serving = ServingOptions(tls_cipher_suites=("TLS_RSA_WITH_AES_128_GCM_SHA256",))
    with caplog.at_level(logging.WARNING):
        ServerConfig(serving=serving).complete()
    assert [r.getMessage() for r in caplog.records] == [
        "--tls-cipher-suites: TLS_RSA_WITH_AES_128_GCM_SHA256 is insecure; "
        "prefer the ECDHE AEAD suites"
    ]


def test_sni_picks_the_certificate_by_gos_precedence(certs: Path, tmp_path: Path) -> None:
    sni = [
        "--tls-sni-cert-key", pair(certs, "wildcard", "*.example.com"),
        "--tls-sni-cert-key", pair(certs, "db-found"),
        "--tls-sni-cert-key", pair(certs, "api"),
        "--tls-sni-cert-key", pair(certs, "db-given", "db.example.com"),
    ]  # fmt: skip
    with server(certs, tmp_path, *sni) as (port, _):

        def served(name: str | None) -> str:
            options = ["-servername", name] if name else ["-noservername"]
            return negotiated(s_client(port, *options))["CN"]

        assert served("api.example.com") == "api"  # an exact name beats the wildcard
        assert served("API.Example.com") == "api"  # names are matched case-insensitively
        assert served("www.example.com") == "wildcard"
        assert served("db.example.com") == "db-given"  # a given name beats a found one
        assert served("a.b.example.com") == "default"  # "*" stands for one label only
        assert served("kubepulse.test") == "default"
        assert served(None) == "default"


def test_port_sharing_lets_two_servers_listen_on_one_port(certs: Path, tmp_path: Path) -> None:
    port = free_port()
    sharing = "--permit-port-sharing"
    with (
        server(certs, tmp_path, sharing, port=port),
        server(certs, tmp_path, sharing, port=port) as (_, second),
    ):
        assert second.proc.poll() is None
        assert negotiated(s_client(port))
        # Without the flag the port stays the first servers' own.
        alone = subprocess.run(
            [*KUBEPULSE, "server", "--targets", str(certs / "targets.yaml"),
             "--token-auth-file", str(certs / "tokens.csv"), "--cert-dir", str(tmp_path / "pki"),
             "--bind-address", "127.0.0.1", "--secure-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert alone.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in alone.stderr
