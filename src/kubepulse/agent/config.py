"""Everything `kubepulse agent` can be told, typed: the kubelet's flag names where the
kubelet has one. The command line fills it; `kubepulse up` builds its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kubepulse.agent.bootstrap import WAIT_TIMEOUT
from kubepulse.errors import Failure
from kubepulse.model import Resources
from kubepulse.server.connections import Limits


class AgentError(Failure):
    """An agent that cannot start, in one line."""


@dataclass(frozen=True)
class AgentConfig:
    address: str = "0.0.0.0"
    port: int = 10250
    hostname_override: str | None = None
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    cert_dir: Path = Path("/var/lib/kubepulse/pki")
    """Where a CA and serving certificate are made when no files are given."""
    client_ca_file: Path | None = None
    token_file: Path | None = None
    authentication_skip: bool = False
    housekeeping_interval: float = 10.0
    """How often cgroups are read (cAdvisor's default in the kubelet)."""
    system_reserved: Resources = field(default_factory=Resources)
    bootstrap: bool = False
    kubeconfig: str | None = None
    bootstrap_ca_dir: Path | None = None
    bootstrap_timeout: float = WAIT_TIMEOUT
    bootstrap_cert_lifetime: float | None = None
    node_ip: str | None = None
    max_connections: int = Limits.max_connections
    tls_min_version: str = ""
    """The kubelet's --tls-min-version, Go's name (VersionTLS12); empty is TLS 1.2."""
    tls_cipher_suites: tuple[str, ...] = ()
    """The kubelet's --tls-cipher-suites, Go's names; empty keeps OpenSSL's defaults."""
    proc_root: Path = Path("/proc")
    runtime_root: Path = Path("/")
