"""A kubelet that sends values no machine can have, beside a good one: the server keeps
serving, recording and showing the good one, and names what it left out."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubepulse import pki
from kubepulse.history.file import History
from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.objects import Node, NodeAddress
from kubepulse.model import Resources
from kubepulse.server.assemble import RunningServer, start_server
from kubepulse.server.auth import authenticator
from kubepulse.server.config import (
    AuthOptions,
    HistoryOptions,
    KubeletOptions,
    ServerConfig,
    ServingOptions,
)
from tests.fakeapi.kubelets import FakeKubelets

TOKEN = "admin-token-7f3c"
KUBELET_TOKEN = "kubelet-token-9d2a"
M = "/apis/metrics.k8s.io/v1beta1"


def memory_of(container: str, value: str) -> Callable[[str], str]:
    """A kubelet whose working set of one container is `value` (as a wrapped-around
    subtraction, or a broken runtime, would send it)."""
    pattern = re.compile(
        rf'(container_memory_working_set_bytes\{{container="main",namespace="[^"]*",'
        rf'pod="{container}"\}}) \S+'
    )
    return lambda text: pattern.sub(rf"\1 {value}", text)


@dataclass
class Cluster:
    server: RunningServer
    url: str
    ctx: ssl.SSLContext
    history: History


@asynccontextmanager
async def two_kubelets(
    tmp: Path, tamper: Callable[[str], str], capacity: Resources | None = None
) -> AsyncIterator[Cluster]:
    ca = pki.new_ca("kubelets")
    ca.write(tmp / "ca.crt", tmp / "ca.key")
    (tmp / "tokens.csv").write_text(f'{TOKEN},admin,1,"system:masters"\n')
    with FakeKubelets(ca, KUBELET_TOKEN) as kubelets:
        nodes = []
        for name, ip, pods, hostile in (
            ("good", "127.0.3.1", [("shop", "web-0"), ("shop", "web-1")], None),
            ("bad", "127.0.3.2", [("shop", "db-0"), ("shop", "cache-0")], tamper),
        ):
            port = kubelets.add(name, ip, pods=pods, tamper=hostile)
            nodes.append(
                Node(
                    name,
                    addresses=(NodeAddress("InternalIP", ip),),
                    kubelet_port=port,
                    capacity=capacity or Resources(),
                )
            )
        config = ServerConfig(
            metric_resolution=2.0,
            kubelet=KubeletOptions(
                request_timeout=1.0,
                certificate_authority=tmp / "ca.crt",
                use_node_status_port=True,
            ),
            serving=ServingOptions(bind_address="127.0.0.1", secure_port=0, cert_dir=tmp / "pki"),
            auth=AuthOptions(token_auth_file=tmp / "tokens.csv"),
            history=HistoryOptions(file=tmp / "history.db"),
            dashboard=True,
        )
        server = await start_server(
            config.complete(),
            StaticInventory(nodes, []),
            KUBELET_TOKEN,
            authenticator(config.auth),
        )
        try:
            ctx = ssl.create_default_context(cafile=str(tmp / "pki" / "ca.crt"))
            assert server.history is not None
            yield Cluster(server, f"https://127.0.0.1:{server.port}", ctx, server.history)
        finally:
            await server.stop()


async def until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def get(cluster: Cluster, session: aiohttp.ClientSession, path: str) -> tuple[int, Any]:
    async with session.get(cluster.url + path, ssl=cluster.ctx) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize(
    ("value", "capacity", "named"),
    [
        pytest.param(
            "1.8446744073709552e+19", None, "1.84467e+19: above 9.22e+18 bytes", id="2^64-bytes"
        ),
        pytest.param("NaN", None, "not a number", id="nan"),
        pytest.param("-4096", None, "negative (-4096)", id="negative"),
        pytest.param(
            "1e+15", Resources(4000, 16 * 2**30), "above 4x the node's capacity", id="over-4x"
        ),
    ],
)
async def test_a_kubelet_with_impossible_values_beside_a_good_one(
    tmp_path: Path, value: str, capacity: Resources | None, named: str
) -> None:
    async with two_kubelets(tmp_path, memory_of("db-0", value), capacity) as cluster:
        manager = cluster.server.manager
        store = cluster.server.store
        error = await until(lambda: manager.errors().get("bad"), "the bad node's error")
        await until(lambda: store.node("good") and store.node("bad"), "both nodes' rates")
        await until(lambda: store.pod("bad", "shop", "cache-0"), "the bad node's good pod")

        assert error[0] == "bad-values"
        assert "db-0" in error[1] and named in error[1], error
        assert "good" not in manager.errors()

        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            status, pods = await get(cluster, session, f"{M}/pods")
            assert status == 200
            served = {p["metadata"]["name"] for p in pods["items"]}
            # The bad node's other pod, and the good node's, are served; db-0 is not.
            assert served == {"web-0", "web-1", "cache-0"}
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.post(
                f"{cluster.url}/dashboard/login",
                data={"token": TOKEN},
                headers={"Origin": cluster.url},
                ssl=cluster.ctx,
                allow_redirects=False,
            ) as login:
                assert login.status in (302, 303)
            for view in ("overview", "nodes", "pods", "namespaces", "nodes/bad"):
                status, _ = await get(cluster, session, f"/dashboard/api/{view}")
                assert status == 200, view

        # The good node's history grows, cycle after cycle, whatever the bad one sends.
        def good_points() -> int:
            start = time.time() - 600
            return len(cluster.history.query("node", "", "good", "", start, time.time(), 1))

        first = await until(good_points, "the good node's history")
        await until(lambda: good_points() > first, "more of the good node's history", 20)
        assert cluster.history.stats().failed_rows == 0


async def test_a_counter_no_node_could_reach_is_left_out(tmp_path: Path) -> None:
    """100 core-hours of CPU in a container that started moments ago, on 4 cores."""
    pattern = re.compile(
        r'(container_cpu_usage_seconds_total\{container="main",namespace="shop",'
        r'pod="cache-0"\}) \S+'
    )
    tamper = lambda text: pattern.sub(r"\1 360000", text)  # noqa: E731
    async with two_kubelets(tmp_path, tamper, Resources(4000, 16 * 2**30)) as cluster:
        error = await until(lambda: cluster.server.manager.errors().get("bad"), "the error")
        assert error[0] == "bad-values"
        assert "cache-0" in error[1] and "more than 4 cores could spend" in error[1]
        await until(lambda: cluster.server.store.pod("bad", "shop", "db-0"), "db-0's rate")
        assert cluster.server.store.pod("bad", "shop", "cache-0") is None
