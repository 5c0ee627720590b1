"""--prometheus-url against a real VictoriaMetrics holding the shop's usage (as a
Prometheus scraping kubepulse's exposition would) and the cAdvisor counters of OOM kills
and CPU throttling (as one scraping the kubelets' /metrics/cadvisor would)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import numpy as np

from kubepulse.api.exposition import metric_name
from kubepulse.recommend.rows import ContainerRow
from kubepulse.recommend.run import RecommendRequest, recommendations
from kubepulse.recommend.settings import Settings
from tests.fakeapi.server import FakeKubeAPI
from tests.recommend.cluster import CONTAINER, NS, USAGE, WEB_NOW, shop
from tests.recommend.support import MIB, recommend
from tests.recommend.victoria import Sample, run_victoria

MINUTE = 60.0
SCRAPES = (5.0, 20.0, 35.0, 50.0)
"""Four scrapes a minute, inside it: a minute's average is its value."""
OOM_POD = f"{WEB_NOW}-abcde"
THROTTLED, EASY = "debug", "db-0"


def samples(end: float) -> list[Sample]:
    """Each pod's minutes ending at `end`, and counters: OOM_POD killed once halfway,
    THROTTLED throttled in half its CFS periods, EASY in a twentieth."""
    found: list[Sample] = []
    for pod, (cpu, memory) in USAGE.items():
        labels = {"namespace": NS, "pod": pod, "container": CONTAINER.get(pod, "app")}
        first = end - len(cpu) * MINUTE
        for i, millicores in enumerate(cpu):
            for k, offset in enumerate(SCRAPES):
                t = first + i * MINUTE + offset
                n = i * len(SCRAPES) + k
                found += [
                    (metric_name("container", "cpu"), labels, millicores * 1e6, t),
                    (metric_name("container", "memory"), labels, memory, t),
                    (metric_name("pod", "memory"), {"namespace": NS, "pod": pod}, memory, t),
                ]
                if pod == OOM_POD:
                    found.append(("container_oom_events_total", labels, float(i >= 75), t))
                throttled = {THROTTLED: 10, EASY: 1}.get(pod)
                if throttled is not None:
                    found += [
                        ("container_cpu_cfs_periods_total", labels, 20.0 * n, t),
                        ("container_cpu_cfs_throttled_periods_total", labels, throttled * n, t),
                    ]
    return found


def p95(pod: str) -> int:
    return max(10, math.ceil(np.percentile(USAGE[pod][0], 95)))


def test_prometheus_usage_and_cadvisor_counters_flag_oom_and_throttling(
    tmp_path: Path, fake_api: FakeKubeAPI, fake_kubeconfig: Path
) -> None:
    shop(fake_api)
    # Minutes that ended a while ago: VictoriaMetrics hides the newest 30 s from queries.
    end = (time.time() // MINUTE - 5) * MINUTE
    with run_victoria(tmp_path) as victoria:
        victoria.load(samples(end))
        request = RecommendRequest(
            settings=Settings(history_seconds=4 * 3600),
            prometheus_url=victoria.url,
            kubeconfig=str(fake_kubeconfig),
            namespace=NS,
        )
        rows: dict[tuple[str, str], ContainerRow] = {
            (r.workload.shown, r.container): r for r in asyncio.run(recommendations(request))
        }
        out = recommend(
            "--prometheus-url",
            victoria.url,
            "--kubeconfig",
            str(fake_kubeconfig),
            "-n",
            NS,
            "--history-duration",
            "4h",
            "-o",
            "json",
        )

    web = rows[("deployment/web", "app")]
    web_pods = [p for p in USAGE if p.startswith("web-")]
    assert web.pods == 4 and web.recommendation.usage.points == 4 * 150
    assert web.recommendation.usage.step_seconds == MINUTE
    assert web.recommendation.cpu_request_millicores == max(p95(p) for p in web_pods)
    # 410Mi * 1.15 = 472Mi is less than the 512Mi it has; the OOM event keeps 512Mi.
    assert web.recommendation.memory_request_bytes == math.ceil(410 * 1.15) * MIB
    assert web.pressure.oom_events == 1 and web.oom_killed
    assert web.recommended is not None and web.recommended.memory_request == 512 * MIB

    debug = rows[("pod/debug", "app")]
    assert debug.pressure.throttled_share == 0.5 and debug.cpu_throttled
    # Its 5m of usage says 10m; it has 100m and is throttled: kept.
    assert debug.recommendation.cpu_request_millicores == 10
    assert debug.recommended is not None and debug.recommended.cpu_request == 100
    assert debug.cpu_change == 0

    db = rows[("statefulset/db", "postgres")]
    assert db.pressure.throttled_share == 0.05 and not db.cpu_throttled
    assert db.recommended is not None
    assert db.recommended.cpu_request == max(p95("db-0"), p95("db-1")) < 100

    assert out.returncode == 0, out.stderr
    items = {i["workload"]["name"]: i for i in json.loads(out.stdout)["items"]}
    assert items["debug"]["cpuThrottled"] and items["debug"]["cpuThrottledShare"] == 0.5
    assert items["web"]["oomEvents"] == 1 and items["web"]["oomKilled"]
    assert not items["db"]["cpuThrottled"]
