"""The `kubepulse` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from kubepulse import __version__
from kubepulse.cli import (
    agent,
    csr_approver,
    dashboard,
    doctor,
    manifests,
    server,
    top,
    up,
    usage,
)
from kubepulse.cli.errors import CommandError


class Parser(argparse.ArgumentParser):
    """Usage errors in one line on stderr and exit 1, in the words kubectl uses."""

    argv: Sequence[str] = ()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # Kept so that an error can name the flag as it was typed (-l or --selector).
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self.argv, namespace)

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"error: {usage.pflag_words(message, self.argv)}\n")


Runner = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="kubepulse",
        description="Resource monitoring for Kubernetes: agent, metrics server, top, dashboard.",
    )
    parser.add_argument("--version", action="version", version=f"kubepulse {__version__}")
    parser.add_argument("-v", "--v", dest="verbosity", type=int, default=0, help="log verbosity")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    agent.add_parser(sub)
    csr_approver.add_parser(sub)
    dashboard.add_parser(sub)
    doctor.add_parser(sub)
    manifests.add_parser(sub)
    server.add_parser(sub)
    top.add_parser(sub)
    up.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbosity >= 4 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    run: Runner = args.run
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except CommandError as err:
        print(err.line(), file=sys.stderr)
        return 1
    except Exception as err:  # the last line of defence: one line, never a traceback
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
