"""How the server reaches kubelets: its flags over the cluster's own credentials."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from kubepulse.kube.client import plugin_for
from kubepulse.kube.exec_plugin import ExecPlugin
from kubepulse.kube.kubeconfig import Credentials
from kubepulse.scrape.client import ClientConfig
from kubepulse.server.config import ConfigError, KubeletOptions

log = logging.getLogger("kubepulse.server")


@dataclass(frozen=True)
class KubeletDefaults:
    """How kubelets are reached when no --kubelet-* flag says otherwise. Against a cluster
    these are the cluster's own credentials and CA: metrics-server copies its rest.Config
    (token, client certificate, CA, insecure) into the kubelet client
    (cmd/metrics-server/app/options/kubelet_client.go), and the flags override it."""

    token: str | None = None
    ca_file: Path | None = None
    insecure: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None
    token_file: Path | None = None
    """Where `token` came from, when it rotates (the service account's)."""
    exec_plugin: ExecPlugin | None = None
    """The kubeconfig user's exec credential plugin, when it has no token of its own."""


def read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as err:
        raise ConfigError(f"cannot read token file {path}: {err.strerror}") from err


def client_config(
    k: KubeletOptions, token: str | None, defaults: KubeletDefaults = KubeletDefaults()
) -> ClientConfig:
    where = ClientConfig(
        preferred_address_types=k.preferred_address_types,
        port=k.port,
        use_node_status_port=k.use_node_status_port,
        timeout=k.request_timeout,
        use_summary=k.use_summary_api,
    )
    if k.completely_insecure:
        # As metrics-server: http, an anonymous rest.Config and no TLS config at all, so
        # that no credential goes where anyone may read it.
        log.warning(
            "--deprecated-kubelet-completely-insecure: kubelets are scraped over plain HTTP, "
            "without any authentication: anyone on the path can read and forge what they "
            "say. Use --kubelet-insecure-tls at most, and only for testing."
        )
        return replace(where, plain_http=True)
    ca_pem = k.certificate_authority_text.encode() if k.certificate_authority_text else None
    if k.certificate_authority is not None or ca_pem is not None:
        ca_file, insecure = k.certificate_authority, False
    elif k.insecure_tls:
        ca_file, insecure = None, True
    else:
        ca_file, insecure = (None, True) if defaults.insecure else (defaults.ca_file, False)
    if k.insecure_tls:
        log.warning(
            "--kubelet-insecure-tls: kubelet serving certificates are NOT verified; "
            "anyone on the path can serve false metrics. Use only for testing."
        )
    elif insecure:
        log.warning(
            "the kubeconfig says insecure-skip-tls-verify, so kubelet serving certificates "
            "are NOT verified either; give --kubelet-certificate-authority to verify them"
        )
    cert, key = k.client_certificate, k.client_key
    if cert is None:
        cert, key = defaults.client_cert, defaults.client_key
    return replace(
        where,
        ca_file=ca_file,
        ca_pem=ca_pem,
        insecure_tls=insecure,
        client_cert=cert,
        client_key=key,
        token=token or defaults.token,
        # The file again every minute: a rotated token must reach the kubelets too.
        token_file=k.token_file or (None if token else defaults.token_file),
        exec_plugin=None if token or k.token_file else defaults.exec_plugin,
    )


def kubelet_defaults(
    creds: Credentials, tmp: Path, token_file: Path | None, ca_file: Path | None
) -> KubeletDefaults:
    """The cluster's credentials for kubelets. ssl only loads CAs and key pairs from files:
    inline kubeconfig data goes to owner-only files in tmp, for the caller to remove once
    the kubelet client has built its TLS context."""
    if ca_file is None and creds.ca_pem:
        ca_file = tmp / "ca.crt"
        ca_file.write_bytes(creds.ca_pem)
    cert = key = None
    if creds.client_cert_pem and creds.client_key_pem:
        cert, key = tmp / "client.crt", tmp / "client.key"
        key.touch(mode=0o600)
        key.write_bytes(creds.client_key_pem)
        cert.write_bytes(creds.client_cert_pem)
    return KubeletDefaults(
        creds.token, ca_file, creds.insecure, cert, key, token_file, plugin_for(creds)
    )
