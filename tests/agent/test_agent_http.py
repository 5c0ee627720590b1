"""/stats/summary and /metrics/resource over HTTPS from a running agent."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubepulse.timefmt import rfc3339
from tests.agent.conftest import Agent, start_agent
from tests.agent.fakehost import FakeHost, make_processes
from tests.support import wait_for


@pytest.fixture(scope="module")
def steady_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """An agent whose next housekeeping is far away: every request reads one reading."""
    yield from start_agent(tmp_path_factory.mktemp("agent"), "--housekeeping-interval", "1h")


def summary(agent: Agent, query: str = "") -> dict[str, Any]:
    status, body = agent.get("/stats/summary" + query)
    assert status == 200, body
    doc = json.loads(body)
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize(
    ("query", "only_cpu_and_memory"),
    [
        pytest.param("?only_cpu_and_memory=true", True, id="true"),
        pytest.param("", False, id="absent"),
        pytest.param("?only_cpu_and_memory=false", False, id="false"),
        # The kubelet compares with "true" only, and wants exactly one value
        # (pkg/kubelet/server/stats/handler.go, handleSummary).
        pytest.param("?only_cpu_and_memory=True", False, id="not-lowercase"),
        pytest.param("?only_cpu_and_memory=1", False, id="one"),
        pytest.param("?only_cpu_and_memory=true&only_cpu_and_memory=true", False, id="given-twice"),
    ],
)
def test_summary_only_cpu_and_memory_over_https(
    steady_agent: Agent, query: str, only_cpu_and_memory: bool
) -> None:
    doc = summary(steady_agent, query)

    node_keys = {"nodeName", "startTime", "cpu", "memory"}
    assert set(doc["node"]) == node_keys if only_cpu_and_memory else node_keys | {"rlimit"}
    assert doc["pods"], "this host runs processes, so it has pods"
    with_process_stats = [p for p in doc["pods"] if "process_stats" in p]
    assert (with_process_stats == []) is only_cpu_and_memory
    for pod in doc["pods"]:
        assert {"podRef", "startTime", "containers", "cpu", "memory"} <= set(pod)


def node_sample_ms(metrics: bytes) -> str:
    match = re.search(rb"^node_cpu_usage_seconds_total \S+ (\d+)$", metrics, re.MULTILINE)
    assert match, metrics
    return match.group(1).decode()


def test_requests_within_one_reading_get_the_same_answer(steady_agent: Agent) -> None:
    first = [steady_agent.get(path) for path in ("/metrics/resource", "/stats/summary")]
    again = [steady_agent.get(path) for path in ("/metrics/resource", "/stats/summary")]
    trimmed = summary(steady_agent, "?only_cpu_and_memory=true")

    assert first == again
    (_, metrics), (_, full) = first
    assert trimmed["node"]["cpu"] == json.loads(full)["node"]["cpu"]
    # One reading behind all three forms: the summary's time is the metrics' timestamp.
    assert trimmed["node"]["cpu"]["time"] == rfc3339(int(node_sample_ms(metrics)) / 1000)


def test_housekeeping_brings_a_new_reading(agent: Agent) -> None:
    before = node_sample_ms(agent.get("/metrics/resource")[1])
    wait_for(
        lambda: node_sample_ms(agent.get("/metrics/resource")[1]) != before,
        timeout=10,
        what="a reading after the next housekeeping (1s)",
    )


def fake_node(base: Path) -> FakeHost:
    """A host the agent reads through --proc-root: its mountinfo names a cgroup2 tree."""
    base.mkdir()
    host = FakeHost(base)
    host.cgroup("init.scope")
    make_processes(host)
    (host.proc_root / "self").mkdir()
    (host.proc_root / "self" / "mountinfo").write_text(
        f"26 23 0:23 / {host.cgroup_root} rw,nosuid,nodev,noexec,relatime shared:8 "
        "- cgroup2 cgroup2 rw,nsdelegate\n"
    )
    return host


def scrape_error(agent: Agent) -> tuple[str, str]:
    status, body = agent.get("/metrics/resource")
    assert status == 200
    match = re.search(rb"^resource_scrape_error (\d)$", body, re.MULTILINE)
    assert match, body
    return match.group(1).decode(), node_sample_ms(body)


@pytest.fixture
def fake_node_agent(tmp_path: Path) -> Iterator[tuple[FakeHost, Agent]]:
    host = fake_node(tmp_path / "host")
    for agent in start_agent(tmp_path, "--proc-root", str(host.proc_root)):
        yield host, agent


def test_unreadable_node_serves_scrape_error_and_the_last_reading(
    fake_node_agent: tuple[FakeHost, Agent],
) -> None:
    host, agent = fake_node_agent
    root_cpu = host.dir("") / "cpu.stat"
    good = root_cpu.read_text()
    error, last_good = scrape_error(agent)
    assert error == "0"
    assert "tmux-server-500" in {p["podRef"]["name"] for p in summary(agent)["pods"]}

    root_cpu.write_text("usage_usec unreadable\n")
    wait_for(lambda: scrape_error(agent) == ("1", last_good), timeout=10, what="scrape error")
    assert "reading node stats failed" in agent.running.log()
    assert summary(agent)["node"]["nodeName"]  # still answered, from the last reading

    root_cpu.write_text(good)
    wait_for(lambda: scrape_error(agent)[0] == "0", timeout=10, what="recovery")
    assert scrape_error(agent)[1] != last_good
