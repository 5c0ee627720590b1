"""Logging as Kubernetes components log (klog, k8s.io/component-base/logs).

Verbosity is klog's: a line at V(n) is written when -v is n or more, or when a
--vmodule pattern matching its source file says so. Python's levels map onto it:
WARNING and above, and INFO, are V(0) (errors, warnings, changes of state: quiet at
steady state); V(1) to V(9) are the levels just below INFO (v(n)); DEBUG is V(4), the
per-request and per-scrape detail.

--logging-format=json writes one JSON object a line with component-base's keys: ts
(milliseconds since the epoch), caller, msg, v, err for an exception, and the
structured values a call gives in extra={"kv": {...}}.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def v(level: int) -> int:
    """The Python level of klog's V(level), for log.log(v(2), ...): V(0) is INFO, V(4)
    DEBUG, and the others spread between and below them (V(8) and up are level 1)."""
    return max(1, logging.INFO - (max(level, 0) * 10) // 4)


def verbosity_of(levelno: int) -> int:
    """klog's V of a Python level: the least V whose level is at or below it."""
    if levelno >= logging.INFO:
        return 0
    return -((logging.INFO - levelno) * 4 // -10)


@dataclass(frozen=True)
class LoggingOptions:
    verbosity: int = 0
    vmodule: tuple[tuple[str, int], ...] = ()
    format: str = "text"
    split_stream: bool = False
    """Errors to stderr and the rest to stdout; otherwise all to stderr."""


class VerbosityFilter(logging.Filter):
    """Passes a record whose V is within -v, or within the first --vmodule pattern that
    matches its file: the file's name without .py, or its path when the pattern has a /
    (klog's vmodule)."""

    def __init__(self, verbosity: int, vmodule: tuple[tuple[str, int], ...]) -> None:
        super().__init__()
        self.verbosity, self.vmodule = verbosity, vmodule

    def threshold(self, pathname: str) -> int:
        path = PurePath(pathname)
        stem, full = path.stem, str(path.with_suffix(""))
        for pattern, level in self.vmodule:
            target = full if "/" in pattern else stem
            if fnmatch.fnmatchcase(target, pattern) or (
                "/" in pattern and fnmatch.fnmatchcase(full, "*/" + pattern)
            ):
                return level
        return self.verbosity

    def filter(self, record: logging.LogRecord) -> bool:
        return verbosity_of(record.levelno) <= self.threshold(record.pathname)


class JSONFormatter(logging.Formatter):
    """component-base's JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(record.created * 1000, 3),
            "caller": f"{PurePath(record.pathname).name}:{record.lineno}",
            "msg": record.getMessage(),
            "v": verbosity_of(record.levelno),
        }
        if record.levelno >= logging.WARNING:
            line["level"] = record.levelname.lower()
        if record.exc_info and record.exc_info[1] is not None:
            line["err"] = str(record.exc_info[1])
        kv = getattr(record, "kv", None)
        if isinstance(kv, Mapping):
            line.update({str(k): value for k, value in kv.items() if k not in line})
        return json.dumps(line, default=str, ensure_ascii=False)


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def _handler(
    stream: TextIO, formatter: logging.Formatter, keep: VerbosityFilter
) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.kubepulse = True  # type: ignore[attr-defined]  # one of configure()'s
    handler.setFormatter(formatter)
    handler.addFilter(keep)
    return handler


def configure(options: LoggingOptions) -> None:
    """Set up the root logger for the process (a second call replaces the first). Where
    something else already handles the root logger (a program that runs main() in
    process, pytest), its handlers are kept and only the level is set, as
    logging.basicConfig leaves them."""
    formatter: logging.Formatter = (
        JSONFormatter() if options.format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    keep = VerbosityFilter(options.verbosity, options.vmodule)
    if options.split_stream:
        errors = _handler(sys.stderr, formatter, keep)
        errors.setLevel(logging.ERROR)
        rest = _handler(sys.stdout, formatter, keep)
        rest.addFilter(_Below(logging.ERROR))
        handlers = [errors, rest]
    else:
        handlers = [_handler(sys.stderr, formatter, keep)]
    most = max([options.verbosity, *(level for _, level in options.vmodule)])
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "kubepulse", False)]
    if len(ours) == len(root.handlers):
        for old in ours:
            root.removeHandler(old)
        for handler in handlers:
            root.addHandler(handler)
    root.setLevel(v(most))
