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
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from kubepulse.api.exposition import metric_name
from kubepulse.history.read import HistoryPoint
from kubepulse.history.sources import SeriesError

# The labels each kind's series carry in the exposition, in key order after the kind.
_LABELS = {
    "node": ("", "node", ""),
    "pod": ("namespace", "pod", ""),
    "container": ("namespace", "pod", "container"),
    "namespace": ("namespace", "", ""),
    "cluster": ("", "", ""),  # the sum of every node's series (series() sums them)
}


class PrometheusError(SeriesError):
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


# What RE2 (PromQL's regular expressions) gives a meaning to; escaped, each is itself.
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def alternation(values: Sequence[str]) -> str:
    """A regular expression that matches exactly these values: PromQL anchors =~ at both
    ends, so only the characters RE2 gives a meaning to need escaping."""
    return "|".join(
        "".join("\\" + c if c in _RE2_SPECIAL else c for c in value) for value in values
    )


def selector(kind: str, resource: str, namespace: str, name: str, container: str) -> str:
    """The PromQL selector of one series: e.g. kubepulse_pod_cpu_usage_nanocores{...}."""
    if kind not in _LABELS:
        raise ValueError(f"unknown kind {kind!r}: want one of {', '.join(_LABELS)}")
    if kind == "namespace":
        name = namespace  # a namespace series is named by its namespace label alone
    if kind == "cluster":
        return metric_name("node", resource)  # every node's: series() sums them
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
        results = await self._four(
            lambda resource: selector(kind, resource, namespace, name, container),
            start,
            end,
            step,
            total=kind == "cluster",
        )
        return _points([_values(r[0], self.shown) if r else {} for r in results], step)

    async def node_series(
        self, names: Sequence[str], start: float, end: float, step: float
    ) -> dict[str, list[HistoryPoint]]:
        """series() of many nodes at once (the nodes list's sparklines): four queries with
        a regular expression of their names, instead of four a node."""
        if not names:
            return {}
        matcher = f"{{node=~{_quote(alternation(names))}}}"
        results = await self._four(
            lambda resource: metric_name("node", resource) + matcher, start, end, step
        )
        try:
            by_node = [
                {str(series["metric"]["node"]): _values(series, self.shown) for series in found}
                for found in results
            ]
        except (KeyError, TypeError) as err:
            raise PrometheusError(f"{self.shown}: a range answer without node labels") from err
        return {n: _points([values.get(n, {}) for values in by_node], step) for n in names}

    async def pods(self, start: float, end: float) -> dict[tuple[str, str], float | None]:
        """The pods of the pod series in [start, end] (/api/v1/series); when each was last
        seen is not asked (one more query a pod)."""
        found = await self._post(
            "/api/v1/series",
            {
                "match[]": metric_name("pod", "memory"),
                "start": f"{start:.3f}",
                "end": f"{end:.3f}",
            },
        )
        try:
            return {
                (str(labels["namespace"]), str(labels["pod"])): None
                for labels in found.get("data") or []
            }
        except (KeyError, TypeError) as err:
            raise PrometheusError(f"{self.shown}: series without pod labels") from err

    async def containers(self, namespace: str, pod: str, start: float, end: float) -> list[str]:
        """The container label values of the pod's series in [start, end] (/api/v1/series)."""
        found = await self._post(
            "/api/v1/series",
            {
                "match[]": metric_name("container", "memory")
                + f"{{namespace={_quote(namespace)},pod={_quote(pod)}}}",
                "start": f"{start:.3f}",
                "end": f"{end:.3f}",
            },
        )
        try:
            return sorted({str(labels["container"]) for labels in found.get("data") or []})
        except (KeyError, TypeError) as err:
            raise PrometheusError(f"{self.shown}: series without a container label") from err

    async def by_container(self, query: str, at: float) -> dict[tuple[str, str, str], float]:
        """An instant query's values at `at`, by their namespace, pod and container labels
        (series without all three are left out)."""
        body = await self._post("/api/v1/query", {"query": query, "time": f"{at:.3f}"})
        data = body.get("data")
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise PrometheusError(f"{self.shown}: an instant answer without a result list")
        found: dict[tuple[str, str, str], float] = {}
        try:
            for series in result:
                labels = series["metric"]
                if all(labels.get(k) for k in ("namespace", "pod", "container")):
                    key = (str(labels["namespace"]), str(labels["pod"]), str(labels["container"]))
                    found[key] = float(series["value"][1])
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise PrometheusError(f"{self.shown}: an instant answer without values") from err
        return found

    async def _four(
        self,
        selector_of: Callable[[str], str],
        start: float,
        end: float,
        step: float,
        total: bool = False,
    ) -> list[list[Any]]:
        """The series the four range queries of a step's average and maximum of CPU and
        memory return, in _RESOURCES_AND_FNS's order; with total, each summed over the
        series it selects."""
        first, window = _grid(start, step)
        wrap = "sum({})" if total else "{}"
        return await asyncio.gather(
            *(
                self._query_range(
                    wrap.format(f"{fn}({selector_of(resource)}{window})"), first, end, step
                )
                for resource, fn in _RESOURCES_AND_FNS
            )
        )

    async def _query_range(self, query: str, first: float, end: float, step: float) -> list[Any]:
        """One range query's series. Evaluated at t + step, over the step before it."""
        params = {
            "query": query,
            "start": f"{first + step:.3f}",
            "end": f"{end + step:.3f}",
            "step": f"{step}",
        }
        body = await self._post("/api/v1/query_range", params)
        data = body.get("data")
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise PrometheusError(f"{self.shown}: a range answer without a result list")
        return result

    async def _post(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """A form POST to the HTTP API (which takes GET and POST alike): a query naming
        hundreds of nodes is too long for some proxies' URLs."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                self.url + path, data=params, timeout=self.timeout
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


_RESOURCES_AND_FNS = [
    (resource, fn) for resource in ("cpu", "memory") for fn in ("avg_over_time", "max_over_time")
]


def _grid(start: float, step: float) -> tuple[float, str]:
    """The first step's start, aligned to multiples of `step` since the epoch as
    history.query()'s are, and the range selector of one step."""
    if step <= 0:
        raise ValueError("step must be positive")
    step_ms = max(1, round(step * 1000))
    return math.floor(start * 1000 / step_ms) * step_ms / 1000, f"[{step_ms}ms]"


def _values(series: Any, shown: str) -> dict[float, float]:
    try:
        return {float(t): float(v) for t, v in series["values"]}
    except (KeyError, TypeError, ValueError) as err:
        raise PrometheusError(f"{shown}: a range answer without values: {err}") from err


def _points(found: Sequence[dict[float, float]], step: float) -> list[HistoryPoint]:
    """HistoryPoints from the four queries' values (cpu avg, max; memory avg, max): the
    point labelled t is evaluated at t + step over the step before it."""
    cpu, cpu_max, mem, mem_max = found
    return [
        HistoryPoint(t - step, cpu[t], mem[t], cpu_max[t], mem_max[t])
        for t in sorted(cpu.keys() & cpu_max.keys() & mem.keys() & mem_max.keys())
    ]
