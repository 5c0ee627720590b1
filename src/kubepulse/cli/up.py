"""`kubepulse up`: everything for this one host, with its state in one directory.

It runs the agent and the metrics server in one process: the server scrapes the local
agent over TLS verified against the state dir's CA, serves metrics.k8s.io and a
read-only core API built from the same reading, and writes a kubeconfig that the real
kubectl uses unchanged.
"""

from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path

import yaml

from kubepulse.agent.config import AgentConfig
from kubepulse.agent.run import start_agent
from kubepulse.cli import flags
from kubepulse.kube.local import LocalInventory
from kubepulse.server import serving
from kubepulse.server.assemble import start_server
from kubepulse.server.auth import authenticator
from kubepulse.server.config import (
    AuthOptions,
    CompletedConfig,
    HistoryOptions,
    KubeletOptions,
    ServerConfig,
    ServingOptions,
)
from kubepulse.statedir import StateDir, write_private


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kubepulse"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", type=Path, default=default_state_dir())
    p.add_argument("--address", default="127.0.0.1", help="where the API is served")
    p.add_argument("--port", type=int, default=8443, help="HTTPS port of the API (0: any)")
    p.add_argument("--agent-port", type=int, default=10250, help="HTTPS port of the agent (0: any)")
    p.add_argument("--metric-resolution", type=flags.duration, default=15.0)
    p.add_argument(
        "--housekeeping-interval",
        type=flags.duration,
        default=1.0,
        help="how often the agent reads cgroups (default 1s, so metrics come within 2 s)",
    )
    p.add_argument(
        "--prometheus-url",
        help="the dashboard's charts read history from this Prometheus (e.g. "
        "http://127.0.0.1:9090) scraping /metrics/usage; STATE_DIR/history.db is still kept",
    )
    p.add_argument(
        "--agent-bootstrap",
        action="store_true",
        help="the agent asks for its serving certificate with a CSR that the state dir's "
        "CA signs, and renews it, instead of being given one",
    )
    p.set_defaults(run=run)


def kubeconfig(server_url: str, ca_pem: bytes, token: str) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubepulse",
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": "kubepulse-admin", "user": {"token": token}}],
        "contexts": [
            {"name": "kubepulse", "context": {"cluster": "kubepulse", "user": "kubepulse-admin"}}
        ],
        "current-context": "kubepulse",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def server_config(args: argparse.Namespace, state_dir: Path) -> ServerConfig:
    """The metrics server of this host: it scrapes the embedded agent, verified against
    the state dir's CA, serves the core API and the dashboard, and keeps history."""
    pki_dir = state_dir / "pki"
    return ServerConfig(
        metric_resolution=args.metric_resolution,
        kubelet=KubeletOptions(
            request_timeout=min(10.0, args.metric_resolution * 0.9),
            certificate_authority=pki_dir / "ca.crt",
            use_node_status_port=True,
        ),
        serving=ServingOptions(
            bind_address=args.address,
            secure_port=args.port,
            tls_cert_file=pki_dir / "apiserver.crt",
            tls_private_key_file=pki_dir / "apiserver.key",
        ),
        auth=AuthOptions(token_auth_file=state_dir / "tokens.csv"),
        # Every scrape kept, so restarts keep the hours and days behind the dashboard.
        # The agent's /metrics/cadvisor is a few lines: OOM kills and throttling are read
        # every cycle, for `kubepulse recommend` (scrape/pressure.py).
        history=HistoryOptions(
            file=state_dir / "history.db",
            prometheus_url=args.prometheus_url,
            pressure_interval=args.metric_resolution,
        ),
        dashboard=True,
        dashboard_token_hint=(
            "kubepulse up's token is in its kubeconfig: kubectl config view --raw"
            f" --kubeconfig {state_dir / 'kubeconfig'} -o jsonpath='{{.users[0].user.token}}'"
        ),
        serve_core_api=True,
    )


async def run(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir)
    config = server_config(args, state.path)
    completed = config.complete()  # a bad URL or flag stops before anything starts
    state.lock()
    try:
        return await serve(args, state, config, completed)
    finally:
        state.unlock()


async def serve(
    args: argparse.Namespace, state: StateDir, config: ServerConfig, completed: CompletedConfig
) -> int:
    state_dir, pki_dir = state.path, state.pki
    state.prepare()
    ca = state.ca()
    state.serving(ca, args.address)
    agent_token = state.secret("agent-token")
    user_token = state.admin_token()

    agent_config = AgentConfig(
        address="127.0.0.1",
        port=args.agent_port,
        cert_dir=pki_dir,
        token_file=state_dir / "agent-token",
        housekeeping_interval=args.housekeeping_interval,
        bootstrap_ca_dir=pki_dir if args.agent_bootstrap else None,
    )
    running_agent = await start_agent(agent_config)
    try:
        inventory = LocalInventory(
            lambda: running_agent.state.latest, "127.0.0.1", running_agent.port
        )
        running_agent.state.listeners.append(inventory.publish)
        running = await start_server(
            completed, inventory, agent_token, authenticator(config.auth), feed=inventory.feed
        )
    except BaseException:
        await running_agent.stop()
        raise
    try:
        url = serving.url(args.address, running.port)
        config_path = state_dir / "kubeconfig"
        write_private(config_path, kubeconfig(url, ca.cert_pem(), user_token))

        lines = [
            f"kubepulse is up: metrics API at {url}",
            f"  kubeconfig: {config_path}",
            f"  dashboard: {url}/dashboard/ (sign in with the kubeconfig's token)",
            f"  try: kubectl --kubeconfig {config_path} top nodes",
            f"       kubectl --kubeconfig {config_path} top pods -A",
            "  stop with Ctrl-C",
        ]
        # Printed once the signal handlers are in: a script that waits for this line may
        # send SIGTERM at once, and must get a clean stop.
        await serving.until_signalled(lambda: print("\n".join(lines), flush=True))
    finally:
        await running.stop()
        await running_agent.stop()
    return 0
