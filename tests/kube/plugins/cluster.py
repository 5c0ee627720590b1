"""kubepulse's API (as `kubepulse up` serves it) on loopback with tokens a test changes
and client certificates from its CA, and kubeconfigs whose user is an exec plugin."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubepulse import pki, tlsauth
from kubepulse.api.app import ServerParts, make_app
from kubepulse.api.authn import Authenticator, User
from tests.api.conftest import FakeScraping, filled_store, inventory, self_metrics
from tests.support import KUBECTL, KUBEPULSE
from tests.top.conftest import ServerThread, tls

PLUGIN = Path(__file__).with_name("fake_plugin.py")
ADMIN = User("admin", "1", ("system:masters", "system:authenticated"))
V1 = "client.authentication.k8s.io/v1"


@dataclass
class PluginCluster:
    url: str
    ca: pki.KeyPair
    tokens: dict[str, User]
    """Read by the server at each request: add and remove tokens to revoke them."""
    dir: Path
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.dir / "plugin-runs.jsonl"

    def runs(self) -> list[dict[str, Any]]:
        """What each run of the fake plugin was given, in order."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def plugin(self, *args: str, **exec_fields: Any) -> dict[str, Any]:
        """An exec section running fake_plugin.py with args (and --log)."""
        section: dict[str, Any] = {
            "apiVersion": V1,
            "command": sys.executable,
            "args": [str(PLUGIN), "--log", str(self.log), *args],
            "interactiveMode": "Never",
        }
        section.update(exec_fields)
        return section

    def tokens_file(self, *tokens: str) -> Path:
        path = self.dir / "tokens"
        path.write_text("\n".join(tokens) + "\n")
        return path

    def kubeconfig(
        self,
        user: Mapping[str, Any],
        name: str = "kubeconfig",
        cluster: Mapping[str, Any] | None = None,
    ) -> Path:
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "plugin-cluster",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": _b64(self.ca.cert_pem()),
                        **(cluster or {}),
                    },
                }
            ],
            "users": [{"name": "plugin-user", "user": dict(user)}],
            "contexts": [
                {"name": "main", "context": {"cluster": "plugin-cluster", "user": "plugin-user"}}
            ],
            "current-context": "main",
        }
        path = self.dir / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(0o600)
        return path


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def plugin_cluster(tmp: Path) -> Iterator[PluginCluster]:
    ca, ctx = tls(tmp)
    tokens = {"placeholder-never-given": ADMIN}
    authenticator = Authenticator(tokens, [ca.cert])
    tlsauth.request_client_certificates(ctx, [ca.cert])
    store = filled_store()
    parts = ServerParts(
        store=store,
        inventory=inventory(),
        scraping=FakeScraping(),
        authenticator=authenticator,
        registry=self_metrics(store).registry,
        serve_core_api=True,
    )
    with ServerThread(make_app(parts), ctx) as server:
        yield PluginCluster(f"https://127.0.0.1:{server.port}", ca, tokens, tmp)


def run(argv: list[str], stdin: int = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    """argv's stdout, stderr and exit; stdin is /dev/null unless a terminal is given."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=stdin)


def kubepulse(
    config: Path, *args: str, stdin: int = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    return run([*KUBEPULSE, *args[:1], "--kubeconfig", str(config), *args[1:]], stdin)


def kubectl(
    config: Path, *args: str, stdin: int = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    cache = config.parent / "kubectl-cache"
    return run([KUBECTL, "--kubeconfig", str(config), "--cache-dir", str(cache), *args], stdin)
