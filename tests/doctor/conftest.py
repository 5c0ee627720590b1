"""Real `kubepulse agent` processes on 127.0.0.x, each serving a certificate with one
fault (or none), for doctor to find; and the fake kube-apiserver's fixtures."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubepulse import pki
from tests.fakeapi.fixtures import fake_api, fake_kubeconfig
from tests.support import Running, free_port, run_kubepulse, wait_for

__all__ = ["fake_api", "fake_kubeconfig"]


def backdated(ca: pki.KeyPair, name: str, ip: str, days_ago: int) -> pki.KeyPair:
    """A certificate that expired a day ago, otherwise as good as the healthy one."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=days_ago))
        .not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address(ip))]
            ),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return pki.KeyPair(cert, key)


@dataclass(frozen=True)
class Kubelet:
    name: str
    ip: str
    port: int


@dataclass(frozen=True)
class Kubelets:
    ca_file: Path
    nodes: dict[str, Kubelet]


# node -> (IP, what is wrong with its serving certificate)
AGENTS = {
    "healthy-a": ("127.0.0.2", "good"),
    "healthy-b": ("127.0.0.3", "good"),
    "no-ip-san": ("127.0.0.4", "no-ip-san"),
    "other-ca": ("127.0.0.5", "other-ca"),
    "expired": ("127.0.0.6", "expired"),
}


def _serving(ca: pki.KeyPair, other: pki.KeyPair, name: str, ip: str, fault: str) -> pki.KeyPair:
    address = ipaddress.ip_address(ip)
    if fault == "no-ip-san":
        return pki.issue(ca, name, dns_names=[name])
    if fault == "other-ca":
        return pki.issue(other, name, dns_names=[name], ips=[address])
    if fault == "expired":
        return backdated(ca, name, ip, days_ago=30)
    return pki.issue(ca, name, dns_names=[name], ips=[address])


def _accepts(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((ip, port)) == 0


@pytest.fixture(scope="package")
def kubelets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubelets]:
    base = tmp_path_factory.mktemp("kubelets")
    ca, other = pki.new_ca("kubelet-ca"), pki.new_ca("someone-elses-ca")
    ca.write(base / "ca.crt", base / "ca.key")
    token = base / "token"
    token.write_text(secrets.token_hex(16) + "\n")
    with ExitStack() as stack:
        nodes: dict[str, Kubelet] = {}
        running = []
        for name, (ip, fault) in AGENTS.items():
            _serving(ca, other, name, ip, fault).write(base / f"{name}.crt", base / f"{name}.key")
            port = free_port(ip)
            args = [
                "agent",
                "--address", ip,
                "--port", str(port),
                "--hostname-override", name,
                "--tls-cert-file", str(base / f"{name}.crt"),
                "--tls-private-key-file", str(base / f"{name}.key"),
                "--cert-dir", str(base / f"{name}-pki"),
                "--token-file", str(token),
                "--housekeeping-interval", "1s",
            ]  # fmt: skip
            running.append(stack.enter_context(run_kubepulse(args, base / f"{name}.log")))
            nodes[name] = Kubelet(name, ip, port)
        for proc, kubelet in zip(running, nodes.values(), strict=True):

            def up(proc: Running = proc, k: Kubelet = kubelet) -> bool:
                assert proc.proc.poll() is None, f"agent {k.name} exited: {proc.log()}"
                return _accepts(k.ip, k.port)

            wait_for(up, what=f"agent {kubelet.name} listening")
        yield Kubelets(base / "ca.crt", nodes)
