"""Generated serving certificates name every address they are served on."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import psutil
import pytest
from cryptography import x509

from kubepulse import pki


def sans(cert_path: Path) -> tuple[set[str], set[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), set(san.get_values_for_type(x509.IPAddress))


def test_unspecified_bind_address_covers_every_interface_ip(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path, "test-ca")
    cert, _key = pki.ensure_serving(tmp_path, "kubelet", ca, "node-1", "0.0.0.0")
    dns, ips = sans(cert)
    interface_ips = {
        ipaddress.ip_address(a.address.split("%", 1)[0])
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family in (socket.AF_INET, socket.AF_INET6)
    }
    assert interface_ips <= ips
    assert ipaddress.ip_address("127.0.0.1") in ips
    assert {"localhost", socket.gethostname()} <= dns


def test_specific_bind_address_is_an_ip_san(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path, "test-ca")
    cert, key = pki.ensure_serving(tmp_path, "kubelet", ca, "node-1", "127.0.0.7")
    assert ipaddress.ip_address("127.0.0.7") in sans(cert)[1]
    assert key.stat().st_mode & 0o077 == 0  # the key is owner-only


def test_certificate_is_reused_while_it_covers_and_renewed_when_not(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path, "test-ca")
    first, _ = pki.ensure_serving(tmp_path, "kubelet", ca, "node-1", "127.0.0.7")
    before = first.read_bytes()
    pki.ensure_serving(tmp_path, "kubelet", ca, "node-1", "127.0.0.7")
    assert first.read_bytes() == before
    pki.ensure_serving(tmp_path, "kubelet", ca, "node-1", "127.0.0.8")
    assert ipaddress.ip_address("127.0.0.8") in sans(first)[1]
    # The CA itself is kept across calls: clients that trust it keep working.
    assert pki.ensure_ca(tmp_path, "test-ca").cert == ca.cert


@pytest.mark.parametrize(
    ("bind_address", "names", "dns_name", "ip"),
    [
        pytest.param(
            "0.0.0.0", ("node-7.example.test",), "node-7.example.test", None, id="every-address"
        ),
        pytest.param("127.0.0.7", ("node-7",), "node-7", "127.0.0.7", id="specific-address"),
        pytest.param("127.0.0.7", ("10.9.8.7",), None, "10.9.8.7", id="an-ip-name-is-an-ip-san"),
    ],
)
def test_given_names_are_sans_of_the_serving_certificate(
    tmp_path: Path, bind_address: str, names: tuple[str, ...], dns_name: str | None, ip: str | None
) -> None:
    ca = pki.ensure_ca(tmp_path, "test-ca")
    cert, _key = pki.ensure_serving(tmp_path, "kubelet", ca, "node-1", bind_address, names)
    dns, ips = sans(cert)
    assert dns_name is None or dns_name in dns
    assert ip is None or ipaddress.ip_address(ip) in ips
    assert not {n for n in names if n != dns_name} & dns  # an IP is never a DNS SAN


def test_certificate_is_renewed_when_a_given_name_is_not_covered(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path, "test-ca")
    cert, _ = pki.ensure_serving(tmp_path, "kubelet", ca, "node-1", "127.0.0.7", ("node-a",))
    pki.ensure_serving(tmp_path, "kubelet", ca, "node-1", "127.0.0.7", ("node-b",))
    assert "node-b" in sans(cert)[0]
