"""Per-node checks: the address metrics-server would pick, DNS, the kubelet port, the
kubelet's serving certificate and the kubelet's clock.

Each check reproduces what the scraper does (kubepulse.scrape.client, after
metrics-server's address_resolver.go and kubelet client) so that a failure here is the
failure the server logs, in the same Go words, and comes with its fix (reference
metrics-pipeline.md section 5: "no such host", "x509: certificate signed by unknown
authority", "doesn't contain any IP SANs").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import ipaddress
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from kubepulse.doctor.findings import Finding, fail, ok, warn
from kubepulse.kube.objects import Node
from kubepulse.scrape.endpoint import (
    DEFAULT_PREFERRED_ADDRESS_TYPES,
    certificate_failure,
    choose_address,
    kubelet_port,
)

# Clock skew. The Date header has one-second resolution, so below about 2 s a skew
# cannot be told from rounding and the round trip: warn only when the skew is certainly
# above WARN. It fails above 5 minutes: the kubelet-serving signer backdates the
# certificates it issues by 5 minutes (kube-controller-manager csrsigning, `backdate`),
# as kubepulse's pki does, so a larger skew makes fresh certificates "not yet valid" on
# one side, and metric timestamps land minutes away from the pods' start times the HPA
# compares them with.
SKEW_WARN_SECONDS = 2.0
SKEW_FAIL_SECONDS = 300.0
EXPIRY_WARN = dt.timedelta(days=7)

FIX_BOOTSTRAP = (
    "give the kubelet a CA-signed serving certificate: set `serverTLSBootstrap: true` in "
    "its KubeletConfiguration (/var/lib/kubelet/config.yaml) and restart it; it then asks "
    "for one with a kubernetes.io/kubelet-serving CSR naming its node addresses, which "
    "kube-controller-manager never approves by itself: approve it (`kubectl certificate "
    "approve NAME`) or run `kubepulse csr-approver`"
)
FIX_INSECURE = "--kubelet-insecure-tls skips the check, for test clusters only"


@dataclass(frozen=True)
class KubeletTLS:
    """How the server verifies kubelets: a CA bundle, the system's CAs, or not at all."""

    ca_pem: bytes | None = None
    ca_source: str = "the system's CAs"
    insecure: bool = False


@dataclass(frozen=True)
class NodeCheckConfig:
    preferred_types: Sequence[str] = DEFAULT_PREFERRED_ADDRESS_TYPES
    port: int = 10250
    """Used when the node has no status.daemonEndpoints.kubeletEndpoint.Port."""
    timeout: float = 5.0
    tls: KubeletTLS = KubeletTLS()


@dataclass(frozen=True)
class Answer:
    """What one unverified TLS connection to the kubelet gave."""

    der: bytes | None
    date: dt.datetime | None
    sent: float
    received: float


def is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return True


async def resolve(name: str, timeout: float) -> list[str]:
    """The addresses of name, or OSError with Go's wording ("no such host")."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except TimeoutError as err:
        raise OSError(f"lookup {name}: i/o timeout") from err
    except socket.gaierror as err:
        no_such_host = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
        reason = "no such host" if err.errno in no_such_host else err.strerror or str(err)
        raise OSError(f"lookup {name}: {reason}") from err
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _subject(node: Node) -> str:
    return f"node/{node.name}"


def address_finding(
    node: Node, preferred: Sequence[str], resolved: dict[str, str]
) -> tuple[Finding, tuple[str, str] | None]:
    """The address line: what each preferred type gives, and the one the server uses.

    resolved maps each name looked up to its addresses or its error, for the report.
    """
    subject = _subject(node)
    shown = []
    for address_type in preferred:
        found = [a.address for a in node.addresses if a.type == address_type and a.address]
        text = found[0] if found else "-"
        if found and found[0] in resolved:
            text += f" ({resolved[found[0]]})"
        shown.append(f"{address_type}={text}")
    chosen = choose_address(node, preferred)
    if chosen is None:
        have = ", ".join(sorted({a.type for a in node.addresses})) or "none"
        return fail(
            "address",
            subject,
            f"no address matched types [{' '.join(preferred)}]; the node has: {have}",
            "add the node's address types to --kubelet-preferred-address-types "
            "(default InternalIP,ExternalIP,Hostname), or fix the kubelet's --node-ip",
        ), None
    return ok("address", subject, f"uses {chosen[0]} {chosen[1]}; {', '.join(shown)}"), chosen


def dns_fix(node: Node) -> str:
    if any(a.type == "InternalIP" for a in node.addresses):
        return (
            "put InternalIP first: --kubelet-preferred-address-types=InternalIP,ExternalIP,"
            "Hostname (the default in kubepulse's and metrics-server's manifests), or make "
            "node names resolvable by the cluster DNS (e.g. a CoreDNS `hosts` block with "
            "'IP NAME' lines and `fallthrough`)"
        )
    return (
        "make node names resolvable by the cluster DNS (e.g. a CoreDNS `hosts` block with "
        "'IP NAME' lines and `fallthrough`), or give the nodes an InternalIP (kubelet --node-ip)"
    )


def port_of(node: Node, config: NodeCheckConfig) -> int:
    # --kubelet-use-node-status-port, as kubepulse's and metrics-server's manifests set it.
    return kubelet_port(node, config.port, use_node_status_port=True)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def connect(ip: str, port: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        _, writer = await asyncio.open_connection(ip, port)
    await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    # A kubelet that does not finish the TLS shutdown must not hold the check up.
    writer.close()
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


def port_failure(node: Node, address: str, port: int, err: BaseException) -> Finding:
    dial = f"dial tcp {_join(address, port)}: "
    from_status = node.kubelet_port is not None
    where = "status.daemonEndpoints.kubeletEndpoint.Port" if from_status else "--kubelet-port"
    if isinstance(err, ConnectionRefusedError):
        return fail(
            "port",
            _subject(node),
            dial + "connect: connection refused",
            f"nothing listens there: start the kubelet (or `kubepulse agent`) on the node, "
            f"and check that the port ({port}, from {where}) is the one it serves on",
        )
    if isinstance(err, TimeoutError):
        return fail(
            "port",
            _subject(node),
            dial + "i/o timeout",
            f"a firewall, security group or NetworkPolicy drops the traffic: the metrics "
            f"server's pod must reach every node on TCP {port}",
        )
    return fail(
        "port",
        _subject(node),
        dial + f"connect: {getattr(err, 'strerror', None) or err}",
        f"check the route from the metrics server to {address} and that the kubelet "
        f"listens on {port}",
    )


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def fetch(address: str, ip: str, port: int, timeout: float) -> Answer:
    """The kubelet's certificate and the Date of its answer to GET /healthz, unverified.

    Any answer has a Date header, a 401 too (a kubelet authenticates /healthz on 10250).
    """
    host = None if is_ip(address) else address
    writer: asyncio.StreamWriter | None = None
    sent = time.time()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                ip, port, ssl=_unverified_context(), server_hostname=host or ""
            )
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            sent = time.time()
            writer.write(
                f"GET /healthz HTTP/1.1\r\nHost: {_join(address, port)}\r\n"
                "User-Agent: kubepulse-doctor\r\nConnection: close\r\n\r\n".encode()
            )
            date = None
            with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                head = await reader.readuntil(b"\r\n\r\n")
                date = _date(head)
            received = time.time()
        return Answer(der, date, sent, received)
    finally:
        if writer is not None:
            await _close(writer)


def _date(head: bytes) -> dt.datetime | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "date":
            with contextlib.suppress(TypeError, ValueError):
                return email.utils.parsedate_to_datetime(value.strip())
    return None


async def verify(ip: str, port: int, address: str, tls: KubeletTLS, timeout: float) -> str | None:
    """None if the chain verifies against the CA in use (names aside), else why not.

    A second handshake with the server's own trust, as Go's verifier would judge it;
    names are judged separately, from the certificate, to tell the causes apart.
    """
    context = ssl.create_default_context(
        cadata=tls.ca_pem.decode() if tls.ca_pem is not None else None
    )
    context.check_hostname = False
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                ip, port, ssl=context, server_hostname=None if is_ip(address) else address
            )
        return None
    except ssl.SSLCertVerificationError as err:
        if certificate_failure(err) == "unknown-authority":
            return "unknown-authority"
        return str(getattr(err, "verify_message", "") or err)
    finally:
        if writer is not None:
            await _close(writer)


def _cn(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"CN={values[0].value!s}" if values else name.rfc4514_string() or "(empty)"


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return list(san.get_values_for_type(x509.DNSName)), [
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    ]


def _dns_matches(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, Exception):  # InvalidSignature and unsupported keys
        return False
    return True


def certificate_findings(
    node: Node,
    address_type: str,
    address: str,
    cert: x509.Certificate,
    tls: KubeletTLS,
    verify_error: str | None,
    now: dt.datetime,
) -> list[Finding]:
    """What a Go client would refuse in this certificate, one finding per cause.

    verify_error is verify()'s verdict (None when the chain is good or was not checked).
    With --kubelet-insecure-tls nothing is refused (Go's InsecureSkipVerify), so every
    problem is a warning.
    """
    subject = _subject(node)
    problems: list[tuple[str, str]] = []
    before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now > after:
        problems.append(
            (
                f"x509: certificate has expired or is not yet valid: current time "
                f"{now:%Y-%m-%dT%H:%M:%SZ} is after {after:%Y-%m-%dT%H:%M:%SZ}",
                "renew it: with `serverTLSBootstrap: true` the kubelet rotates its serving "
                "certificate through a new CSR (approve it, or run `kubepulse csr-approver`); "
                "a kubeadm self-signed one is made again when you delete "
                "/var/lib/kubelet/pki/kubelet.crt and kubelet.key and restart the kubelet",
            )
        )
    elif now < before:
        problems.append(
            (
                f"x509: certificate has expired or is not yet valid: current time "
                f"{now:%Y-%m-%dT%H:%M:%SZ} is before {before:%Y-%m-%dT%H:%M:%SZ}",
                "the clocks disagree: sync the node's, the CA host's and this machine's "
                "clocks (chrony or systemd-timesyncd)",
            )
        )
    issuer = _cn(cert.issuer)
    if _self_signed(cert) and verify_error is not None:
        problems.append(
            (
                f"x509: certificate signed by unknown authority: the kubelet's certificate "
                f"is self-signed ({issuer}), as kubeadm makes it; checked against "
                f"{tls.ca_source}",
                f"{FIX_BOOTSTRAP}; {FIX_INSECURE}",
            )
        )
    elif verify_error == "unknown-authority":
        problems.append(
            (
                f"x509: certificate signed by unknown authority: issued by {issuer}, checked "
                f"against {tls.ca_source}",
                "if the kubelets' certificates come from another CA, give the server that CA "
                f"(--kubelet-certificate-authority=FILE); otherwise {FIX_BOOTSTRAP}; "
                f"{FIX_INSECURE}",
            )
        )
    elif verify_error is not None and now <= after and now >= before:
        problems.append((f"x509: {verify_error}", f"{FIX_BOOTSTRAP}; {FIX_INSECURE}"))
    names, ips = _sans(cert)
    if is_ip(address):
        if not ips:
            problems.append(
                (
                    f"x509: cannot validate certificate for {address} because it doesn't "
                    f"contain any IP SANs (it names {', '.join(names) or 'nothing'})",
                    f"the server connects to the node's {address_type}; {FIX_BOOTSTRAP} (the "
                    "kubelet puts its IPs in the CSR); or choose an address type the "
                    "certificate names (--kubelet-preferred-address-types=Hostname,... when "
                    f"the names resolve); {FIX_INSECURE}",
                )
            )
        elif ipaddress.ip_address(address.split("%", 1)[0]) not in {
            ipaddress.ip_address(ip) for ip in ips
        }:
            problems.append(
                (
                    f"x509: certificate is valid for {', '.join(ips)}, not {address}",
                    f"the certificate names other IPs than the node's {address_type}: "
                    f"{FIX_BOOTSTRAP}; {FIX_INSECURE}",
                )
            )
    elif not any(_dns_matches(n, address) for n in names):
        valid_for = ", ".join(names)
        text = (
            f"x509: certificate is valid for {valid_for}, not {address}"
            if names
            else f"x509: certificate is not valid for any names, but wanted to match {address}"
        )
        problems.append(
            (
                text,
                f"{FIX_BOOTSTRAP}; or put InternalIP first in --kubelet-preferred-address-types "
                f"if the certificate names the node's IP; {FIX_INSECURE}",
            )
        )
    if tls.insecure:
        return [
            warn(
                "certificate",
                subject,
                f"{what} (not checked: --kubelet-insecure-tls)",
                "the server trusts whatever answers; " + fix,
            )
            for what, fix in problems
        ] or [
            warn(
                "certificate",
                subject,
                f"kubelet certificates are not verified (--kubelet-insecure-tls); this one "
                f"is from {issuer}",
                "testing only: give the server --kubelet-certificate-authority instead",
            )
        ]
    if problems:
        return [fail("certificate", subject, what, fix) for what, fix in problems]
    left = after - now
    names_shown = ", ".join([*ips, *names])
    if left < EXPIRY_WARN:
        return [
            warn(
                "certificate",
                subject,
                f"serving certificate expires in {left.days}d{left.seconds // 3600}h "
                f"({after:%Y-%m-%dT%H:%M:%SZ})",
                "make sure it is rotated: `serverTLSBootstrap: true` and an approver for "
                "the kubelet's next CSR (`kubepulse csr-approver`)",
            )
        ]
    return [
        ok(
            "certificate",
            subject,
            f"serving certificate from {issuer} verifies against {tls.ca_source}, names "
            f"{names_shown}, valid until {after:%Y-%m-%d}",
        )
    ]


def skew_bounds(answer: Answer) -> tuple[float, float] | None:
    """(low, high) bounds of the kubelet's clock minus ours, in seconds.

    The Date header is the time the answer was made, truncated to the second; it was
    made between sending and receiving.
    """
    if answer.date is None:
        return None
    remote = answer.date.timestamp()
    return remote - answer.received, remote + 1.0 - answer.sent


def clock_finding(node: Node, bounds: tuple[float, float]) -> Finding:
    low, high = bounds
    skew = low if low > 0 else high if high < 0 else 0.0
    subject = _subject(node)
    direction = "ahead of" if skew > 0 else "behind"
    fix = (
        "run time sync (chrony, systemd-timesyncd or ntpd) on the node and on this machine; "
        "metric timestamps come from the kubelet's clock"
    )
    if abs(skew) > SKEW_FAIL_SECONDS:
        return fail(
            "clock",
            subject,
            f"the kubelet's clock is {abs(skew):.0f}s {direction} this machine's "
            f"(more than {SKEW_FAIL_SECONDS:.0f}s: certificates it is issued look not yet "
            "valid)",
            fix,
        )
    if abs(skew) > SKEW_WARN_SECONDS:
        return warn(
            "clock",
            subject,
            f"the kubelet's clock is {abs(skew):.1f}s {direction} this machine's "
            f"(warned above {SKEW_WARN_SECONDS:.0f}s, the Date header's resolution and a "
            "round trip)",
            fix,
        )
    return ok(
        "clock",
        subject,
        f"the kubelet's clock agrees with this machine's (within {SKEW_WARN_SECONDS:.0f}s)",
    )


async def check_node(node: Node, config: NodeCheckConfig) -> list[Finding]:
    """Everything between the metrics server and this node's kubelet, in order; it stops
    at the first step that fails, since the later ones depend on it."""
    names = [
        a.address
        for a in node.addresses
        if a.type in config.preferred_types and a.address and not is_ip(a.address)
    ]
    looked_up = await asyncio.gather(
        *(resolve(name, config.timeout) for name in names), return_exceptions=True
    )
    resolved: dict[str, str] = {}
    for name, result in zip(names, looked_up, strict=True):
        if isinstance(result, BaseException):
            resolved[name] = "does not resolve"
        else:
            resolved[name] = "resolves to " + ", ".join(result)
    address_line, chosen = address_finding(node, config.preferred_types, resolved)
    findings = [address_line]
    if chosen is None:
        return findings
    address_type, address = chosen
    subject = _subject(node)
    port = port_of(node, config)
    ip = address
    if not is_ip(address):
        result = looked_up[names.index(address)]
        if isinstance(result, BaseException):
            findings.append(
                fail(
                    "dns",
                    subject,
                    f'Get "https://{_join(address, port)}/metrics/resource": dial tcp: '
                    f"{result} (the server uses the node's {address_type}; looked up from "
                    "this machine, the server's pod asks the cluster DNS)",
                    dns_fix(node),
                )
            )
            return findings
        ip = result[0]
    try:
        await connect(ip, port, config.timeout)
    except (OSError, TimeoutError) as err:
        findings.append(port_failure(node, address, port, err))
        return findings
    findings.append(ok("port", subject, f"the kubelet port {_join(address, port)} accepts TCP"))
    try:
        answer = await fetch(address, ip, port, config.timeout)
        verify_error = (
            None
            if config.tls.insecure
            else await verify(ip, port, address, config.tls, config.timeout)
        )
    except (OSError, TimeoutError, ssl.SSLError) as err:
        findings.append(
            fail(
                "certificate",
                subject,
                f"TLS handshake with {_join(address, port)} failed: "
                f"{getattr(err, 'reason', None) or err or type(err).__name__}",
                "the port must serve HTTPS, as the kubelet does on 10250 (not the read-only "
                "HTTP port 10255)",
            )
        )
        return findings
    if answer.der is not None:
        cert = x509.load_der_x509_certificate(answer.der)
        findings += certificate_findings(
            node, address_type, address, cert, config.tls, verify_error, dt.datetime.now(dt.UTC)
        )
    bounds = skew_bounds(answer)
    if bounds is not None:
        findings.append(clock_finding(node, bounds))
    return findings
