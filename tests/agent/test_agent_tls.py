"""The agent's serving certificate: from files, or made for its node name and addresses."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kubepulse import pki
from tests.agent.conftest import Agent, start_agent
from tests.support import KUBEPULSE, negotiated, s_client


def served_certificate(agent: Agent, server_hostname: str) -> x509.Certificate:
    """The certificate of a handshake that verifies it against agent.ca_file for that name."""
    url = urlsplit(agent.url)
    assert url.hostname is not None and url.port is not None
    with (
        socket.create_connection((url.hostname, url.port), timeout=10) as raw,
        agent.context().wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_serves_the_certificate_from_files_and_a_client_trusting_its_ca_verifies_it(
    tmp_path: Path,
) -> None:
    ca = pki.new_ca("site-ca")
    ca.write(tmp_path / "site-ca.crt", tmp_path / "site-ca.key")
    serving = pki.issue(ca, "node-a", ips=[ipaddress.ip_address("127.0.0.1")])
    serving.write(tmp_path / "kubelet.crt", tmp_path / "kubelet.key")
    files = ("--tls-cert-file", str(tmp_path / "kubelet.crt"))
    key = ("--tls-private-key-file", str(tmp_path / "kubelet.key"))

    for agent in start_agent(tmp_path, *files, *key, ca_file=tmp_path / "site-ca.crt"):
        assert agent.get("/metrics/resource")[0] == 200
        assert served_certificate(agent, "127.0.0.1") == serving.cert
    assert not (tmp_path / "pki" / "kubelet.crt").exists()  # nothing made when files are given


def test_generated_certificate_names_the_hostname_override(tmp_path: Path) -> None:
    node = "node-7.example.test"
    for agent in start_agent(tmp_path, "--hostname-override", node):
        cert = served_certificate(agent, node)  # verifies the name, as a client dialing it
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert node in san.get_values_for_type(x509.DNSName)
        on_disk = (tmp_path / "pki" / "kubelet.crt").read_bytes()
        assert cert.public_bytes(serialization.Encoding.PEM) == on_disk


def test_a_client_checking_another_name_is_refused(tmp_path: Path) -> None:
    for agent in start_agent(tmp_path, "--hostname-override", "node-7.example.test"):
        try:
            served_certificate(agent, "node-8.example.test")
        except ssl.SSLCertVerificationError as err:
            assert "node-8.example.test" in str(err)
        else:
            raise AssertionError("a certificate for node-7 verified as node-8")


def test_the_kubelets_tls_min_version_refuses_an_older_client(tmp_path: Path) -> None:
    for agent in start_agent(tmp_path, "--tls-min-version=VersionTLS13"):
        port = urlsplit(agent.url).port
        assert port is not None
        assert negotiated(s_client(port, "-tls1_2")) == {}
        assert negotiated(s_client(port, "-tls1_3"))["Protocol version"] == "TLSv1.3"


def test_the_kubelets_cipher_suites_are_the_only_ones_negotiated(tmp_path: Path) -> None:
    # The agent makes an ECDSA certificate: an ECDHE_ECDSA suite is one it can serve.
    suites = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_AES_256_GCM_SHA384"
    for agent in start_agent(tmp_path, f"--tls-cipher-suites={suites}"):
        port = urlsplit(agent.url).port
        assert port is not None
        assert negotiated(s_client(port, "-tls1_2"))["Ciphersuite"] == (
            "ECDHE-ECDSA-AES256-GCM-SHA384"
        )
        other = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert negotiated(other) == {}


def test_an_unknown_suite_stops_the_agent_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*KUBEPULSE, "agent", "--address", "127.0.0.1", "--port", "0",
         "--cert-dir", str(tmp_path / "pki"), "--authentication-skip",
         "--tls-cipher-suites=TLS_MADE_UP"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: Cipher suite TLS_MADE_UP not supported or doesn't exist"
    ]
