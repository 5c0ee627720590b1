"""Time as Kubernetes writes it on the wire."""

from __future__ import annotations

import calendar
import math
import re
import time
from functools import lru_cache


def rfc3339(epoch_seconds: float) -> str:
    """metav1.Time: RFC 3339 in UTC, whole seconds (apimachinery meta/v1/time.go)."""
    return _rfc3339(math.floor(epoch_seconds))


@lru_cache(maxsize=8192)
def _rfc3339(whole_seconds: int) -> str:
    # Cached: a LIST writes the same few scrape times for thousands of items.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(whole_seconds))


@lru_cache(maxsize=8192)
def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): "15s", "15.012s", "1m0.5s", "250ms", "0s"."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size, size) + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    secs = _trim(rest / 1e9, 10**9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return sign + secs


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration ("15s", "1m30s", "15.003s", "500ms"), as time.ParseDuration
    reads the ones go_duration() and metrics-server write; ValueError otherwise."""
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
        raise ValueError(f"invalid duration {text!r}")
    return total


def _trim(value: float, size: int) -> str:
    digits = len(str(size)) - 1
    text = f"{value:.{digits}f}" if digits else str(int(value))
    return text.rstrip("0").rstrip(".") if "." in text else text


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration, as kubectl and the API server print ages."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(?:([Zz])|([+-])(\d\d):(\d\d))"
)


@lru_cache(maxsize=4096)
def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch from an RFC 3339 time as Kubernetes writes it (metav1.Time,
    and Go's RFC3339Nano: up to nine fractional digits). Raises ValueError.

    Cached: a kubelet's Summary carries the same few times for every container."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid RFC 3339 time {text[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, _, sign, offset_h, offset_m = match.groups()[6:]
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if sign is not None:
        offset = int(offset_h) * 3600 + int(offset_m) * 60
        seconds -= offset if sign == "+" else -offset
    return seconds + (float(fraction) if fraction else 0.0)
