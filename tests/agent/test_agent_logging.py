"""The kubelet's logging flags on a real `kubepulse agent`: -v and --logging-format."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agent.conftest import Agent, start_agent
from tests.support import wait_for


def logged(agent: Agent) -> list[dict[str, object]]:
    """The agent's log lines as JSON, without the line the command prints on stdout."""
    lines = agent.running.log().splitlines()
    return [json.loads(line) for line in lines if line and not line.startswith("kubepulse agent:")]


def test_json_at_v4_logs_each_request_with_klogs_keys_and_no_token(tmp_path: Path) -> None:
    for agent in start_agent(tmp_path, "--logging-format=json", "-v=4"):
        assert agent.get("/metrics/resource")[0] == 200

        def request_line(agent: Agent = agent) -> dict[str, object] | None:
            found = [r for r in logged(agent) if r.get("URI") == "/metrics/resource"]
            return found[0] if found else None

        line = wait_for(request_line, what="the request's line")
        assert (line["v"], line["verb"], line["resp"]) == (4, "GET", 200)
        assert str(line["msg"]).startswith("HTTP GET /metrics/resource 200")
        assert all({"ts", "v", "msg"} <= r.keys() for r in logged(agent))
        assert agent.token not in agent.running.log()


def test_v0_logs_no_request(tmp_path: Path) -> None:
    for agent in start_agent(tmp_path, "-v=0"):
        assert agent.get("/metrics/resource")[0] == 200
        assert agent.get("/healthz", token=None)[0] == 200
        assert agent.get("/metrics/resource", token="wrong")[0] == 401
        assert "HTTP GET" not in agent.running.log()
