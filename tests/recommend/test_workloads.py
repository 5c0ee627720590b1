"""Kubernetes mode against the fake API: a workload's pods pooled (live and ended), what
they request now, OOM kills, -n and -l."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np

from kubepulse.recommend.report import totals
from kubepulse.recommend.rows import ContainerRow
from kubepulse.recommend.run import RecommendRequest, recommendations
from kubepulse.recommend.settings import Settings
from tests.fakeapi.server import FakeKubeAPI
from tests.recommend.cluster import NS, USAGE, history_rows, shop
from tests.recommend.support import MIB, write_history


def rows_for(
    path: Path, kubeconfig: Path, **request: object
) -> dict[tuple[str, str], ContainerRow]:
    found = asyncio.run(
        recommendations(
            RecommendRequest(
                settings=Settings(),
                history=path,
                kubeconfig=str(kubeconfig),
                **request,  # type: ignore[arg-type]
            )
        )
    )
    return {(r.workload.shown, r.container): r for r in found}


def test_a_deployments_pods_live_and_ended_are_pooled_through_their_replicasets(
    tmp_path: Path, fake_api: FakeKubeAPI, fake_kubeconfig: Path
) -> None:
    shop(fake_api)
    path = write_history(tmp_path / "h.db", history_rows())

    rows = rows_for(path, fake_kubeconfig, namespace=NS)

    web = rows[("deployment/web", "app")]
    pods = [p for p in USAGE if p.startswith(("web-",))]
    assert web.pods == len(pods) == 4  # two live, one ended, one of the old ReplicaSet
    assert web.replicas == 2
    rec = web.recommended
    assert rec is not None
    assert rec.cpu_request == math.ceil(max(np.percentile(USAGE[p][0], 95) for p in pods))
    assert rec.memory_request == math.ceil(max(USAGE[p][1] for p in pods) * 1.15 / MIB) * MIB
    assert web.current is not None and web.current.cpu_request == 500
    assert web.cpu_change == rec.cpu_request - 500
    # The StatefulSet's ended pod is matched by its ordinal, the bare pod is its own.
    assert rows[("statefulset/db", "postgres")].pods == 2
    assert rows[("pod/debug", "app")].pods == 1
    assert set(rows) == {
        ("deployment/web", "app"),
        ("statefulset/db", "postgres"),
        ("pod/debug", "app"),
    }


def test_an_oom_killed_container_is_flagged_and_its_memory_never_lowered(
    tmp_path: Path, fake_api: FakeKubeAPI, fake_kubeconfig: Path
) -> None:
    shop(fake_api)
    path = write_history(tmp_path / "h.db", history_rows())

    db = rows_for(path, fake_kubeconfig, namespace=NS)[("statefulset/db", "postgres")]

    assert db.oom_killed
    # Its usage alone says 120Mi * 1.15 = 138Mi; it has 1Gi and was OOM-killed.
    assert db.recommendation.memory_request_bytes == math.ceil(120 * 1.15) * MIB
    assert db.recommended is not None
    assert db.recommended.memory_request == db.recommended.memory_limit == 1 << 30
    assert db.memory_change == 0


def test_selector_and_namespace_choose_the_workloads(
    tmp_path: Path, fake_api: FakeKubeAPI, fake_kubeconfig: Path
) -> None:
    shop(fake_api)
    path = write_history(tmp_path / "h.db", history_rows())

    assert set(rows_for(path, fake_kubeconfig, namespace=NS, selector="app=web")) == {
        ("deployment/web", "app")
    }
    assert rows_for(path, fake_kubeconfig, namespace="default") == {}
    assert len(rows_for(path, fake_kubeconfig, all_namespaces=True)) == 3


def p95(*pods: str) -> int:
    """simple's CPU: the highest per-pod 95th percentile, at least 10m."""
    return max(10, math.ceil(max(np.percentile(USAGE[p][0], 95) for p in pods)))


def memory(*pods: str) -> int:
    return max(100 * MIB, math.ceil(max(USAGE[p][1] for p in pods) * 1.15 / MIB) * MIB)


def test_the_namespace_totals_count_the_requests_freed_over_the_running_pods(
    tmp_path: Path, fake_api: FakeKubeAPI, fake_kubeconfig: Path
) -> None:
    shop(fake_api)
    path = write_history(tmp_path / "h.db", history_rows())

    cpu, freed_memory = totals(list(rows_for(path, fake_kubeconfig, namespace=NS).values()))[NS]

    web = [p for p in USAGE if p.startswith("web-")]
    # web: 2 running pods requesting 500m and 512Mi; db-0: 100m and 1Gi (kept, OOM-killed);
    # debug: the fake's default 100m and 128Mi.
    assert cpu == 2 * (500 - p95(*web)) + (100 - p95("db-0", "db-1")) + (100 - p95("debug"))
    assert freed_memory == 2 * (512 * MIB - memory(*web)) + 0 + (128 * MIB - memory("debug"))
