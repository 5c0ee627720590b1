"""TLS client-certificate authentication with the ssl module as it is.

kube-apiserver and the kubelet ask for a client certificate without verifying it in the
handshake (Go's tls.RequestClientCert) and verify it in the authenticator, so a
certificate from an unknown CA gets an HTTP 401 rather than a broken connection
(k8s.io/apiserver/pkg/authentication/request/x509). Python 3.11's ssl module cannot do
that: it has no verify callback, and no API for the verified chain before 3.13
(SSLSocket.get_verified_chain). So the serving context asks for a client certificate
with ssl.CERT_OPTIONAL and holds every CA whose client certificates the server accepts
(request_client_certificates):

- a client without a certificate (a bearer token) completes the handshake as before;
- a certificate that none of those CAs verifies fails the handshake instead of getting a
  401. So does one OpenSSL refuses for itself: expired or not yet valid, or with an
  extended key usage that lacks clientAuth (OpenSSL checks the "SSL client" purpose).
  That is the safe side: nothing unverified reaches the application.

After the handshake the authenticator still decides who the caller is, from the peer's
certificate (verify_client): the CN is the user and the O fields the groups; the
certificate must be valid now (a keep-alive connection can outlive it: then 401) and
carry clientAuth when it has an extended key usage extension, as in k8s.io/apiserver.
One context can hold two sets of CAs (the front proxy's --requestheader-client-ca-file
and --client-ca-file), and the handshake does not say which of them verified the chain,
so each authenticator accepts only a certificate whose issuer is one of its own CAs,
that CA's signature checked with cryptography: a certificate issued by an intermediate
CA that is not itself in the set is refused (401) however the handshake built its chain.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def distinct(*sets: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    """The certificates of every set, each once, in the order first given."""
    seen: set[bytes] = set()
    found: list[x509.Certificate] = []
    for authorities in sets:
        for ca in authorities:
            der = ca.public_bytes(serialization.Encoding.DER)
            if der not in seen:
                seen.add(der)
                found.append(ca)
    return found


def pem_bundle(authorities: Iterable[x509.Certificate]) -> str:
    return "".join(ca.public_bytes(serialization.Encoding.PEM).decode() for ca in authorities)


def request_client_certificates(
    ctx: ssl.SSLContext, authorities: Sequence[x509.Certificate]
) -> None:
    """Make the server context ctx ask every client for a certificate, which the handshake
    accepts only when one of authorities verifies it; a client may send none.

    ctx must trust no other CA: make it with ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) or
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), which load no system CAs for a
    server, and never call load_default_certs on it."""
    if not authorities:
        raise ValueError("no CA to verify client certificates with")
    ctx.load_verify_locations(cadata=pem_bundle(distinct(authorities)))
    ctx.verify_mode = ssl.CERT_OPTIONAL


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> x509.Certificate | None:
    """The client's certificate, which the handshake verified; None without one."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


def _valid_at(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def issuer_among(
    cert: x509.Certificate, authorities: Iterable[x509.Certificate]
) -> x509.Certificate | None:
    """The CA of authorities that issued cert itself (its name and signature), or None."""
    for ca in authorities:
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def verify_client(
    cert: x509.Certificate, authorities: Sequence[x509.Certificate]
) -> tuple[str, list[str]] | None:
    """The user (CN) and groups (O) of a client certificate that one of authorities
    issued, valid now and good for client authentication; None for any other."""
    now = dt.datetime.now(dt.UTC)
    if not _valid_at(cert, now):
        return None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            return None
    except x509.ExtensionNotFound:
        pass
    issuer = issuer_among(cert, (ca for ca in authorities if _valid_at(ca, now)))
    if issuer is None:
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None
    groups = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(names[0].value), [str(g.value) for g in groups]


def load_authorities(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)
