"""Parsing of flag values in the forms Kubernetes components accept."""

from __future__ import annotations

import argparse
import re

from kubepulse.model import Resources

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


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
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)", text.strip())
    if not match or (match.group(2) not in _BINARY and match.group(2) not in _DECIMAL):
        raise argparse.ArgumentTypeError(f"invalid quantity {text!r}")
    number, suffix = float(match.group(1)), match.group(2)
    return number * (_BINARY.get(suffix) or _DECIMAL[suffix])


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
