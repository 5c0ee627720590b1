"""Exec credential plugins, run as client-go runs them (plugin/pkg/client/auth/exec).

A kubeconfig user with `exec:` names a command (aws eks get-token, gke-gcloud-auth-
plugin, kubelogin ...) that prints an ExecCredential (client.authentication.k8s.io v1 or
v1beta1) with a bearer token or a client certificate and key. The command is run with
the kubeconfig's args and env added to ours, and KUBERNETES_EXEC_INFO describing the
call (and the cluster, with provideClusterInfo). Its answer is kept in memory only, until
its expirationTimestamp or until the API server answers 401 with it; then it is run
again. One plugin object serves every client of the process with the same config and
cluster (client-go's globalCache), so concurrent requests run the command once.

Standard input, by interactiveMode (client-go's isInteractive): Never: not given;
IfAvailable: given when it is a terminal; Always: refused unless it is a terminal. When
the plugin is interactive its stderr is the terminal's (it may prompt); otherwise its
stderr is kept, shown after a success as kubectl shows it, and folded into the one-line
error after a failure.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from kubepulse.timefmt import parse_rfc3339

GROUP = "client.authentication.k8s.io"
API_VERSIONS = (f"{GROUP}/v1", f"{GROUP}/v1beta1")
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")
INFO_ENV = "KUBERNETES_EXEC_INFO"
STDERR_SHOWN = 400
"""Characters of a failed plugin's stderr put into the error line (its end)."""


class ExecConfigError(ValueError):
    """A user's exec section that client-go's validation refuses, in its words."""


class CredentialPluginError(Exception):
    """The plugin could not give credentials: "getting credentials: exec: ..." in one line."""


@dataclass(frozen=True)
class ExecConfig:
    """A kubeconfig user's `exec:` (clientcmd/api ExecConfig)."""

    command: str
    api_version: str
    interactive_mode: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    install_hint: str = ""
    provide_cluster_info: bool = False
    cluster_config: str | None = None
    """The cluster's `client.authentication.k8s.io/exec` extension, as JSON."""


@dataclass(frozen=True)
class ClusterInfo:
    """What the plugin is told of the cluster with provideClusterInfo (v1 Cluster)."""

    server: str
    tls_server_name: str | None = None
    insecure: bool = False
    ca_pem: bytes | None = None
    proxy_url: str | None = None
    config: str | None = None


@dataclass(frozen=True)
class PluginCredential:
    """A plugin's answer. repr never shows the secrets."""

    token: str | None = dataclasses.field(default=None, repr=False)
    client_cert_pem: bytes | None = dataclasses.field(default=None, repr=False)
    client_key_pem: bytes | None = dataclasses.field(default=None, repr=False)
    expires_at: float | None = None
    """Epoch seconds of expirationTimestamp; None: valid until a 401."""


def exec_config(
    user_name: str, entry: Mapping[str, Any], base: Path, extension: Any = None
) -> ExecConfig:
    """The user's exec section, checked as clientcmd's validateAuthInfo checks it (its
    messages), with v1beta1's default interactiveMode (IfAvailable, SetDefaults_ExecConfig)
    and a command holding a path separator made relative to the kubeconfig's directory
    (ResolvePaths), as a bare name is looked up on PATH."""
    command = str(entry.get("command") or "")
    api_version = str(entry.get("apiVersion") or "")
    mode = str(entry.get("interactiveMode") or "")
    if not mode and api_version in (f"{GROUP}/v1beta1", f"{GROUP}/v1alpha1"):
        mode = "IfAvailable"
    usable = f"for {user_name} to use exec authentication plugin"
    problems = []
    if not command:
        problems.append(f"command must be specified {usable}")
    if not api_version:
        problems.append(f"apiVersion must be specified {usable}")
    env = []
    for item in entry.get("env") or []:
        name = str(item.get("name") or "") if isinstance(item, Mapping) else ""
        if not name:
            problems.append(f"env variable name must be specified {usable}")
            continue
        env.append((name, str(item.get("value") or "")))
    if not mode:
        problems.append(f"interactiveMode must be specified {usable}")
    elif mode not in INTERACTIVE_MODES:
        problems.append(f'invalid interactiveMode for {user_name}: "{mode}"')
    if problems:
        raise ExecConfigError(", ".join(problems))
    if api_version not in API_VERSIONS:
        raise ExecConfigError(f'exec plugin: invalid apiVersion "{api_version}"')
    if os.sep in command and not Path(command).is_absolute():
        command = str(base / command)
    return ExecConfig(
        command=os.path.normpath(command) if os.sep in command else command,
        api_version=api_version,
        interactive_mode=mode,
        args=tuple(str(a) for a in entry.get("args") or []),
        env=tuple(env),
        install_hint=_printable(str(entry.get("installHint") or "")),
        provide_cluster_info=bool(entry.get("provideClusterInfo")),
        cluster_config=None if extension is None else json.dumps(extension, sort_keys=True),
    )


def _printable(text: str) -> str:
    """installHint without control characters other than whitespace, as client-go's
    cleanANSIEscapeCodes makes it (an escape sequence must not reach the terminal)."""
    return "".join(c if c.isprintable() or c in "\t\n\r\v\f" else f"U+{ord(c):04X}" for c in text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ExecPlugin:
    """Runs one plugin and keeps its answer; `credential()` is what a request uses."""

    def __init__(self, config: ExecConfig, cluster: ClusterInfo) -> None:
        self.config = config
        self.cluster = cluster
        self._cached: PluginCredential | None = None
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self.runs = 0
        """How many times the command was run (for the tests and the debug log)."""

    def _lock(self) -> asyncio.Lock:
        # One lock per event loop: a process may run several loops one after the other.
        return self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())

    async def credential(self) -> PluginCredential:
        """The kept answer while it is valid (client-go: until now is after the
        expirationTimestamp), else the plugin's new one."""
        async with self._lock():
            cached = self._cached
            if cached is not None and (
                cached.expires_at is None or time.time() < cached.expires_at
            ):
                return cached
            self._cached = await self._run()
            return self._cached

    async def unauthorized(self, used: PluginCredential) -> PluginCredential:
        """The API server answered 401 to `used`: run the plugin again, unless another
        request already did (client-go's maybeRefreshCreds); the credential to use now."""
        async with self._lock():
            if self._cached is used or self._cached is None:
                self._cached = await self._run()
            return self._cached

    def _interactive(self) -> bool:
        mode = self.config.interactive_mode
        terminal = _stdin_is_terminal()
        if mode == "Always" and not terminal:
            raise CredentialPluginError(
                "getting credentials: exec plugin cannot support interactive mode: "
                "standard input is not a terminal"
            )
        return mode != "Never" and terminal

    def _info(self, interactive: bool) -> str:
        spec: dict[str, Any] = {"interactive": interactive}
        if self.config.provide_cluster_info:
            c = self.cluster
            cluster: dict[str, Any] = {"server": c.server}
            if c.tls_server_name:
                cluster["tls-server-name"] = c.tls_server_name
            if c.insecure:
                cluster["insecure-skip-tls-verify"] = True
            if c.ca_pem:
                cluster["certificate-authority-data"] = base64.b64encode(c.ca_pem).decode()
            if c.proxy_url:
                cluster["proxy-url"] = c.proxy_url
            # A RawExtension: null without the cluster's exec extension, as client-go sends.
            config = self.config.cluster_config
            cluster["config"] = None if config is None else json.loads(config)
            spec["cluster"] = cluster
        return json.dumps(
            {"kind": "ExecCredential", "apiVersion": self.config.api_version, "spec": spec},
            separators=(",", ":"),
        )

    async def _run(self) -> PluginCredential:
        interactive = self._interactive()
        env = {**os.environ, **dict(self.config.env), INFO_ENV: self._info(interactive)}
        command = self.config.command
        self.runs += 1
        try:
            process = await asyncio.create_subprocess_exec(
                command,
                *self.config.args,
                env=env,
                stdin=None if interactive else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=None if interactive else asyncio.subprocess.PIPE,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            # client-go: exec.Error, "executable not found", then the installHint.
            hint = f"; {_one_line(self.config.install_hint)}" if self.config.install_hint else ""
            raise CredentialPluginError(
                f"getting credentials: exec: executable {command} not found{hint}"
            ) from None
        except OSError as err:
            raise CredentialPluginError(f"getting credentials: exec: {err.strerror}") from err
        stdout, stderr = await process.communicate()
        said = (stderr or b"").decode(errors="replace")
        code = process.returncode or 0
        if code != 0:
            # Go's ExitCode() is -1 for a plugin killed by a signal.
            code = code if code > 0 else -1
            tail = _one_line(said)[-STDERR_SHOWN:]
            raise CredentialPluginError(
                f"getting credentials: exec: executable {command} failed with exit code {code}"
                + (f": {tail}" if tail else "")
            )
        if said:
            sys.stderr.write(said)  # kubectl lets a plugin's stderr through
            sys.stderr.flush()
        return self._answer(stdout)

    def _answer(self, stdout: bytes) -> PluginCredential:
        """The ExecCredential's status, checked as refreshCredsLocked checks it."""
        try:
            doc = json.loads(stdout)
        except ValueError as err:
            raise CredentialPluginError(
                f"getting credentials: decoding stdout: {err.__class__.__name__}: {err}"
            ) from None
        if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
            raise CredentialPluginError(
                "getting credentials: decoding stdout: the plugin did not print an ExecCredential"
            )
        if doc.get("apiVersion") != self.config.api_version:
            raise CredentialPluginError(
                f"getting credentials: exec plugin is configured to use API version "
                f"{self.config.api_version}, plugin returned version {doc.get('apiVersion')}"
            )
        status = doc.get("status")
        if not isinstance(status, dict):
            raise CredentialPluginError(
                "getting credentials: exec plugin didn't return a status field"
            )
        token = str(status.get("token") or "")
        cert = str(status.get("clientCertificateData") or "")
        key = str(status.get("clientKeyData") or "")
        if not (token or cert or key):
            raise CredentialPluginError(
                "getting credentials: exec plugin didn't return a token or cert/key pair"
            )
        if bool(cert) != bool(key):
            raise CredentialPluginError(
                "getting credentials: exec plugin returned only certificate or key, not both"
            )
        if cert:
            try:
                x509.load_pem_x509_certificate(cert.encode())
                load_pem_private_key(key.encode(), None)
            except ValueError as err:
                raise CredentialPluginError(
                    f"getting credentials: failed parsing client key/certificate: {err}"
                ) from None
        expires = status.get("expirationTimestamp")
        try:
            expires_at = parse_rfc3339(str(expires)) if expires else None
        except ValueError:
            raise CredentialPluginError(
                f"getting credentials: decoding stdout: bad expirationTimestamp {expires!r}"
            ) from None
        return PluginCredential(
            token=token or None,
            client_cert_pem=cert.encode() if cert else None,
            client_key_pem=key.encode() if key else None,
            expires_at=expires_at,
        )


def _stdin_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, ValueError, OSError):
        return False


_PLUGINS: dict[tuple[ExecConfig, ClusterInfo], ExecPlugin] = {}


def plugin(config: ExecConfig, cluster: ClusterInfo) -> ExecPlugin:
    """The process's one ExecPlugin for this config and cluster (client-go's globalCache)."""
    return _PLUGINS.setdefault((config, cluster), ExecPlugin(config, cluster))
