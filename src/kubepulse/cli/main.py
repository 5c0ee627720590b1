"""The `kubepulse` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from kubepulse import __version__, logs
from kubepulse.cli import pflag
from kubepulse.errors import Failure


class Parser(argparse.ArgumentParser):
    """Usage errors in one line on stderr and exit 1, in the words kubectl uses."""

    argv: Sequence[str] = ()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # Kept so that an error can name the flag as it was typed (-l or --selector).
        self.argv = list(sys.argv[1:] if args is None else args)
        booleans = {
            flag: ", ".join(action.option_strings)
            for action in self._actions
            if action.nargs == 0 and action.dest not in ("help", "version")
            for flag in action.option_strings
        }
        try:
            argv = pflag.booleans_spelt_out(self.argv, booleans)
        except ValueError as err:
            self.error(str(err))
        parsed, rest = super().parse_known_args(argv, namespace)
        off = pflag.spelt_false(self.argv, booleans)
        for action in self._actions:
            if off.intersection(action.option_strings):
                setattr(parsed, action.dest, False)
        # pflag's Changed: the flags given (a boolean given as =false is not), by their
        # long name, for the flags that only warn when given.
        given = {token.split("=", 1)[0] for token in argv if token.startswith("-")}
        parsed.changed = frozenset(getattr(parsed, "changed", ())) | {
            action.option_strings[-1]
            for action in self._actions
            if given.intersection(action.option_strings)
        }
        return parsed, rest

    def format_help(self) -> str:
        # A command whose flags are in groups ("Logging flags") prints them as a
        # Kubernetes component does.
        if any((g.title or "").endswith(" flags") for g in self._action_groups):
            return pflag.flag_usages(self, self.description or "")
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"error: {pflag.pflag_words(message, self.argv)}\n")


Runner = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


# Each command's module is imported only when that command runs: together they import
# aiohttp, cryptography and the dashboard, which is most of a second before `top` or
# `--help` could answer.
COMMANDS = {
    "agent": "serve kubelet resource stats (/metrics/resource, /stats/summary)",
    "csr-approver": (
        "approve kubelet serving-certificate CSRs that pass kubelet-csr-approver's checks"
    ),
    "dashboard": "serve the dashboard for any cluster, polling its metrics API",
    "doctor": "check the metrics pipeline (API, metrics.k8s.io, kubelets) and say how to fix it",
    "manifests": "print the objects that install kubepulse as a cluster's metrics-server",
    "recommend": "recommend requests and limits from the usage history (KRR's or VPA's rules)",
    "server": "scrape kubelets or agents and serve metrics.k8s.io/v1beta1",
    "top": "show CPU and memory of nodes or pods, as kubectl top does",
    "up": "run kubepulse for this host",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or, with `only`, the flags of that one command (the
    others are listed by name and help, so that a misspelt command still gets the list)."""
    parser = Parser(
        prog="kubepulse",
        description="Resource monitoring for Kubernetes: agent, metrics server, top, dashboard.",
    )
    parser.add_argument("--version", action="version", version=f"kubepulse {__version__}")
    parser.add_argument("-v", "--v", dest="verbosity", type=int, default=0, help="log verbosity")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        kubernetes_style = name in ("server", "agent")
        command = sub.add_parser(
            name,
            help=help_text,
            description=help_text if kubernetes_style else None,
            # pflag takes no abbreviations; among a hundred flags one would soon mislead.
            allow_abbrev=not kubernetes_style,
        )
        if only in (None, name):
            module = importlib.import_module(f"kubepulse.cli.{name.replace('-', '_')}")
            module.add_arguments(command)
    return parser


def _command(argv: Sequence[str]) -> str:
    """The command the line names, or "" (then no command's module is needed)."""
    return next((arg for arg in argv if arg in COMMANDS), "")


def logging_options(args: argparse.Namespace) -> logs.LoggingOptions:
    """-v and, for the commands that take them, klog's other logging flags."""
    json_lines = getattr(args, "logging_format", "text") == "json"
    split = "log_json_split_stream" if json_lines else "log_text_split_stream"
    return logs.LoggingOptions(
        verbosity=args.verbosity,
        vmodule=getattr(args, "vmodule", ()),
        format="json" if json_lines else "text",
        split_stream=bool(getattr(args, split, False)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    logs.configure(logging_options(args))
    run: Runner = args.run
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): as a Go CLI killed by SIGPIPE, no
        # word, and stdout pointed at /dev/null so that the flush at exit cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Failure as err:
        print(err.line(), file=sys.stderr)
        return 1
    except Exception as err:  # the last line of defence: one line, never a traceback
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
