"""Usage errors worded as kubectl's flag parser (spf13/pflag) words them.

Users of kubepulse come from kubectl; "unknown flag: --sum" tells them what argparse's
"unrecognized arguments: --sum" does, in the words they already know.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

_NEEDS_VALUE = re.compile(r"argument (\S+): expected one argument")
_IGNORED = re.compile(r"argument (\S+): ignored explicit argument '(.)")


def unknown(token: str) -> str:
    """pflag's words for a flag it does not know: long by name, short by its letter."""
    if token.startswith("--"):
        return f"unknown flag: {token.split('=', 1)[0]}"
    return f"unknown shorthand flag: '{token[1]}' in -{token[1]}"


def pflag_words(message: str, argv: Sequence[str]) -> str:
    """argparse's message for a bad command line, reworded as kubectl would say it."""
    if message.startswith("unrecognized arguments: "):
        first = message.removeprefix("unrecognized arguments: ").split()[0]
        return unknown(first) if first.startswith("-") and first != "-" else message
    if match := _IGNORED.match(message):
        # "-Ax": argparse found -A then a letter it does not know (pflag: 'x' in -x).
        return unknown(f"-{match.group(2)}")
    if match := _NEEDS_VALUE.match(message):
        names = match.group(1).split("/")
        used = next((t for t in reversed(argv) if t in names), names[-1])
        if used.startswith("--"):
            return f"flag needs an argument: {used}"
        return f"flag needs an argument: '{used[1]}' in {used}"
    return message


# strconv.ParseBool, which pflag uses for --flag=value of a boolean flag.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def booleans_spelt_out(argv: Sequence[str], flags: dict[str, str]) -> list[str]:
    """argv with kubectl's --flag=true and --flag=false of boolean flags as argparse
    takes them: the bare flag, or nothing. `flags` maps each spelling of a boolean flag
    to the name pflag gives it in errors ("-A, --all-namespaces"). Raises ValueError
    with pflag's words for a value ParseBool refuses."""
    out: list[str] = []
    for i, token in enumerate(argv):
        if token == "--":
            return out + list(argv[i:])
        name, eq, value = token.partition("=")
        if not eq or name not in flags:
            out.append(token)
        elif value in _TRUE:
            out.append(name)
        elif value not in _FALSE:
            raise ValueError(
                f'invalid argument "{value}" for "{flags[name]}" flag: '
                f'strconv.ParseBool: parsing "{value}": invalid syntax'
            )
    return out


class Given(argparse.Action):
    """A flag that also notes the option string it was given as, in args.given.

    Lets a command refuse, in kubectl's words, a flag that exists for another of
    its forms (`top node --containers`).
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, True if self.nargs == 0 else values)
        given: list[str] = getattr(namespace, "given", None) or []
        namespace.given = [*given, option_string or self.dest]
