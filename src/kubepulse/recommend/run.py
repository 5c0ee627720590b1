"""`kubepulse recommend`: the history read, the workloads found, the answer printed.

Kubernetes mode, when a kubeconfig is given or the default one reaches its cluster:
pods are pooled by their controller, and what they request now and their OOM kills
come from the API. Host mode otherwise (`up` on a host with no cluster, a history
copied off a machine): each pod is its own workload, and what it requests is unknown.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kubepulse.api.selectors import parse_label_selector
from kubepulse.errors import Failure
from kubepulse.history.snapshot import SnapshotError
from kubepulse.history.sources import SeriesError
from kubepulse.kube import kubeconfig
from kubepulse.kube.client import ApiError, KubeClient, Unreachable
from kubepulse.kube.controllers import pods_and_controllers
from kubepulse.kube.kubeconfig import Credentials, KubeconfigError
from kubepulse.recommend import patch, report
from kubepulse.recommend.collect import Scope, collect, no_owners
from kubepulse.recommend.owners import Owners
from kubepulse.recommend.rows import ContainerRow
from kubepulse.recommend.settings import Settings
from kubepulse.recommend.source import FileUsage, PrometheusUsage, UsageSource

API_TIMEOUT = 15.0


class RecommendError(Failure):
    pass


@dataclass(frozen=True, slots=True)
class RecommendRequest:
    settings: Settings
    output: str = ""
    namespace: str | None = None
    all_namespaces: bool = False
    selector: str = ""
    history: Path | None = None
    prometheus_url: str | None = None
    kubeconfig: str | None = None
    context: str | None = None


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _credentials(request: RecommendRequest) -> Credentials | None:
    explicit = request.kubeconfig is not None or request.context is not None
    try:
        return kubeconfig.load(request.kubeconfig, request.context)
    except KubeconfigError as err:
        if explicit:
            raise RecommendError(str(err)) from err
        return None


async def _owners(
    request: RecommendRequest, creds: Credentials, namespace: str | None
) -> Owners | None:
    """The cluster's pods and controllers; None when the default kubeconfig's cluster
    cannot be reached (host mode), an error when the one asked for cannot."""
    try:
        async with KubeClient(creds, timeout=API_TIMEOUT) as client:
            return Owners.of(*await pods_and_controllers(client, namespace))
    except Unreachable as err:
        if request.kubeconfig is not None or request.context is not None:
            raise RecommendError(f"cannot reach {creds.server}: {err}") from err
        _note(f"{creds.server} cannot be reached ({err}): host mode, each pod its own workload")
        return None
    except ApiError as err:
        raise RecommendError(f"cannot list pods: {err.message}") from err


def _source(request: RecommendRequest) -> UsageSource:
    if request.prometheus_url is not None:
        return PrometheusUsage(request.prometheus_url)
    assert request.history is not None
    try:
        return FileUsage(request.history)
    except SnapshotError as err:
        raise RecommendError(str(err)) from err


async def recommendations(request: RecommendRequest) -> list[ContainerRow]:
    creds = _credentials(request)
    namespace = request.namespace
    if not request.all_namespaces and namespace is None and creds is not None:
        namespace = creds.namespace
    owners = await _owners(request, creds, namespace) if creds is not None else None
    if owners is None:
        if request.selector:
            raise RecommendError("-l needs the cluster's pods and their labels: give --kubeconfig")
        if request.namespace is None:
            namespace = None  # host mode: every namespace unless -n
    selector = parse_label_selector(request.selector) if request.selector else None
    source = _source(request)
    try:
        newest = source.newest() if isinstance(source, FileUsage) else None
        end = newest if newest is not None else time.time()
        return await collect(
            source, owners or no_owners(), Scope(namespace, selector), request.settings, end
        )
    except (SeriesError, sqlite3.Error) as err:
        raise RecommendError(f"cannot read the history: {err}") from err
    finally:
        await source.close()


async def run(request: RecommendRequest) -> int:
    rows = await recommendations(request)
    if not rows:
        _note("no containers with history in this window and scope")
        return 0
    if request.output == "patch":
        text, skipped = patch.patches(rows, request.settings.strategy)
        for line in skipped:
            _note(f"# {line}")
        sys.stdout.write(text)
    elif request.output == "json":
        sys.stdout.flush()
        report.write_json(rows, request.settings, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    elif request.output == "yaml":
        sys.stdout.write(report.yaml_text(rows, request.settings))
    else:
        report.write_table(rows, request.output == "wide", sys.stdout)
    return 0
