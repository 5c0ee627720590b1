"""--tls-min-version, --tls-cipher-suites and --tls-sni-cert-key on Python's ssl module.

The flags name Go's crypto/tls constants (k8s.io/component-base/cli/flag); OpenSSL,
which serves here, names the same suites its own way, so each Go name maps to its
OpenSSL name. Go configures only the TLS 1.0-1.2 suites: its TLS 1.3 suites are
always on, and their names in the flag are accepted and change nothing (crypto/tls
Config.CipherSuites). OpenSSL through Python's ssl module behaves the same way, since
set_ciphers() reaches only TLS 1.2 and below.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

log = logging.getLogger("kubepulse.tls")


class TLSOptionError(ValueError):
    """A TLS flag that names what does not exist."""


@dataclass(frozen=True)
class NamedCertKey:
    """One --tls-sni-cert-key: a certificate, its key, and the names it serves (none:
    the names in the certificate)."""

    cert_file: Path
    key_file: Path
    names: tuple[str, ...] = ()


VERSIONS = {
    "VersionTLS10": ssl.TLSVersion.TLSv1,
    "VersionTLS11": ssl.TLSVersion.TLSv1_1,
    "VersionTLS12": ssl.TLSVersion.TLSv1_2,
    "VersionTLS13": ssl.TLSVersion.TLSv1_3,
}

TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)

# Go's names of the TLS 1.0-1.2 suites it knows, with OpenSSL's name for each.
SECURE_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    # Go's older spellings of the two above.
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
INSECURE_SUITES = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
}


def min_version(name: str) -> ssl.TLSVersion:
    """--tls-min-version; empty is TLS 1.2, Kubernetes' default."""
    if not name:
        return ssl.TLSVersion.TLSv1_2
    if name not in VERSIONS:
        raise TLSOptionError(f"unknown tls version {name!r}")
    return VERSIONS[name]


def openssl_ciphers(go_names: Sequence[str]) -> str:
    """The OpenSSL cipher list for --tls-cipher-suites ("" when it names only TLS 1.3
    suites, or none). An unknown name is refused, as Kubernetes refuses it; an insecure
    one is allowed (insecure() names them for a warning), as Go allows it."""
    chosen: list[str] = []
    for name in go_names:
        if name in TLS13_SUITES:
            continue
        if name in SECURE_SUITES:
            chosen.append(SECURE_SUITES[name])
        elif name in INSECURE_SUITES:
            chosen.append(INSECURE_SUITES[name])
        else:
            raise TLSOptionError(f"Cipher suite {name} not supported or doesn't exist")
    return ":".join(dict.fromkeys(chosen))


def insecure(go_names: Sequence[str]) -> list[str]:
    """The names among go_names that Go lists as insecure."""
    return [name for name in go_names if name in INSECURE_SUITES]


def checked(version_name: str, suites: Sequence[str]) -> ssl.TLSVersion:
    """--tls-min-version, after checking it and --tls-cipher-suites (TLSOptionError);
    what Go allows but warns of is one WARNING each: TLS 1.0 and 1.1, insecure suites."""
    version = min_version(version_name)
    openssl_ciphers(suites)
    if version < ssl.TLSVersion.TLSv1_2:
        log.warning(
            "--tls-min-version=%s lets clients use TLS 1.0 and 1.1, which are "
            "deprecated (RFC 8996)",
            version_name,
        )
    for name in insecure(suites):
        log.warning("--tls-cipher-suites: %s is insecure; prefer the ECDHE AEAD suites", name)
    return version


def restrict(ctx: ssl.SSLContext, version: ssl.TLSVersion, suites: Sequence[str]) -> None:
    """Apply --tls-min-version and --tls-cipher-suites to a server context."""
    ciphers = openssl_ciphers(suites)
    # OpenSSL 3 keeps TLS 1.0 and 1.1 off above security level 0 (their handshakes sign
    # with SHA-1 and MD5); Go still speaks them when asked to.
    weak = version < ssl.TLSVersion.TLSv1_2
    level = ":@SECLEVEL=0" if weak else ""
    if suites and not ciphers:
        # Only TLS 1.3 names: no TLS 1.2 suite is left, so no TLS 1.2 handshake succeeds.
        version = ssl.TLSVersion.TLSv1_3
    elif ciphers or weak:
        try:
            ctx.set_ciphers((ciphers or "DEFAULT") + level)
        except ssl.SSLError as err:
            raise TLSOptionError(
                f"--tls-cipher-suites: OpenSSL here has none of {', '.join(suites)}: {err}"
            ) from err
    ctx.minimum_version = version


def _pattern(name: str) -> str:
    return name.strip().lower().rstrip(".")


def certificate_names(cert_file: Path) -> tuple[str, ...]:
    """The names a certificate serves: its DNS and IP SANs, and its CN when that is a
    host name and there are no SANs (k8s.io/apiserver's getCertificateNames)."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*sans.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else ""
        if cn and " " not in cn and "/" not in cn:
            names.append(cn)
    return tuple(_pattern(n) for n in names)


def name_map(
    pairs: Sequence[NamedCertKey], contexts: Sequence[ssl.SSLContext]
) -> dict[str, ssl.SSLContext]:
    """Each served name to its context. Explicit names win over the names found in a
    certificate, and among equals the pair given first wins (k8s.io/apiserver's
    named certificates)."""
    explicit: dict[str, ssl.SSLContext] = {}
    found: dict[str, ssl.SSLContext] = {}
    for pair, ctx in zip(pairs, contexts, strict=True):
        if pair.names:
            for name in pair.names:
                explicit.setdefault(_pattern(name), ctx)
        else:
            for name in certificate_names(pair.cert_file):
                found.setdefault(name, ctx)
    return {**found, **explicit}


def chooser(
    names: dict[str, ssl.SSLContext],
) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], None]:
    """An sni_callback choosing a context as Go's crypto/tls does: the exact name, then
    the name with its first label as "*", else the default certificate."""

    def choose(conn: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        if not server_name:
            return
        name = _pattern(server_name)
        labels = name.split(".")
        wildcard = ".".join(["*", *labels[1:]]) if len(labels) > 1 else ""
        ctx = names.get(name) or (names.get(wildcard) if wildcard else None)
        if ctx is not None:
            conn.context = ctx

    return choose
