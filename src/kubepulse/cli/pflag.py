"""Usage errors worded as kubectl's flag parser (spf13/pflag) words them.

Users of kubepulse come from kubectl; "unknown flag: --sum" tells them what argparse's
"unrecognized arguments: --sum" does, in the words they already know.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections.abc import Sequence
from typing import Any

from kubepulse.timefmt import go_duration

_NEEDS_VALUE = re.compile(r"argument (\S+): expected one argument")
_IGNORED = re.compile(r"argument (\S+): ignored explicit argument '(.)")
_BAD_OUTPUT = re.compile(r"argument -o/--output: invalid choice: '(.*)' \(choose from (.*)\)$")


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
    if match := _BAD_OUTPUT.match(message):
        # kubectl's words for an -o it has no printer for; "" (the default) is no format.
        allowed = ",".join(f for f in re.findall(r"'([^']*)'", match.group(2)) if f)
        return (
            f'unable to match a printer suitable for the output format "{match.group(1)}",'
            f" allowed formats are: {allowed}"
        )
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


def spelt_false(argv: Sequence[str], flags: dict[str, str]) -> set[str]:
    """The boolean flags whose last spelling in argv is --flag=false: a flag whose
    default is true (--profiling, --audit-webhook-batch-throttle-enable) is then off."""
    last: dict[str, bool] = {}
    for token in argv:
        if token == "--":
            break
        name, eq, value = token.partition("=")
        if name in flags:
            last[name] = bool(eq) and value in _FALSE
    return {name for name, false in last.items() if false}


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


def _accumulate(namespace: argparse.Namespace, dest: str, values: tuple[Any, ...]) -> None:
    """Add values to a repeatable flag's: its first use replaces the default."""
    seen: set[str] = getattr(namespace, "_accumulated", set())
    earlier = getattr(namespace, dest) if dest in seen else ()
    setattr(namespace, dest, (*earlier, *values))
    namespace._accumulated = seen | {dest}


class Strings(argparse.Action):
    """pflag's StringSlice: comma-separated values, the flag repeatable; the first use
    replaces the default and later uses add to it. Values are read as CSV fields, as
    pflag reads them, so a quoted field may hold a comma."""

    split = True

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if not self.split:
            _accumulate(namespace, self.dest, (values,))
            return
        fields = next(csv.reader([str(values)]), [])
        _accumulate(namespace, self.dest, tuple(f.strip() for f in fields if f.strip()))


class Repeated(Strings):
    """A flag given once per value (--tls-sni-cert-key, --feature-gates), each value
    checked by `type`; the values in the order given."""

    split = False


def _default_text(action: argparse.Action) -> str:
    """pflag's "(default ...)": nothing for a zero value, Go's spelling otherwise."""
    value = action.default
    if value in (None, False, "", (), 0, argparse.SUPPRESS) or action.metavar == "Level":
        return ""
    if value is True:
        return " (default true)"
    if action.metavar == "duration" and isinstance(value, float):
        return f" (default {go_duration(value)})"
    if isinstance(value, tuple):
        return f" (default [{','.join(map(str, value))}])"
    if action.metavar == "string":
        return f' (default "{value}")'
    if isinstance(value, float):
        return f" (default {value:g})"
    return f" (default {value})"


def _names(action: argparse.Action) -> str:
    long = [o for o in action.option_strings if o.startswith("--")]
    short = [o for o in action.option_strings if not o.startswith("--")]
    # -v, --v: pflag lists a one-letter long name after its shorthand too.
    head = f"  {short[0]}, " if short else "      "
    kind = f" {action.metavar}" if action.nargs != 0 and action.metavar else ""
    return f"{head}{long[-1]}{kind}"


def flag_usages(parser: argparse.ArgumentParser, summary: str) -> str:
    """The help of a command whose flags are in groups titled "... flags", laid out as
    cobra and pflag print a Kubernetes component's: the groups in order, each sorted by
    name, names and types in one column, what each does in the next."""
    out = [summary, "", "Usage:", f"  {parser.prog} [flags]", ""]
    for group in parser._action_groups:
        # Flags outside the groups (but -h) come under "Flags", as cobra lists them.
        title = group.title or ""
        title = title if title.endswith(" flags") else "Flags"
        actions = [
            a
            for a in group._group_actions
            if a.help != argparse.SUPPRESS and a.dest != "help" and a.option_strings
        ]
        if not actions:
            continue
        actions.sort(key=lambda a: a.option_strings[-1].lstrip("-"))
        width = max(len(_names(a)) for a in actions) + 3
        out += [f"{title}:", ""]
        for action in actions:
            lines = ((action.help or "") + _default_text(action)).split("\n")
            out.append(_names(action).ljust(width) + lines[0])
            out += [" " * width + line for line in lines[1:]]
        out.append("")
    return "\n".join(out) + "\n"
