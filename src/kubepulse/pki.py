"""Certificates: a CA of our own, serving and client certificates signed by it.

Every serving certificate carries every IP and DNS name it is served on, because Go
clients refuse an IP address that is not among the IP SANs ("x509: cannot validate
certificate for <IP> because it doesn't contain any IP SANs").
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class KeyPair:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, cert_path: Path, key_path: Path) -> None:
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only from the start, the key never world-readable for a moment; the
        # certificate too, as everything in a state dir is (statedir.py).
        for path, pem in ((cert_path, self.cert_pem()), (key_path, self.key_pem())):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> KeyPair:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path}: only EC keys are made and loaded by kubepulse")
        return cls(cert, key)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_ca(common_name: str, days: int = 3650) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def issue(
    ca: KeyPair,
    common_name: str,
    *,
    dns_names: list[str] | None = None,
    ips: list[IPAddress] | None = None,
    organizations: list[str] | None = None,
    client: bool = False,
    days: int = 365,
) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations or []]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    now = _now()
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names or []]
    sans += [x509.IPAddress(ip) for ip in ips or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def local_names(bind_address: str, names: Iterable[str] = ()) -> tuple[list[str], list[IPAddress]]:
    """The DNS names and IPs a server bound to bind_address can be reached at, with the
    given names (a node name): one that is an IP goes among the IPs, as client-go's
    GenerateSelfSignedCertKey (k8s.io/client-go/util/cert) does with its host."""
    dns = {"localhost", socket.gethostname()}
    ips: set[IPAddress] = set()
    for name in names:
        try:
            ips.add(ipaddress.ip_address(name))
        except ValueError:
            dns.add(name)
    bound = ipaddress.ip_address(bind_address)
    if bound.is_unspecified:
        for addrs in psutil.net_if_addrs().values():
            for addr in addrs:
                if addr.family in (socket.AF_INET, socket.AF_INET6):
                    ips.add(ipaddress.ip_address(addr.address.split("%", 1)[0]))
        ips.update({ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")})
    else:
        ips.add(bound)
    return sorted(dns), sorted(ips, key=lambda ip: (ip.version, int(ip)))


def covers(cert: x509.Certificate, dns: list[str], ips: list[IPAddress]) -> bool:
    """Whether a certificate is valid now and names every given DNS name and IP."""
    now = _now()
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc - dt.timedelta(days=1):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(dns) <= set(san.get_values_for_type(x509.DNSName)) and set(ips) <= set(
        san.get_values_for_type(x509.IPAddress)
    )


def ensure_ca(cert_dir: Path, common_name: str) -> KeyPair:
    cert_path, key_path = cert_dir / "ca.crt", cert_dir / "ca.key"
    if cert_path.exists() and key_path.exists():
        return KeyPair.load(cert_path, key_path)
    ca = new_ca(common_name)
    ca.write(cert_path, key_path)
    return ca


def ensure_serving(
    cert_dir: Path,
    stem: str,
    ca: KeyPair,
    common_name: str,
    bind_address: str,
    names: Iterable[str] = (),
) -> tuple[Path, Path]:
    """A serving certificate in cert_dir covering every local address and the given
    names, made or renewed."""
    cert_path, key_path = cert_dir / f"{stem}.crt", cert_dir / f"{stem}.key"
    dns, ips = local_names(bind_address, names)
    if cert_path.exists() and key_path.exists():
        try:
            current = KeyPair.load(cert_path, key_path)
            # Signed by this CA, not only by one of its name: a CA made anew under the
            # same name (its key was lost) must not leave certificates nobody trusts.
            current.cert.verify_directly_issued_by(ca.cert)
            if covers(current.cert, dns, ips):
                return cert_path, key_path
        except (ValueError, TypeError, InvalidSignature):
            pass
    issue(ca, common_name, dns_names=dns, ips=ips).write(cert_path, key_path)
    return cert_path, key_path
