"""Whether to approve a kubelet's serving-certificate request: kubelet-csr-approver's checks.

kube-controller-manager never approves kubernetes.io/kubelet-serving CSRs by itself
(CertificateSigningRequest docs), and approving them blindly lets anyone with a node's
credentials get a certificate for any name the cluster CA vouches for (the attacker model
in postfinance/kubelet-csr-approver's README). So, as that approver does
(internal/controller/csr_controller.go, regex_ip_checks.go; defaults from
internal/cmd/cmd.go), a request is approved only when every check passes, and denied with
the failing check's reason otherwise. Added here: kube-apiserver's own kubelet-serving
validation (pkg/apis/certificates ValidateKubeletServingCSR: O=system:nodes, no email or
URI SANs, the exact usages) and the node itself (it must exist and every IP SAN must be
one of its status.addresses), in place of upstream's DNS lookup of the SAN names.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509
from cryptography.x509.oid import NameOID

KUBELET_SERVING = "kubernetes.io/kubelet-serving"
NODE_PREFIX = "system:node:"
# upstream: --max-expiration-sec, "defaults to 367 days" and may not be raised above it.
MAX_EXPIRATION_SECONDS = 367 * 24 * 3600
# upstream: --allowed-dns-names, default 1 (the kubelet asks for its hostname).
DEFAULT_ALLOWED_DNS_NAMES = 1
# kube-apiserver's kubeletServingRequiredUsages and ...NoRSA (RSA keys add key encipherment).
SERVING_USAGES = (
    frozenset({"digital signature", "key encipherment", "server auth"}),
    frozenset({"digital signature", "server auth"}),
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Action = Literal["approve", "deny", "ignore"]

APPROVED_REASON = "kubelet-serving cert validated"
APPROVED_MESSAGE = "CSR complied with kubelet-csr-approver validation process"
DENIED_REASON = "kubelet-serving cert denied"
DENIED_PREFIX = "CSR not complying with kubelet-csr-approver validation process. Reason: "


def ip_prefixes(text: str) -> tuple[IPNetwork, ...]:
    """--provider-ip-prefixes: comma-separated CIDRs (upstream default 0.0.0.0/0,::/0)."""
    try:
        return tuple(ipaddress.ip_network(p.strip()) for p in text.split(",") if p.strip())
    except ValueError as err:
        raise ValueError(f"invalid IP prefix: {err}") from err


@dataclass(frozen=True)
class ApproverConfig:
    provider_regex: re.Pattern[str] = field(default_factory=lambda: re.compile(".*"))
    allowed_dns_names: int = DEFAULT_ALLOWED_DNS_NAMES
    bypass_hostname_check: bool = False
    provider_ip_prefixes: tuple[IPNetwork, ...] = field(
        default_factory=lambda: ip_prefixes("0.0.0.0/0,::/0")
    )
    max_expiration_seconds: int = MAX_EXPIRATION_SECONDS
    ignore_non_system_node: bool = False

    def __post_init__(self) -> None:
        # The same bounds as upstream's cmd.go.
        if not 0 <= self.max_expiration_seconds <= MAX_EXPIRATION_SECONDS:
            raise ValueError("the maximum expiration cannot be below 0 or above 367 days")
        if not 1 <= self.allowed_dns_names <= 1000:
            raise ValueError("the number of allowed DNS names must be between 1 and 1000")


@dataclass(frozen=True)
class Decision:
    action: Action
    check: str
    """Which check decided: a short word for logs and tests."""
    reason: str


def _approve() -> Decision:
    return Decision("approve", "all", "")


def is_decided(csr: Mapping[str, Any]) -> bool:
    status = csr.get("status") or {}
    types = {c.get("type") for c in status.get("conditions") or []}
    return bool(types & {"Approved", "Denied"}) or bool(status.get("certificate"))


def parse_request(csr: Mapping[str, Any]) -> x509.CertificateSigningRequest:
    """spec.request: base64 of a PEM CERTIFICATE REQUEST."""
    pem = base64.b64decode(str((csr.get("spec") or {}).get("request", "")), validate=True)
    return x509.load_pem_x509_csr(pem)


def _sans(request: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _attributes(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def _node_ips(node: Mapping[str, Any]) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found = set()
    for address in (node.get("status") or {}).get("addresses") or []:
        try:
            found.add(ipaddress.ip_address(str(address.get("address", ""))))
        except ValueError:
            continue  # Hostname, InternalDNS, ExternalDNS
    return found


def decide(
    csr: Mapping[str, Any], node: Mapping[str, Any] | None, config: ApproverConfig
) -> Decision:
    """Approve, deny (with the reason) or ignore one CSR; node is the Node object named by
    the requester (None when it does not exist)."""
    spec = csr.get("spec") or {}
    # Triage, as upstream: other signers, decided and signed requests are not ours.
    if spec.get("signerName") != KUBELET_SERVING:
        return Decision("ignore", "signer", f"signer is {spec.get('signerName')!r}")
    if is_decided(csr):
        return Decision("ignore", "decided", "already approved, denied or signed")
    try:
        request = parse_request(csr)
    except (ValueError, binascii.Error) as err:
        # upstream logs "unable to parse csr" and leaves it.
        return Decision("ignore", "parse", f"spec.request cannot be parsed: {err}")
    username = str(spec.get("username") or "")
    if not username.startswith(NODE_PREFIX):
        if config.ignore_non_system_node:
            return Decision("ignore", "username", "username is not system:node:*")
        return Decision("deny", "username", "CSR Spec.Username is not prefixed with system:node:")
    san = _sans(request)
    dns_names = list(san.get_values_for_type(x509.DNSName)) if san else []
    raw_ips = list(san.get_values_for_type(x509.IPAddress)) if san else []
    ips = [ip for ip in raw_ips if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)]
    if len(ips) != len(raw_ips):
        return Decision("deny", "san-type", "The x509 CR has an IP network SAN, not an address")
    if not dns_names and not ips:
        return Decision(
            "deny", "san", "The x509 Cert Request SAN contains neither an IP address nor a DNS name"
        )
    common_names = _attributes(request.subject, NameOID.COMMON_NAME)
    if common_names != [username]:
        return Decision(
            "deny",
            "common-name",
            "CSR username does not match the parsed x509 certificate request commonname",
        )
    found = _dns_check(username.removeprefix(NODE_PREFIX), dns_names, config)
    if found is not None:
        return found
    for ip in ips:
        if not any(ip in prefix for prefix in config.provider_ip_prefixes):
            return Decision(
                "deny",
                "ip-prefix",
                f"One of the SAN IP addresses, {ip}, is not part of the allowed IP "
                "Prefixes/Subnets, denying the CSR.",
            )
    expiration = spec.get("expirationSeconds")
    if expiration is not None and int(expiration) > config.max_expiration_seconds:
        return Decision(
            "deny",
            "expiration",
            "CSR spec.expirationSeconds is longer than the maximum allowed expiration second",
        )
    found = _kubelet_serving_shape(request, san, spec.get("usages") or [])
    if found is not None:
        return found
    return _node_check(username.removeprefix(NODE_PREFIX), ips, node)


def _dns_check(hostname: str, dns_names: Sequence[str], config: ApproverConfig) -> Decision | None:
    if len(dns_names) > config.allowed_dns_names:
        return Decision(
            "deny",
            "dns-count",
            f"The x509 Cert Request contains more than {config.allowed_dns_names} DNS name(s)",
        )
    for name in dns_names:
        if not config.bypass_hostname_check and not name.startswith(hostname):
            return Decision(
                "deny",
                "dns-hostname",
                "The SAN DNS Name in the x509 CSR is not prefixed by the node name (hostname)",
            )
        # Go's regexp MatchString finds a match anywhere: anchor the regex to pin it.
        if not config.provider_regex.search(name):
            return Decision(
                "deny",
                "dns-regex",
                "The SAN DNS name in the x509 CR is not allowed by the Cloud provider regex",
            )
    return None


def _kubelet_serving_shape(
    request: x509.CertificateSigningRequest,
    san: x509.SubjectAlternativeName | None,
    usages: Sequence[str],
) -> Decision | None:
    """kube-apiserver's ValidateKubeletServingCSR: what a kubelet-serving request is."""
    if _attributes(request.subject, NameOID.ORGANIZATION_NAME) != ["system:nodes"]:
        return Decision(
            "deny", "organization", "The x509 CR subject organization is not [system:nodes]"
        )
    if san is not None and (
        san.get_values_for_type(x509.RFC822Name)
        or san.get_values_for_type(x509.UniformResourceIdentifier)
    ):
        return Decision(
            "deny", "san-type", "The x509 CR has email or URI SANs, which are not allowed"
        )
    if frozenset(usages) not in SERVING_USAGES or len(set(usages)) != len(usages):
        return Decision(
            "deny",
            "usages",
            f"CSR spec.usages {sorted(usages)} are not those of a kubelet serving certificate "
            "(digital signature, server auth, and key encipherment for RSA keys)",
        )
    return None


def _node_check(
    node_name: str,
    ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
    node: Mapping[str, Any] | None,
) -> Decision:
    if node is None:
        return Decision("deny", "node", f"The node {node_name} does not exist")
    known = _node_ips(node)
    for ip in ips:
        if ip not in known:
            return Decision(
                "deny",
                "node-ip",
                f"One of the SAN IP addresses, {ip}, is not among the addresses of node "
                f"{node_name}",
            )
    return _approve()


def approval(csr: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    """The body for PUT .../certificatesigningrequests/NAME/approval: the CSR with the
    Approved or Denied condition appended (upstream's appendCondition)."""
    approved = decision.action == "approve"
    condition = {
        "type": "Approved" if approved else "Denied",
        "status": "True",
        "reason": APPROVED_REASON if approved else DENIED_REASON,
        "message": APPROVED_MESSAGE if approved else DENIED_PREFIX + decision.reason,
    }
    status: dict[str, Any] = dict(csr.get("status") or {})
    status["conditions"] = [*(status.get("conditions") or []), condition]
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": dict(csr.get("metadata") or {}),
        "spec": dict(csr.get("spec") or {}),
        "status": status,
    }
