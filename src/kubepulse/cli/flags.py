"""Parsing of flag values in the forms Kubernetes components accept."""

from __future__ import annotations

import argparse

from kubepulse.model import Resources
from kubepulse.quantity import QuantityError, parse_quantity
from kubepulse.server.connections import Limits
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


def add_connection_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-connections",
        type=int,
        default=Limits.max_connections,
        help="connections open at once; more are closed at once (default 8192)",
    )
