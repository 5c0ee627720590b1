"""TLS client-certificate authentication the way kube-apiserver and the kubelet do it.

Go servers ask for a client certificate without verifying it during the handshake
(tls.RequestClientCert) and verify it in the authenticator, so a certificate from an
unknown CA gets an HTTP 401 rather than a broken connection
(k8s.io/apiserver/pkg/authentication/request/x509). Python's ssl module can only verify
in the handshake, so we install an OpenSSL verify callback that accepts any chain and
do the verification here, against the configured CAs, with cryptography.
"""

from __future__ import annotations

import _ssl
import ctypes
import datetime as dt
import logging
import ssl

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

_SSL_VERIFY_PEER = 0x01
_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _accept_any(_preverify_ok: int, _store: int | None) -> int:
    return 1


_ACCEPT_ANY = _VERIFY_CALLBACK(_accept_any)  # kept alive for the life of the process


def request_client_certificates(ctx: ssl.SSLContext) -> None:
    """Make ctx ask every client for a certificate and accept whatever it sends."""
    lib = ctypes.CDLL(_ssl.__file__)
    get_mode = lib.SSL_CTX_get_verify_mode
    get_mode.argtypes, get_mode.restype = [ctypes.c_void_p], ctypes.c_int
    set_verify = lib.SSL_CTX_set_verify
    set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
    set_verify.restype = None
    # CPython's SSLContext object holds its SSL_CTX pointer right after the object header.
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    ctx.verify_mode = ssl.CERT_OPTIONAL
    if pointer is None or get_mode(pointer) != _SSL_VERIFY_PEER:
        raise RuntimeError("this Python's ssl module is not laid out as expected")
    set_verify(pointer, _SSL_VERIFY_PEER, _ACCEPT_ANY)


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> x509.Certificate | None:
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


def verify_client(
    cert: x509.Certificate, authorities: list[x509.Certificate]
) -> tuple[str, list[str]] | None:
    """The user (CN) and groups (O) of a client certificate signed by one of authorities."""
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            return None
    except x509.ExtensionNotFound:
        pass
    for ca in authorities:
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        groups = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        if names:
            return str(names[0].value), [str(g.value) for g in groups]
    return None


def load_authorities(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)
