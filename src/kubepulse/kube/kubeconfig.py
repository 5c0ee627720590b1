"""Reading kubeconfig files the way kubectl does (client-go tools/clientcmd).

Files come from --kubeconfig, else from $KUBECONFIG (a list; for every named entry
the first file that has it wins, as does the first current-context), else from
~/.kube/config. --context picks a context; the namespace is --namespace, else the
context's, else "default".
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(Exception):
    """A kubeconfig that cannot be used, said in one line."""


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_pem: bytes | None = None
    insecure: bool = False
    token: str | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    username: str | None = None
    password: str | None = None
    namespace: str = "default"
    tls_server_name: str | None = None


def _paths(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _merge(paths: list[Path]) -> dict[str, Any]:
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
    if not found:
        names = ", ".join(str(p) for p in paths)
        raise KubeconfigError(
            f"no kubeconfig found (looked for {names}); set KUBECONFIG or use --kubeconfig"
        )
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


def load(
    kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> Credentials:
    merged = _merge(_paths(kubeconfig))
    name = context or merged["current-context"]
    if not name:
        raise KubeconfigError("no current context is set in the kubeconfig; use --context")
    ctx = merged["contexts"].get(name)
    if ctx is None:
        raise KubeconfigError(f'context "{name}" does not exist')
    cluster = merged["clusters"].get(ctx.get("cluster"))
    if cluster is None or not cluster.get("server"):
        raise KubeconfigError(f'cluster "{ctx.get("cluster")}" has no server')
    user = merged["users"].get(ctx.get("user"), {})
    if user.get("exec") or user.get("auth-provider"):
        raise KubeconfigError(
            f'user "{ctx.get("user")}" uses a credential plugin, which kubepulse does not run; '
            "use a token or client certificate"
        )
    base: Path = merged["base"]
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token_path = Path(user["tokenFile"])
        try:
            token = (
                (token_path if token_path.is_absolute() else base / token_path).read_text().strip()
            )
        except OSError as err:
            raise KubeconfigError(f"cannot read tokenFile: {err.strerror}") from err
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=_data(cluster, "certificate-authority", base),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=token,
        client_cert_pem=_data(user, "client-certificate", base),
        client_key_pem=_data(user, "client-key", base),
        username=user.get("username"),
        password=user.get("password"),
        namespace=namespace or ctx.get("namespace") or "default",
        tls_server_name=cluster.get("tls-server-name"),
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
    )
