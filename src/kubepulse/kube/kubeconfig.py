"""Reading kubeconfig files the way kubectl does (client-go tools/clientcmd).

Files come from --kubeconfig, else from $KUBECONFIG (a list; for every named entry
the first file that has it wins, as does the first current-context), else from
~/.kube/config. --context picks a context; the namespace is --namespace, else the
context's, else "default". kubectl's other flags for the kubeconfig (Overrides:
--cluster, --user, --server, --token, --as ...) win over the files as clientcmd's
ConfigOverrides do.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kubepulse.kube.exec_plugin import ExecConfig, ExecConfigError, exec_config
from kubepulse.timefmt import parse_go_duration

log = logging.getLogger(__name__)

PROXY_SCHEMES = ("http", "https", "socks5")
EXEC_EXTENSION = "client.authentication.k8s.io/exec"

# kubectl 1.26+ (client-go's removed gcp and azure auth providers) says this for them.
REMOVED_AUTH_PROVIDERS = {
    "gcp": 'The gcp auth plugin has been removed. Please use the "gke-gcloud-auth-plugin" '
    "kubectl/client-go credential plugin instead. See https://cloud.google.com/blog/products/"
    "containers-kubernetes/kubectl-auth-changes-in-gke for further details",
    "azure": "The azure auth plugin has been removed. Please use the https://github.com/Azure/"
    "kubelogin kubectl/client-go credential plugin instead. See https://kubernetes.io/docs/"
    "reference/access-authn-authz/authentication/#client-go-credential-plugins for further "
    "details",
}


class KubeconfigError(Exception):
    """A kubeconfig that cannot be used, said in one line."""


@dataclass(frozen=True)
class Impersonation:
    """--as, --as-group, --as-uid (or the user's as, as-groups, as-uid, as-user-extra):
    sent as Impersonate-* headers (client-go's transport.NewImpersonatingRoundTripper)."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Overrides:
    """kubectl's flags for the kubeconfig (clientcmd.ConfigOverrides); each wins when given."""

    cluster: str | None = None
    user: str | None = None
    server: str | None = None
    token: str | None = None
    certificate_authority: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    as_user: str | None = None
    as_groups: tuple[str, ...] = ()
    as_uid: str | None = None
    request_timeout: float | None = None


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_pem: bytes | None = None
    insecure: bool = False
    # The secrets are left out of repr, so that no log of the object shows them.
    token: str | None = dataclasses.field(default=None, repr=False)
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = dataclasses.field(default=None, repr=False)
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    namespace: str = "default"
    tls_server_name: str | None = None
    exec_plugin: ExecConfig | None = None
    """Run when the user has no token, certificate or password (exec_plugin.py)."""
    impersonate: Impersonation | None = None
    proxy_url: str | None = None
    request_timeout: float | None = None
    """--request-timeout in seconds; 0: none; None: the client's own."""


def parse_timeout(text: str) -> float:
    """--request-timeout as clientcmd's ParseTimeout reads it: whole seconds, or a Go
    duration; 0 is no limit."""
    if text.isdigit():
        return float(text)
    try:
        return parse_go_duration(text)
    except ValueError:
        raise KubeconfigError(
            "Invalid timeout value. Timeout must be a single integer in seconds, or an integer "
            "followed by a corresponding time unit (e.g. 1s | 2m | 3h)"
        ) from None


def _paths(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _merge(paths: list[Path], required: bool = True) -> dict[str, Any]:
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    found = False
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            continue
        except OSError as err:
            raise KubeconfigError(f"cannot read kubeconfig {path}: {err.strerror}") from err
        except yaml.YAMLError as err:
            raise KubeconfigError(f"kubeconfig {path} is not valid YAML") from err
        if not isinstance(doc, Mapping):
            raise KubeconfigError(f"kubeconfig {path} is not a Config object")
        found = True
        for key, kind in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in doc.get(key) or []:
                if isinstance(entry, Mapping) and entry.get("name") is not None:
                    merged[key].setdefault(str(entry["name"]), dict(entry.get(kind) or {}))
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = str(doc["current-context"])
        merged.setdefault("base", path.parent)
    if not found and required:
        names = ", ".join(str(p) for p in paths)
        raise KubeconfigError(
            f"no kubeconfig found (looked for {names}); set KUBECONFIG or use --kubeconfig"
        )
    merged.setdefault("base", Path.cwd())
    return merged


def _data(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """Inline `<key>-data` (base64) or a file named by `<key>`, relative to the kubeconfig."""
    inline = entry.get(f"{key}-data")
    if inline:
        try:
            return base64.b64decode(inline)
        except ValueError as err:
            raise KubeconfigError(f"{key}-data is not valid base64") from err
    path = entry.get(key)
    if path:
        full = Path(path) if Path(path).is_absolute() else base / path
        try:
            return full.read_bytes()
        except OSError as err:
            raise KubeconfigError(f"cannot read {key} {full}: {err.strerror}") from err
    return None


def _context(merged: dict[str, Any], name: str, overrides: Overrides) -> Mapping[str, Any]:
    """The context (clientcmd's getContext); none is needed when --server is given."""
    if not name:
        if overrides.server:
            return {}
        raise KubeconfigError("no current context is set in the kubeconfig; use --context")
    ctx: Mapping[str, Any] | None = merged["contexts"].get(name)
    if ctx is None:
        raise KubeconfigError(f'context "{name}" does not exist')
    return ctx


def _cluster(merged: dict[str, Any], name: str, overrides: Overrides) -> dict[str, Any]:
    """The cluster with --server, --certificate-authority and --insecure-skip-tls-verify
    over it (getCluster: either of the last two replaces the other and the CA data)."""
    cluster = merged["clusters"].get(name)
    if cluster is None and overrides.cluster:
        raise KubeconfigError(f'cluster "{name}" does not exist')
    cluster = dict(cluster or {})
    if overrides.server:
        cluster["server"] = overrides.server
        # A --server clears the file's tls-server-name unless it is given too.
        cluster["tls-server-name"] = overrides.tls_server_name
    elif overrides.tls_server_name:
        cluster["tls-server-name"] = overrides.tls_server_name
    if overrides.insecure_skip_tls_verify or overrides.certificate_authority:
        cluster["insecure-skip-tls-verify"] = overrides.insecure_skip_tls_verify
        cluster["certificate-authority"] = overrides.certificate_authority
        cluster.pop("certificate-authority-data", None)
    if not cluster.get("server"):
        raise KubeconfigError(f'cluster "{name}" has no server')
    return cluster


def _proxy_url(cluster: Mapping[str, Any], name: str) -> str | None:
    """proxy-url, checked as clientcmd's parseProxyURL checks it."""
    proxy = cluster.get("proxy-url")
    if not proxy:
        return None
    scheme = urlsplit(str(proxy)).scheme
    if scheme not in PROXY_SCHEMES:
        raise KubeconfigError(
            f'invalid \'proxy-url\' "{proxy}" for cluster "{name}": unsupported scheme '
            f'"{scheme}", must be http, https, or socks5'
        )
    if scheme == "socks5" and importlib.util.find_spec("aiohttp_socks") is None:
        raise KubeconfigError(
            f'\'proxy-url\' "{proxy}" for cluster "{name}": a socks5 proxy needs the '
            "aiohttp-socks package (pip install 'kubepulse[socks]')"
        )
    return str(proxy)


def _refuse_auth_provider(user: Mapping[str, Any]) -> None:
    provider = user.get("auth-provider")
    if not provider:
        return
    name = str(provider.get("name") or "") if isinstance(provider, Mapping) else ""
    if name in REMOVED_AUTH_PROVIDERS:
        raise KubeconfigError(REMOVED_AUTH_PROVIDERS[name])
    if name == "oidc":
        raise KubeconfigError(
            "the oidc auth-provider is not run by kubepulse; use an exec credential plugin "
            "such as kubelogin (kubectl oidc-login get-token) instead"
        )
    raise KubeconfigError(f'no Auth Provider found for name "{name}"')


def _warn_insecure(cluster_name: str, ca_pem: bytes | None, o: Overrides) -> None:
    """An unverified API server is said out loud; with a CA too it is refused, in
    client-go's words (transport.TLSConfigFor: a CA and Insecure together)."""
    if ca_pem:
        raise KubeconfigError(
            "specifying a root certificates file with the insecure flag is not allowed"
        )
    said = (
        "--insecure-skip-tls-verify"
        if o.insecure_skip_tls_verify
        else f'cluster "{cluster_name}" has insecure-skip-tls-verify'
    )
    log.warning(
        "%s: the API server's certificate is NOT verified; anyone on the way can read and "
        "change what is sent, credentials included",
        said,
    )


def _impersonation(user: Mapping[str, Any], user_name: str, o: Overrides) -> Impersonation | None:
    name = o.as_user or user.get("as") or ""
    groups = o.as_groups or tuple(str(g) for g in user.get("as-groups") or ())
    uid = o.as_uid or user.get("as-uid") or ""
    extra = tuple(
        (str(k), tuple(str(v) for v in values or ()))
        for k, values in sorted((user.get("as-user-extra") or {}).items())
    )
    if not name:
        if groups or uid or extra:
            raise KubeconfigError(
                f"requesting uid, groups or user-extra for {user_name} without impersonating a user"
            )
        return None
    return Impersonation(str(name), groups, str(uid), extra)


def _token(user: Mapping[str, Any], base: Path, overrides: Overrides) -> str | None:
    token = overrides.token or user.get("token")
    if not token and user.get("tokenFile"):
        token_path = Path(user["tokenFile"])
        try:
            token = (
                (token_path if token_path.is_absolute() else base / token_path).read_text().strip()
            )
        except OSError as err:
            raise KubeconfigError(f"cannot read tokenFile: {err.strerror}") from err
    return str(token) if token else None


def load(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    overrides: Overrides | None = None,
) -> Credentials:
    o = overrides or Overrides()
    merged = _merge(_paths(kubeconfig), required=not o.server)
    ctx = _context(merged, context or merged["current-context"], o)
    cluster_name = str(o.cluster or ctx.get("cluster") or "")
    user_name = str(o.user or ctx.get("user") or "")
    cluster = _cluster(merged, cluster_name, o)
    user = merged["users"].get(user_name)
    if user is None and o.user:
        raise KubeconfigError(f'auth info "{user_name}" does not exist')
    user = user or {}
    _refuse_auth_provider(user)
    base: Path = merged["base"]
    plugin = None
    if user.get("exec"):
        extension = next(
            (
                e.get("extension")
                for e in cluster.get("extensions") or []
                if isinstance(e, Mapping) and e.get("name") == EXEC_EXTENSION
            ),
            None,
        )
        try:
            plugin = exec_config(user_name, user["exec"], base, extension)
        except ExecConfigError as err:
            raise KubeconfigError(str(err)) from err
    # --certificate-authority is a path on the command line: relative to the cwd.
    ca_pem = _data(
        cluster, "certificate-authority", Path.cwd() if o.certificate_authority else base
    )
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    if insecure:
        _warn_insecure(cluster_name, ca_pem, o)
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=ca_pem,
        insecure=insecure,
        token=_token(user, base, o),
        client_cert_pem=_data(user, "client-certificate", base),
        client_key_pem=_data(user, "client-key", base),
        username=user.get("username"),
        password=user.get("password"),
        namespace=namespace or ctx.get("namespace") or "default",
        tls_server_name=cluster.get("tls-server-name") or None,
        exec_plugin=plugin,
        impersonate=_impersonation(user, user_name, o),
        proxy_url=_proxy_url(cluster, cluster_name),
        request_timeout=o.request_timeout,
    )


def without_credentials(creds: Credentials) -> Credentials:
    """Where the API server is and how to verify it, with no identity of its own: what
    requests made on behalf of a signed-in user start from."""
    return dataclasses.replace(
        creds,
        token=None,
        client_cert_pem=None,
        client_key_pem=None,
        username=None,
        password=None,
        exec_plugin=None,
        impersonate=None,
    )
