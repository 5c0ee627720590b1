"""History read back from Prometheus (`--prometheus-url`), in history.query()'s shape.

For clusters that already run Prometheus (or anything speaking its HTTP API: Thanos,
Mimir, VictoriaMetrics) and scrape kubepulse's exposition (exposition.py): the dashboard
asks one interface for a range and gets the same points from either store.

Each step is the average and the maximum over [t, t + step), computed by Prometheus with
avg_over_time and max_over_time over the step, so a point means the same as one from
the SQLite tiers.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from kubepulse.store.exposition import metric_name
from kubepulse.store.history_read import HistoryPoint

# The labels each kind's series carry in the exposition, in key order after the kind.
_LABELS = {
    "node": ("", "node", ""),
    "pod": ("namespace", "pod", ""),
    "container": ("namespace", "pod", "container"),
    "namespace": ("namespace", "", ""),
}


class PrometheusError(Exception):
    """Prometheus refused a query or could not be reached."""


def check_url(url: str) -> str:
    """The base URL of a Prometheus HTTP API (http or https, a host, maybe a path prefix);
    ValueError with why when it is not one."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError as err:
        raise ValueError(f"{url!r} is not a URL: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{url!r} is not an http:// or https:// URL with a host (e.g. http://127.0.0.1:9090)"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: give the base URL, without a query or fragment")
    return url


def _without_credentials(url: str) -> str:
    """The URL as shown in messages: user and password left out."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def _reason(err: Exception) -> str:
    return str(err) or type(err).__name__


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def selector(kind: str, resource: str, namespace: str, name: str, container: str) -> str:
    """The PromQL selector of one series: e.g. kubepulse_pod_cpu_usage_nanocores{...}."""
    if kind not in _LABELS:
        raise ValueError(f"unknown kind {kind!r}: want one of {', '.join(_LABELS)}")
    if kind == "namespace":
        name = namespace  # a namespace series is named by its namespace label alone
    values = (namespace, name, container)
    matchers = ",".join(
        f"{label}={_quote(v)}" for label, v in zip(_LABELS[kind], values, strict=True) if label
    )
    return f"{metric_name(kind, resource)}{{{matchers}}}"


class PrometheusHistory:
    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.shown = _without_credentials(self.url)
        """The URL for messages and logs: without a user or password in it."""
        self._session = session
        self._own_session = session is None
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> PrometheusHistory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def series(
        self,
        kind: str,
        namespace: str,
        name: str,
        container: str,
        start: float,
        end: float,
        step: float,
    ) -> list[HistoryPoint]:
        """Points of one series in [start, end], one per step that holds data.

        Steps are aligned to multiples of `step` since the epoch as history.query()'s
        are: the point labelled t is evaluated at t + step over the step before it.
        """
        if step <= 0:
            raise ValueError("step must be positive")
        step_ms = max(1, round(step * 1000))
        first = math.floor(start * 1000 / step_ms) * step_ms / 1000
        window = f"[{step_ms}ms]"
        queries = [
            f"{fn}({selector(kind, resource, namespace, name, container)}{window})"
            for resource in ("cpu", "memory")
            for fn in ("avg_over_time", "max_over_time")
        ]
        cpu, cpu_max, mem, mem_max = await asyncio.gather(
            *(self._range(q, first + step, end + step, step) for q in queries)
        )
        return [
            HistoryPoint(t - step, cpu[t], mem[t], cpu_max[t], mem_max[t])
            for t in sorted(cpu.keys() & cpu_max.keys() & mem.keys() & mem_max.keys())
        ]

    async def _range(self, query: str, start: float, end: float, step: float) -> dict[float, float]:
        """One range query: evaluation time -> value of the first series it returns."""
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}"}
        body = await self._get("/api/v1/query_range", params)
        try:
            result = body.get("data", {}).get("result", [])
            if not result:
                return {}
            return {float(t): float(v) for t, v in result[0]["values"]}
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise PrometheusError(f"{self.shown}: a range answer without values: {err}") from err

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(
                self.url + path, params=params, timeout=self.timeout
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    raise PrometheusError(
                        f"{self.shown}{path}: HTTP {response.status}, not a Prometheus answer"
                    )
        except aiohttp.ClientError as err:
            raise PrometheusError(f"{self.shown}: {_reason(err)}") from err
        except TimeoutError as err:
            raise PrometheusError(
                f"{self.shown}: no answer within {self.timeout.total:g} s"
            ) from err
        if body.get("status") != "success":
            raise PrometheusError(
                f"{self.shown} refused the query: "
                f"{body.get('errorType', 'error')}: {body.get('error', body)}"
            )
        answer: dict[str, Any] = body
        return answer
