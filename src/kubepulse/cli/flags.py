"""Parsing of flag values in the forms Kubernetes components accept."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubepulse.cli import pflag
from kubepulse.model import Resources
from kubepulse.quantity import QuantityError, parse_quantity
from kubepulse.server.connections import Limits
from kubepulse.server.tlsoptions import NamedCertKey
from kubepulse.timefmt import parse_go_duration


def duration(text: str) -> float:
    """A Go duration ("15s", "1m30s", "500ms") in seconds."""
    try:
        return parse_go_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err} (want e.g. 15s, 1m0s, 500ms)") from err


def quantity(text: str) -> float:
    """A Kubernetes quantity ("100m", "1Gi", "2") as a number of base units."""
    try:
        return parse_quantity(text)
    except QuantityError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def reserved(text: str) -> Resources:
    """--system-reserved: "cpu=500m,memory=1Gi"."""
    cpu = memory = None
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in ("cpu", "memory"):
            raise argparse.ArgumentTypeError(
                f"invalid reservation {item!r} (want cpu=..,memory=..)"
            )
        if key == "cpu":
            cpu = round(quantity(value) * 1000)
        else:
            memory = round(quantity(value))
    return Resources(cpu_millicores=cpu, memory_bytes=memory)


def add_connection_flags(p: argparse._ActionsContainer) -> None:
    p.add_argument(
        "--max-connections",
        type=int,
        metavar="int",
        default=Limits.max_connections,
        help="connections open at once; more are closed at once",
    )


def ip(text: str) -> str:
    """pflag's IP value: an IPv4 or IPv6 address (net.ParseIP)."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f'failed to parse IP: "{text}"') from None


def int32_slice(text: str) -> tuple[int, ...]:
    """pflag's Int32Slice: "23,29"."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if any(not -(2**31) <= v < 2**31 for v in values):
        raise argparse.ArgumentTypeError(f"{text}: out of range for int32")
    return values


def feature_gates(text: str) -> str:
    """One --feature-gates value: [component:]key=bool pairs, comma-separated."""
    for pair in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key or value.lower() not in ("true", "false"):
            raise argparse.ArgumentTypeError(f"malformed pair, expect string=bool: {pair!r}")
    return text


def vmodule(text: str) -> tuple[tuple[str, int], ...]:
    """klog's --vmodule: "pattern=N,..."; a pattern is a glob on a file's name."""
    found: list[tuple[str, int]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        pattern, sep, level = item.partition("=")
        if not sep or not pattern or not level.isdigit():
            raise argparse.ArgumentTypeError(
                f"syntax error: expect comma-separated list of filename=N, got {item!r}"
            )
        found.append((pattern, int(level)))
    return tuple(found)


def named_cert_key(text: str) -> NamedCertKey:
    """--tls-sni-cert-key: "cert,key" or "cert,key:name,*.name" (k8s.io/component-base
    NamedCertKey)."""
    files, _, patterns = text.partition(":")
    cert, comma, key = files.partition(",")
    if not comma or not cert.strip() or not key.strip() or "," in key:
        raise argparse.ArgumentTypeError(
            f"expected comma separated certificate and key file paths, got {text!r}"
        )
    names = tuple(n.strip() for n in patterns.split(",") if n.strip())
    return NamedCertKey(Path(cert.strip()), Path(key.strip()), names)


def kind(name: str) -> dict[str, Any]:
    """argparse's arguments for a flag of pflag's value type `name` (as --help names it)."""
    metavar: dict[str, Any] = {"metavar": name}
    match name:
        case "bool":
            return {"action": "store_true"}
        case "strings":
            return {**metavar, "action": pflag.Strings}
        case "namedCertKey":
            return {**metavar, "action": pflag.Repeated, "type": named_cert_key}
        case "colonSeparatedMultimapStringString":
            return {**metavar, "action": pflag.Repeated, "type": feature_gates}
    types: dict[str, Callable[[str], Any]] = {
        "string": str,
        "int": int,
        "Level": int,
        "float": float,
        "float32": float,
        "duration": duration,
        "ip": ip,
        "quantity": quantity,
        "int32Slice": int32_slice,
        "pattern=N,...": vmodule,
    }
    return {**metavar, "type": types[name]}


def add(
    group: argparse._ActionsContainer,
    name: str,
    value_type: str,
    help_text: str,
    default: Any = None,
    **more: Any,
) -> argparse.Action:
    """A flag as pflag declares one: its names, value type and default."""
    names = more.pop("names", None) or (name,)
    defaults = {"bool": False, "strings": (), "namedCertKey": ()}
    if default is None:
        default = defaults.get(value_type)
    return group.add_argument(
        *names, help=help_text, default=default, **{**kind(value_type), **more}
    )


LOGGING_FORMATS = ("text", "json")


def add_logging_flags(g: argparse._ActionsContainer) -> None:
    """klog's and component-base's logging flags, as Kubernetes components take them."""
    add(
        g,
        "--log-flush-frequency",
        "duration",
        "lines are written out as they come, so any value is met",
        5.0,
    )
    add(
        g,
        "--log-json-split-stream",
        "bool",
        "with --logging-format=json: errors to stderr, the rest to stdout",
    )
    add(
        g,
        "--log-text-split-stream",
        "bool",
        "with --logging-format=text: errors to stderr, the rest to stdout",
    )
    add(
        g,
        "--logging-format",
        "string",
        "text, or json: one JSON object a line with klog's keys (ts, v, msg, caller, err)",
        "text",
        choices=LOGGING_FORMATS,
    )
    add(
        g,
        "--v",
        "Level",
        "verbosity: 0 errors, warnings and changes of state; 2 "
        "startup detail; 4 every request and scrape",
        argparse.SUPPRESS,
        names=("-v", "--v"),
        dest="verbosity",
    )
    add(
        g,
        "--vmodule",
        "pattern=N,...",
        "verbosity per source file, e.g. manager=4,client*=2 (a pattern with / matches the path)",
        (),
    )
