"""Parsing of flag values in the forms Kubernetes components accept."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from kubepulse.model import Resources
from kubepulse.quantity import QuantityError, parse_quantity

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """A Go duration ("15s", "1m30s", "500ms") in seconds."""
    text = text.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (want e.g. 15s, 1m0s, 500ms)")
    return total


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


def defaults(
    add_flags: Callable[[argparse.ArgumentParser], None], **overrides: Any
) -> argparse.Namespace:
    """A command's flags at their defaults, with overrides: for commands that embed it."""
    parser = argparse.ArgumentParser()
    add_flags(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args
