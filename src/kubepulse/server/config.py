"""Everything `kubepulse server` can be told, typed, and checked in one place.

As metrics-server's options (cmd/metrics-server/app/options): the command line fills a
ServerConfig, `complete()` checks it and turns its text into what the server runs
with; `kubepulse up` and `kubepulse dashboard` build theirs directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubepulse.api.authz import DEFAULT_ALWAYS_ALLOW_PATHS
from kubepulse.api.selectors import SelectorError, parse_label_selector
from kubepulse.audit import policy as audit_policy
from kubepulse.audit.backends import BatchOptions, TruncateOptions
from kubepulse.audit.event import API_VERSION
from kubepulse.audit.policy import Policy
from kubepulse.errors import Failure
from kubepulse.history.prometheus import check_url
from kubepulse.history.tiers import Tier, parse_tiers
from kubepulse.scrape.endpoint import DEFAULT_PREFERRED_ADDRESS_TYPES
from kubepulse.server import tlsoptions
from kubepulse.server.connections import Limits
from kubepulse.server.tlsoptions import NamedCertKey

log = logging.getLogger("kubepulse.server")


class ConfigError(Failure):
    """A server configuration that cannot run, in one line."""


@dataclass(frozen=True)
class KubeletOptions:
    """How kubelets are reached (metrics-server's --kubelet-* flags)."""

    preferred_address_types: tuple[str, ...] = DEFAULT_PREFERRED_ADDRESS_TYPES
    port: int = 10250
    use_node_status_port: bool = False
    request_timeout: float = 10.0
    certificate_authority: Path | None = None
    certificate_authority_text: str = ""
    """The CA as PEM text, for an install that has it in a ConfigMap or a value."""
    insecure_tls: bool = False
    completely_insecure: bool = False
    """Plain HTTP to kubelets, no credentials (--deprecated-kubelet-completely-insecure)."""
    client_certificate: Path | None = None
    client_key: Path | None = None
    token_file: Path | None = None
    use_summary_api: bool = False


@dataclass(frozen=True)
class ServingOptions:
    """Where and how the API is served (--bind-address, --secure-port, --tls-*)."""

    bind_address: str = "0.0.0.0"
    secure_port: int = 443
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    cert_dir: Path = Path("apiserver.local.config/certificates")
    max_connections: int = Limits.max_connections
    """Connections open at once, beyond which new ones are closed (server/connections.py)."""
    tls_min_version: str = ""
    """Go's name (VersionTLS12); empty is TLS 1.2."""
    tls_cipher_suites: tuple[str, ...] = ()
    """Go's names; empty keeps OpenSSL's defaults (tlsoptions.py)."""
    tls_sni_cert_keys: tuple[NamedCertKey, ...] = ()
    permit_address_sharing: bool = False
    """SO_REUSEADDR on the listening socket."""
    permit_port_sharing: bool = False
    """SO_REUSEPORT: several processes may listen on one address and port."""

    def check_tls(self) -> None:
        try:
            tlsoptions.checked(self.tls_min_version, self.tls_cipher_suites)
        except tlsoptions.TLSOptionError as err:
            raise ConfigError(str(err)) from err
        for pair in self.tls_sni_cert_keys:
            for path in (pair.cert_file, pair.key_file):
                if not path.is_file():
                    raise ConfigError(f"--tls-sni-cert-key: no such file: {path}")

    def limits(self) -> Limits:
        return Limits(max_connections=self.max_connections)


AUDIT_MODES = ("batch", "blocking", "blocking-strict")
AUDIT_FORMATS = ("json", "legacy")


@dataclass(frozen=True)
class AuditOptions:
    """The audit log and webhook (kube-apiserver's --audit-* flags, its defaults)."""

    policy_file: Path | None = None
    log_path: str = ""
    """"-" is standard output."""
    log_format: str = "json"
    log_max_age_days: int = 366
    log_max_backups: int = 100
    log_max_size_mb: int = 100
    log_compress: bool = False
    log_mode: str = "blocking"
    log_batch: BatchOptions = field(default_factory=lambda: BatchOptions(10000, 1, 0.0))
    log_truncate: TruncateOptions = field(default_factory=TruncateOptions)
    log_version: str = API_VERSION
    webhook_config_file: Path | None = None
    webhook_mode: str = "batch"
    webhook_batch: BatchOptions = field(
        default_factory=lambda: BatchOptions(10000, 400, 30.0, True, 10.0, 15)
    )
    webhook_initial_backoff: float = 10.0
    webhook_truncate: TruncateOptions = field(default_factory=TruncateOptions)
    webhook_version: str = API_VERSION

    def policy(self) -> Policy | None:
        """The policy, when events have somewhere to go; checks the rest."""
        for flag, mode in (("log", self.log_mode), ("webhook", self.webhook_mode)):
            if mode not in AUDIT_MODES:
                raise ConfigError(
                    f"--audit-{flag}-mode: unknown mode {mode!r}; known: {', '.join(AUDIT_MODES)}"
                )
        if self.log_format not in AUDIT_FORMATS:
            raise ConfigError(
                f"--audit-log-format: unknown format {self.log_format!r}; known: legacy,json"
            )
        for flag, batch in (("log", self.log_batch), ("webhook", self.webhook_batch)):
            # k8s.io/apiserver's BatchConfig validation.
            if batch.throttle_enable and (batch.throttle_qps <= 0 or batch.throttle_burst <= 0):
                raise ConfigError(
                    f"--audit-{flag}-batch-throttle-qps and -burst must be greater than 0 "
                    "when throttling is enabled"
                )
            if batch.buffer_size <= 0 or batch.max_size <= 0:
                raise ConfigError(
                    f"--audit-{flag}-batch-buffer-size and -max-size must be greater than 0"
                )
        for flag, version in (("log", self.log_version), ("webhook", self.webhook_version)):
            if version != API_VERSION:
                raise ConfigError(f"--audit-{flag}-version: only {API_VERSION} is known")
        outputs = bool(self.log_path) or self.webhook_config_file is not None
        if self.policy_file is None:
            if outputs:
                # kube-apiserver too records nothing without a policy.
                log.warning("no --audit-policy-file: no audit events are recorded")
            return None
        try:
            policy = audit_policy.load(self.policy_file)
        except audit_policy.PolicyError as err:
            raise ConfigError(str(err)) from err
        return policy if outputs else None


@dataclass(frozen=True)
class AuthOptions:
    """Who may ask (k8s.io/apiserver's delegating authentication and authorization)."""

    token_auth_file: Path | None = None
    client_ca_file: Path | None = None
    requestheader_client_ca_file: Path | None = None
    requestheader_allowed_names: tuple[str, ...] = ()
    requestheader_username_headers: tuple[str, ...] = ("X-Remote-User",)
    requestheader_group_headers: tuple[str, ...] = ("X-Remote-Group",)
    requestheader_extra_headers_prefix: tuple[str, ...] = ("X-Remote-Extra-",)
    token_webhook_cache_ttl: float = 10.0
    authorized_cache_ttl: float = 10.0
    unauthorized_cache_ttl: float = 10.0
    always_allow_paths: tuple[str, ...] = DEFAULT_ALWAYS_ALLOW_PATHS
    authentication_kubeconfig: Path | None = None
    """Where TokenReviews go (and the client CAs are looked up); default: the cluster's."""
    authorization_kubeconfig: Path | None = None
    """Where SubjectAccessReviews go; default: the cluster's."""
    skip_lookup: bool = False
    """Do not read kube-system/extension-apiserver-authentication for missing CAs."""
    tolerate_lookup_failure: bool = False
    """Start even when that ConfigMap cannot be read."""


DEFAULT_TIERS = "raw=1h,1m=24h,15m=30d"

DEFAULT_MAX_SIZE = 8 << 30
"""--history-max-size: 1,000 nodes of 30 pods x 2 containers keep every default tier's
whole retention in it (BENCHMARKS.md, bench.history_density)."""

MIN_MAX_SIZE = 16 << 20
"""Below this a cap would delete history every few minutes on one busy host."""


@dataclass(frozen=True)
class HistoryOptions:
    """Where history is kept (--history-*) and where the charts read it."""

    file: Path | None = None
    tiers: str = DEFAULT_TIERS
    max_size: int | None = DEFAULT_MAX_SIZE
    """Bytes; None keeps everything for the tiers' retention."""
    prometheus_url: str | None = None
    pressure_interval: float = 0.0
    """Seconds between reads of each node's OOM and throttling counters into the file
    (scrape/pressure.py); 0: not read."""

    def complete(self, dashboard: bool) -> tuple[tuple[Tier, ...], str | None]:
        """The tiers parsed, and the Prometheus the dashboard's charts read (checked)."""
        try:
            tiers = parse_tiers(self.tiers)
        except ValueError as err:
            raise ConfigError(f"--history-tiers: {err}") from err
        if self.pressure_interval < 0:
            raise ConfigError("--history-pressure-interval must not be negative")
        if self.pressure_interval and self.file is None:
            raise ConfigError("--history-pressure-interval records into --history-file: add it")
        if self.max_size is not None and self.max_size < MIN_MAX_SIZE:
            raise ConfigError(
                f"--history-max-size must be at least {MIN_MAX_SIZE >> 20}Mi, or 0 for no cap"
            )
        url = self.prometheus_url
        if url is None:
            return tiers, None
        if not dashboard:
            raise ConfigError(
                "--prometheus-url is where the dashboard reads history: add --dashboard"
            )
        try:
            return tiers, check_url(url)
        except ValueError as err:
            raise ConfigError(f"--prometheus-url: {err}") from None


@dataclass(frozen=True)
class ServerConfig:
    metric_resolution: float = 15.0
    node_selector: str = ""
    kubelet: KubeletOptions = field(default_factory=KubeletOptions)
    serving: ServingOptions = field(default_factory=ServingOptions)
    auth: AuthOptions = field(default_factory=AuthOptions)
    history: HistoryOptions = field(default_factory=HistoryOptions)
    audit: AuditOptions = field(default_factory=AuditOptions)
    dashboard: bool = False
    dashboard_token_hint: str = ""
    """Where the sign-in page says a token is (up: its kubeconfig)."""
    serve_core_api: bool = False
    """The read-only core API (nodes, pods, namespaces) of `kubepulse up`."""
    targets: Path | None = None
    """Nodes (and pods) from this file instead of a cluster."""
    kubeconfig: Path | None = None
    context: str | None = None
    cache_sync_timeout: float = 60.0
    ignored_flags: tuple[tuple[str, str], ...] = ()
    """Flags given that mean nothing here, each with why: warned of at start."""

    def complete(self) -> CompletedConfig:
        """Check the options as metrics-server does, and parse what is text."""
        k = self.kubelet
        if self.metric_resolution <= 0:
            raise ConfigError("--metric-resolution must be greater than 0")
        if k.request_timeout <= 0:
            raise ConfigError("--kubelet-request-timeout must be greater than 0")
        if self.metric_resolution * 0.9 < k.request_timeout:
            raise ConfigError(
                "metric-resolution should be larger than kubelet-request-timeout "
                "(metric-resolution * 0.9 >= kubelet-request-timeout)"
            )
        _check_kubelet(k)
        for flag, why in self.ignored_flags:
            log.warning("%s is accepted and has no effect: %s", flag, why)
        s = self.serving
        s.check_tls()
        if bool(s.tls_cert_file) != bool(s.tls_private_key_file):
            raise ConfigError("--tls-cert-file and --tls-private-key-file must be given together")
        if self.targets is not None and (self.kubeconfig is not None or self.context):
            raise ConfigError("--targets cannot be used with --kubeconfig or --context")
        if self.metric_resolution < 10:
            log.warning(
                "--metric-resolution below 10s puts more load on kubelets than upstream allows"
            )
        try:
            selector = parse_label_selector(self.node_selector)
        except SelectorError as err:
            raise ConfigError(f"invalid --node-selector: {err}") from err
        tiers, charts_url = self.history.complete(self.dashboard)
        return CompletedConfig(self, selector, tiers, charts_url, self.audit.policy())


# The pairs metrics-server's KubeletClientOptions.Validate refuses, with its messages
# (cmd/metrics-server/app/options/kubelet_client.go). --kubelet-token-file is kubepulse's:
# plain HTTP leaks a token as it would a client key, so it is refused there too.
EXCLUSIVE_KUBELET_FLAGS = (
    ("--kubelet-certificate-authority", "--kubelet-certificate-authority-text"),
    ("--kubelet-certificate-authority-text", "--kubelet-insecure-tls"),
    ("--kubelet-certificate-authority", "--kubelet-insecure-tls"),
    ("--kubelet-client-key", "--deprecated-kubelet-completely-insecure"),
    ("--kubelet-client-certificate", "--deprecated-kubelet-completely-insecure"),
    ("--kubelet-token-file", "--deprecated-kubelet-completely-insecure"),
    ("--kubelet-insecure-tls", "--deprecated-kubelet-completely-insecure"),
    ("--kubelet-certificate-authority-text", "--deprecated-kubelet-completely-insecure"),
    ("--kubelet-certificate-authority", "--deprecated-kubelet-completely-insecure"),
)


def _check_kubelet(k: KubeletOptions) -> None:
    given = {
        "--kubelet-certificate-authority": k.certificate_authority is not None,
        "--kubelet-certificate-authority-text": bool(k.certificate_authority_text),
        "--kubelet-insecure-tls": k.insecure_tls,
        "--kubelet-client-key": k.client_key is not None,
        "--kubelet-client-certificate": k.client_certificate is not None,
        "--kubelet-token-file": k.token_file is not None,
        "--deprecated-kubelet-completely-insecure": k.completely_insecure,
    }
    for first, second in EXCLUSIVE_KUBELET_FLAGS:
        if given[first] and given[second]:
            raise ConfigError(f"cannot use both {first} and {second}")
    if given["--kubelet-client-certificate"] != given["--kubelet-client-key"]:
        raise ConfigError(
            "--kubelet-client-certificate and --kubelet-client-key must be given together"
        )


@dataclass(frozen=True)
class CompletedConfig:
    """A ServerConfig that was checked, with its text parsed."""

    config: ServerConfig
    node_selector: Callable[[Mapping[str, str]], bool]
    tiers: tuple[Tier, ...]
    charts_url: str | None
    audit_policy: Policy | None = None
    """None: no audit events are recorded."""
