"""`kubepulse up`: everything for this one host, with its state in one directory."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path
from typing import Any

from kubepulse import pki
from kubepulse.cli import agent
from kubepulse.cli.errors import CommandError


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kubepulse"


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("up", help="run kubepulse for this host")
    p.add_argument("--state-dir", type=Path, default=default_state_dir())
    p.add_argument("--agent-port", type=int, default=10250, help="the agent's HTTPS port")
    p.add_argument("--housekeeping-interval", type=float, default=10.0, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def ensure_token(path: Path) -> str:
    """A random bearer token kept owner-only in the state dir, reused by later runs."""
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


async def run(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pki_dir = state_dir / "pki"
        pki_dir.mkdir(exist_ok=True, mode=0o700)
        pki.ensure_ca(pki_dir, "kubepulse-ca")
        ensure_token(state_dir / "agent-token")
    except OSError as err:
        raise CommandError(f"cannot prepare state dir {state_dir}: {err.strerror}") from err
    agent_args = agent.build_parser_defaults(
        address="127.0.0.1",
        port=args.agent_port,
        cert_dir=pki_dir,
        token_file=state_dir / "agent-token",
        housekeeping_interval=args.housekeeping_interval,
    )
    print(f"kubepulse up: state in {state_dir}", flush=True)
    print(
        f'  try: curl --cacert {pki_dir}/ca.crt -H "Authorization: Bearer $(cat '
        f'{state_dir}/agent-token)" https://127.0.0.1:{args.agent_port}/metrics/resource',
        flush=True,
    )
    return await agent.run(agent_args)
