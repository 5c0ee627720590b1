"""Where a node's kubelet is, and what a failed certificate check means.

One home for the rules both the scraper and `kubepulse doctor` follow:
- the address: metrics-server's priorityNodeAddressResolver (pkg/utils/
  address_resolver.go): address types in --kubelet-preferred-address-types order, and
  within a type the first address in .status.addresses;
- the port: --kubelet-use-node-status-port takes .status.daemonEndpoints.kubeletEndpoint
  .Port when the node reports one, else --kubelet-port (client.go GetMetrics);
- a certificate check that failed, named as Go's crypto/x509 names it (OpenSSL reports
  X509_V_ERR_* codes; users and the metrics-server docs know Go's texts).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Literal

from kubepulse.kube.objects import Node

DEFAULT_PREFERRED_ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")

# OpenSSL X509_V_ERR_* codes, by how Go's crypto/x509 would name the failure.
_UNKNOWN_AUTHORITY_CODES = frozenset({2, 18, 19, 20, 21})
_EXPIRED_CODES = frozenset({9, 10})  # not yet valid, has expired: Go's x509.Expired
_NAME_MISMATCH_CODES = frozenset({62, 64})  # hostname, IP address mismatch

CertificateFailure = Literal["unknown-authority", "expired", "name-mismatch", "other"]


def choose_address(node: Node, preferred_types: Sequence[str]) -> tuple[str, str] | None:
    """(type, address) of the node's kubelet, or None when no type matches."""
    for address_type in preferred_types:
        for address in node.addresses:
            if address.type == address_type and address.address:
                return address_type, address.address
    return None


def kubelet_port(node: Node, port: int, use_node_status_port: bool) -> int:
    if use_node_status_port and node.kubelet_port:
        return node.kubelet_port
    return port


def certificate_failure(err: ssl.SSLCertVerificationError) -> CertificateFailure:
    code = getattr(err, "verify_code", None)
    lowered = str(getattr(err, "verify_message", "") or err).lower()
    if (
        code in _UNKNOWN_AUTHORITY_CODES
        or "issuer certificate" in lowered
        or "self-signed" in lowered
        or "self signed" in lowered
    ):
        return "unknown-authority"
    if code in _EXPIRED_CODES or "expired" in lowered or "not yet valid" in lowered:
        return "expired"
    if code in _NAME_MISMATCH_CODES or "mismatch" in lowered:
        return "name-mismatch"
    return "other"
