"""The agent's serving certificate from a CertificateSigningRequest, renewed before expiry.

This is the kubelet's serverTLSBootstrap (--rotate-server-certificates): instead of a
self-signed certificate, the agent makes an ECDSA P-256 key and a PKCS#10 request for
CN=system:node:NAME, O=system:nodes with the node name and the IPs it serves on as SANs,
creates a certificates.k8s.io/v1 CertificateSigningRequest for the
kubernetes.io/kubelet-serving signer, waits until it is approved and issued, and serves
with it. As client-go's certificate manager (k8s.io/client-go/util/certificate) does for
the kubelet, a new key and request are made when a jittered 70-90% of the certificate's
lifetime has passed, and the new certificate is served without a restart.

In local mode (`kubepulse up`) a CA directory signs the same request in-process, as
kube-controller-manager's csrsigning controller signs an approved one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import ipaddress
import logging
import os
import random
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubepulse import pki
from kubepulse.kube.client import ApiError, KubeClient, Unreachable
from kubepulse.kube.csr import KUBELET_SERVING, NODE_PREFIX

log = logging.getLogger("kubepulse.agent.bootstrap")

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
# One file with the chain and then the key, replaced in one rename: the kubelet keeps
# kubelet-server-current.pem the same way, so a crash never pairs a key with another cert.
CERT_FILE = "kubelet-server-current.pem"
# client-go certificate manager's certificateWaitTimeout: how long one request may wait.
WAIT_TIMEOUT = 15 * 60.0
# kube-apiserver validates spec.expirationSeconds >= 600 (ValidateCertificateSigningRequest).
MIN_EXPIRATION_SECONDS = 600
# kube-controller-manager's --cluster-signing-duration default (8760h), for local mode.
LOCAL_LIFETIME = 365 * 24 * 3600.0
# client-go's jitteryDuration: wait.Jitter(total, 0.2) - 0.3 * total, i.e. 70-90%.
ROTATION = (0.7, 0.9)
WATCH_SECONDS = 300
MAX_BACKOFF = 300.0


class BootstrapError(Exception):
    """The serving certificate could not be had: said in one line."""


def one_line(text: str) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class Template:
    """What the serving certificate must say: the kubelet's certificate template."""

    node_name: str
    ips: tuple[pki.IPAddress, ...]

    @property
    def common_name(self) -> str:
        return NODE_PREFIX + self.node_name

    def subject(self) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, self.common_name),
            ]
        )

    def request(self, key: ec.EllipticCurvePrivateKey) -> bytes:
        """The PKCS#10 request, PEM: CN system:node:NAME, O system:nodes, the node name as
        the one DNS SAN (kubelet-csr-approver allows one, prefixed by the node name)."""
        sans: list[x509.GeneralName] = [x509.DNSName(self.node_name)]
        sans += [x509.IPAddress(ip) for ip in self.ips]
        builder = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(self.subject())
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        )
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def satisfied_by(self, cert: x509.Certificate) -> bool:
        """client-go's certSatisfiesTemplate: the same subject and SANs, so a certificate
        kept from a run with another node name or IP is replaced at once."""
        if set(cert.subject) != set(self.subject()):
            return False
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        return set(san.get_values_for_type(x509.DNSName)) == {self.node_name} and set(
            san.get_values_for_type(x509.IPAddress)
        ) == set(self.ips)


def serving_ips(bind_address: str, node_ips: Sequence[str] = ()) -> tuple[pki.IPAddress, ...]:
    """The IP SANs: --node-ip when given, else the address served on; for an unspecified
    address every interface address but loopback and link-local, which no approver will
    accept as one of the node's addresses."""
    if node_ips:
        return tuple(ipaddress.ip_address(ip.strip()) for ip in node_ips)
    bound = ipaddress.ip_address(bind_address)
    if not bound.is_unspecified:
        return (bound,)
    _, ips = pki.local_names(bind_address)
    return tuple(ip for ip in ips if not (ip.is_loopback or ip.is_link_local))


def usages(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> list[str]:
    """kube-apiserver's kubelet-serving usages: key encipherment only for RSA keys
    (kubeletServingRequiredUsages / ...NoRSA); the agent makes ECDSA keys, as the kubelet."""
    if isinstance(key, rsa.RSAPrivateKey):
        return ["digital signature", "key encipherment", "server auth"]
    return ["digital signature", "server auth"]


class Signer(Protocol):
    async def sign(self, request_pem: bytes, usages: Sequence[str]) -> bytes:
        """The issued certificate chain, PEM, leaf first."""
        ...

    def issued(self, cert: x509.Certificate) -> bool:
        """Whether a certificate kept from an earlier run may be this signer's."""
        ...

    async def close(self) -> None: ...


def _describe(err: ApiError | Unreachable) -> str:
    if isinstance(err, ApiError):
        return one_line(f"{err.code} {err.reason}: {err.message}")
    return one_line(str(err))


class APISigner:
    """A CertificateSigningRequest through the Kubernetes API, waited on with a watch."""

    def __init__(
        self,
        client: KubeClient,
        expiration_seconds: int | None = None,
        timeout: float = WAIT_TIMEOUT,
    ) -> None:
        self.client, self.expiration_seconds, self.timeout = client, expiration_seconds, timeout
        self._open = False

    async def sign(self, request_pem: bytes, usages: Sequence[str]) -> bytes:
        if not self._open:
            await self.client.__aenter__()
            self._open = True
        spec: dict[str, Any] = {
            "request": base64.b64encode(request_pem).decode(),
            "signerName": KUBELET_SERVING,
            "usages": list(usages),
        }
        if self.expiration_seconds is not None:
            spec["expirationSeconds"] = self.expiration_seconds
        body = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            # client-go's csr.RequestCertificate names serving requests csr-XXXXX.
            "metadata": {"generateName": "csr-"},
            "spec": spec,
        }
        try:
            created = await self.client.post(CSRS, body)
        except (ApiError, Unreachable) as err:
            raise BootstrapError(
                f"cannot create a CertificateSigningRequest: {_describe(err)}"
            ) from err
        meta = created.get("metadata") or {}
        name, uid = str(meta.get("name") or ""), str(meta.get("uid") or "")
        log.info("serving certificate requested: CSR %s, waiting for it to be approved", name)
        try:
            async with asyncio.timeout(self.timeout):
                return await self._wait(name, uid)
        except TimeoutError as err:
            raise BootstrapError(
                f"CSR {name} was not approved and issued within {self.timeout:g}s "
                f"(kubectl certificate approve {name}, or run kubepulse csr-approver)"
            ) from err

    async def _wait(self, name: str, uid: str) -> bytes:
        """As client-go's csr.WaitForCertificate: until Approved with a certificate;
        Denied or Failed end the wait. A get, then a watch from it, again after errors."""
        backoff = 1.0
        while True:
            try:
                csr = await self.client.get(f"{CSRS}/{name}")
                found = _issued(csr, name, uid)
                if found is not None:
                    return found
                params = {
                    "fieldSelector": f"metadata.name={name}",
                    "resourceVersion": str(
                        (csr.get("metadata") or {}).get("resourceVersion") or ""
                    ),
                    "timeoutSeconds": str(WATCH_SECONDS),
                }
                async for event in self.client.watch(CSRS, params, WATCH_SECONDS + 30):
                    if event.get("type") == "DELETED":
                        raise BootstrapError(f"CSR {name} was deleted before it was issued")
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        found = _issued(event.get("object") or {}, name, uid)
                        if found is not None:
                            return found
                backoff = 1.0
            except ApiError as err:
                if err.code == 404:
                    raise BootstrapError(f"CSR {name} was deleted before it was issued") from err
                if err.code != 410:  # 410 Expired: get it again and watch from there
                    log.warning("waiting for CSR %s: %s", name, _describe(err))
                    await asyncio.sleep(backoff)  # retry pause, not synchronisation
                    backoff = min(30.0, backoff * 2)
            except Unreachable as err:
                log.warning("waiting for CSR %s: %s", name, _describe(err))
                await asyncio.sleep(backoff)
                backoff = min(30.0, backoff * 2)

    def issued(self, cert: x509.Certificate) -> bool:
        # The cluster CA is not known to the node: like the kubelet, trust what it stored.
        return True

    async def close(self) -> None:
        if self._open:
            await self.client.__aexit__(None, None, None)
            self._open = False


def _issued(csr: Mapping[str, Any], name: str, uid: str) -> bytes | None:
    """The certificate once Approved and issued; Denied and Failed are errors."""
    got_uid = str((csr.get("metadata") or {}).get("uid") or "")
    if uid and got_uid and got_uid != uid:
        raise BootstrapError(f"CSR {name} was replaced by another one of the same name")
    status = csr.get("status") or {}
    approved = False
    for condition in status.get("conditions") or []:
        kind = condition.get("type")
        if kind in ("Denied", "Failed"):
            verb = "denied" if kind == "Denied" else "failed"
            raise BootstrapError(
                one_line(
                    f"certificate signing request {name} {verb}, reason: "
                    f"{condition.get('reason', '')}, message: {condition.get('message', '')}"
                )
            )
        approved = approved or kind == "Approved"
    certificate = status.get("certificate")
    if not (approved and certificate):
        return None
    try:
        return base64.b64decode(str(certificate), validate=True)
    except binascii.Error as err:
        raise BootstrapError(f"CSR {name}: status.certificate is not base64") from err


def sign_request(
    ca: pki.KeyPair,
    request: x509.CertificateSigningRequest,
    usages: Sequence[str],
    lifetime: float,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A certificate for the request's subject, key and SANs, as kube-controller-manager's
    csrsigning controller issues it: the usages of the CSR, the CA as issuer."""
    if not request.is_signature_valid:
        raise BootstrapError("the certificate request's signature does not verify")
    start = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    eku = [ExtendedKeyUsageOID.SERVER_AUTH] if "server auth" in usages else []
    eku += [ExtendedKeyUsageOID.CLIENT_AUTH] if "client auth" in usages else []
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca.cert.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(seconds=lifetime))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # digital_signature, content_commitment, key_encipherment, then CA-only bits.
            x509.KeyUsage(
                "digital signature" in usages,
                False,
                "key encipherment" in usages,
                *([False] * 6),
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    try:
        san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        builder = builder.add_extension(san.value, critical=False)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(ca.key, hashes.SHA256())


class LocalSigner:
    """The request signed by a CA directory of this host (`kubepulse up`'s pki/)."""

    def __init__(self, ca: pki.KeyPair, lifetime: float = LOCAL_LIFETIME) -> None:
        self.ca, self.lifetime = ca, lifetime

    async def sign(self, request_pem: bytes, usages: Sequence[str]) -> bytes:
        request = x509.load_pem_x509_csr(request_pem)
        cert = sign_request(self.ca, request, usages, self.lifetime)
        return cert.public_bytes(serialization.Encoding.PEM)

    def issued(self, cert: x509.Certificate) -> bool:
        try:
            cert.verify_directly_issued_by(self.ca.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    async def close(self) -> None:
        return None


class ServingCertificate:
    """The certificate manager: holds the serving certificate in ctx and renews it.

    ctx is the SSLContext the server already listens with; load_cert_chain replaces its
    certificate for every handshake after it (OpenSSL copies the context's certificate
    into each new connection), so a renewal needs no restart and cuts no connection.
    """

    def __init__(
        self,
        signer: Signer,
        template: Template,
        cert_dir: Path,
        ctx: ssl.SSLContext,
        rotation: tuple[float, float] = ROTATION,
    ) -> None:
        self.signer, self.template, self.ctx, self.rotation = signer, template, ctx, rotation
        self.path = cert_dir / CERT_FILE
        self.current: x509.Certificate | None = None
        self.deadline = 0.0
        self.renewals = 0

    async def start(self) -> None:
        """Serve the kept certificate if it still fits, else request one and wait."""
        if not self._reuse():
            await self.renew()

    def _reuse(self) -> bool:
        try:
            pem = self.path.read_bytes()
            cert = x509.load_pem_x509_certificates(pem)[0]
        except (OSError, ValueError):
            return False
        now = dt.datetime.now(dt.UTC)
        if not (
            cert.not_valid_before_utc <= now < cert.not_valid_after_utc
            and self.template.satisfied_by(cert)
            and self.signer.issued(cert)
        ):
            return False
        try:
            self.ctx.load_cert_chain(self.path)
        except (ssl.SSLError, OSError):
            return False
        self._now_serving(cert)
        return True

    async def renew(self) -> None:
        # A new key for every request, as client-go's certificate manager makes one.
        key = ec.generate_private_key(ec.SECP256R1())
        chain_pem = await self.signer.sign(self.template.request(key), usages(key))
        try:
            chain = x509.load_pem_x509_certificates(chain_pem)
        except ValueError as err:
            raise BootstrapError(f"the issued certificate cannot be read: {err}") from err
        if chain[0].public_key() != key.public_key():
            raise BootstrapError("the issued certificate is not for the key that asked for it")
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._write(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain) + key_pem)
        try:
            self.ctx.load_cert_chain(self.path)
        except ssl.SSLError as err:
            raise BootstrapError(f"cannot serve the issued certificate: {err}") from err
        self._now_serving(chain[0])

    def _write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        # Owner-only from the first byte: the file holds the key.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)

    def _now_serving(self, cert: x509.Certificate) -> None:
        self.current = cert
        start = cert.not_valid_before_utc.timestamp()
        lifetime = cert.not_valid_after_utc.timestamp() - start
        self.deadline = start + lifetime * random.uniform(*self.rotation)
        log.info(
            "serving certificate %x for %s, valid until %s, renewed from %s",
            cert.serial_number,
            self.template.common_name,
            cert.not_valid_after_utc.isoformat(),
            dt.datetime.fromtimestamp(self.deadline, dt.UTC).isoformat(),
        )

    async def rotate_forever(self) -> None:
        """Renew at the deadline; after a failure keep serving the current certificate
        and try again after a doubling pause, as client-go's certificate manager does."""
        backoff = 2.0
        while True:
            delay = self.deadline - time.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the rotation timer
            try:
                await self.renew()
            except BootstrapError as err:
                log.warning("renewing the serving certificate failed: %s", err)
                await asyncio.sleep(backoff)  # retry pause, not synchronisation
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            self.renewals += 1
            backoff = 2.0
