"""metrics.k8s.io/v1beta1 as a client reads it: `top`, `doctor` and the dashboard's poller.

The requests kubectl top makes (pkg/cmd/top: discovery first, then NodeMetrics or
PodMetrics, by name or by selectors), and NodeMetrics and PodMetrics read into the
model's rates (k8s.io/metrics/pkg/apis/metrics/v1beta1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubepulse.kube.client import KubeClient
from kubepulse.kube.objects import ObjectError
from kubepulse.quantity import QuantityError, parse_quantity
from kubepulse.store.rates import PodKey, PodRates, Rate
from kubepulse.timefmt import parse_go_duration, parse_rfc3339

METRICS = "/apis/metrics.k8s.io/v1beta1"
T = TypeVar("T")


class MetricsReader:
    """The metrics API of one cluster, through a client the caller owns."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def available(self) -> bool:
        """Whether discovery lists metrics.k8s.io/v1beta1 (kubectl's first question)."""
        groups = await self.client.get("/apis")
        return any(
            group.get("name") == "metrics.k8s.io"
            and any(v.get("version") == "v1beta1" for v in group.get("versions") or [])
            for group in groups.get("groups") or []
        )

    async def nodes(self, name: str = "", selector: str = "") -> list[Any]:
        """NodeMetrics: the one named, or every node the label selector picks."""
        if name:
            return [await self.client.get(f"{METRICS}/nodes/{name}")]
        path = f"{METRICS}/nodes"
        return items(await self.client.get(path, {"labelSelector": selector}), path)

    async def pods(
        self,
        namespace: str | None,
        name: str = "",
        selector: str = "",
        field_selector: str = "",
    ) -> list[Any]:
        """PodMetrics: the one named in `namespace`, or those the selectors pick in it
        (namespace None: in every namespace)."""
        if name:
            return [await self.client.get(f"{METRICS}/namespaces/{namespace}/pods/{name}")]
        path = f"{METRICS}/pods" if namespace is None else f"{METRICS}/namespaces/{namespace}/pods"
        query = {"labelSelector": selector, "fieldSelector": field_selector}
        return items(await self.client.get(path, query), path)


def items(body: Any, path: str) -> list[Any]:
    found = body.get("items") if isinstance(body, Mapping) else None
    if not isinstance(found, list):
        raise ObjectError(f"the answer of {path} is not a Kubernetes list")
    return found


def each(found: list[Any], parse: Callable[[Any], T], skipped: list[str]) -> list[T]:
    """What parse() makes of every item; an object that cannot be read is skipped and
    noted, never the whole list (as the reflector skips it)."""
    parsed: list[T] = []
    for obj in found:
        try:
            parsed.append(parse(obj))
        except ObjectError as err:
            skipped.append(str(err))
    return parsed


def _usage(usage: Any, what: str) -> tuple[int, int]:
    """(CPU nanocores, memory bytes) of a `usage` ResourceList."""
    if not isinstance(usage, Mapping):
        raise ObjectError(f"{what} has no usage")
    try:
        cpu = round(parse_quantity(str(usage["cpu"])) * 1e9)
        memory = round(parse_quantity(str(usage["memory"])))
    except KeyError as err:
        raise ObjectError(f"{what} has no {err.args[0]} usage") from err
    except QuantityError as err:
        raise ObjectError(f"{what}: {err}") from err
    return cpu, memory


def _when(obj: Mapping[str, Any], what: str) -> tuple[float, float]:
    """(timestamp, window in seconds): an RFC 3339 time and a Go duration ("15.003s")."""
    try:
        return parse_rfc3339(str(obj["timestamp"])), parse_go_duration(str(obj["window"]))
    except KeyError as err:
        raise ObjectError(f"{what} has no {err.args[0]}") from err
    except ValueError as err:
        raise ObjectError(f"{what}: {err}") from err


def _name(obj: Any, kind: str) -> tuple[Mapping[str, Any], str]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping) or not meta.get("name"):
        raise ObjectError(f"a {kind} has no metadata.name")
    return meta, str(meta["name"])


def node_rate(obj: Any) -> tuple[str, Rate]:
    """A NodeMetrics as (node name, Rate). Raises ObjectError."""
    _, name = _name(obj, "NodeMetrics")
    what = f"NodeMetrics {name}"
    timestamp, window = _when(obj, what)
    cpu, memory = _usage(obj.get("usage"), what)
    return name, Rate(timestamp, window, cpu, memory)


def pod_rates(obj: Any) -> tuple[PodKey, PodRates]:
    """A PodMetrics as ((namespace, name), PodRates): every container at the pod's
    timestamp and window, as metrics-server serves them. Raises ObjectError."""
    meta, name = _name(obj, "PodMetrics")
    namespace = str(meta.get("namespace") or "default")
    what = f"PodMetrics {namespace}/{name}"
    timestamp, window = _when(obj, what)
    containers: list[tuple[str, Rate]] = []
    for c in obj.get("containers") or []:
        if not isinstance(c, Mapping) or not c.get("name"):
            raise ObjectError(f"{what} has a container without a name")
        cpu, memory = _usage(c.get("usage"), f"{what} container {c['name']}")
        containers.append((str(c["name"]), Rate(timestamp, window, cpu, memory)))
    containers.sort()
    return (namespace, name), PodRates(timestamp, window, tuple(containers))
