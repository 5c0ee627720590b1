"""klog's logging flags on a real `kubepulse server` scraping real agents: -v,
--vmodule, --logging-format=json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.server.fleet import SERVER_TOKEN, Agent, Files, M, Server, start_server
from tests.support import wait_for

TICKS = re.compile(r"^kubepulse_manager_tick_duration_seconds_count (\S+)$", re.M)


def ticks(server: Server) -> int:
    status, body = server.get("/metrics")
    assert status == 200, body
    found = TICKS.search(body.decode())
    return int(float(found.group(1))) if found else 0


def log_lines(server: Server) -> list[str]:
    """The server's log, without the one line the command prints (where it serves)."""
    return [
        line
        for line in server.running.log().splitlines()
        if line and not line.startswith("kubepulse server: https://")
    ]


def test_json_at_v4_is_one_object_a_line_with_klogs_keys(
    tmp_path: Path, files: Files, agents: dict[str, Agent]
) -> None:
    with start_server(tmp_path, files, agents, "--logging-format=json", "-v=4") as server:
        wait_for(lambda: len(server.node_names()) == 2, what="both nodes served")

        def logged() -> list[dict[str, object]]:
            return [json.loads(line) for line in log_lines(server)]

        def per_request_and_scrape() -> list[dict[str, object]] | None:
            found = logged()
            requests = [r for r in found if r.get("URI") == f"{M}/nodes"]
            scrapes = [r for r in found if r.get("node") == "node-a" and "duration" in r]
            cycles = [r for r in found if str(r["msg"]).startswith("scrape cycle")]
            return found if requests and scrapes and cycles else None

        lines = wait_for(per_request_and_scrape, what="request and scrape lines")
    for line in lines:
        assert {"ts", "v", "msg", "caller"} <= line.keys(), line
        assert isinstance(line["ts"], float) and line["ts"] > 1.7e12  # milliseconds
        assert isinstance(line["v"], int)
    request = next(r for r in lines if r.get("URI") == f"{M}/nodes")
    assert (request["v"], request["verb"], request["resp"], request["user"]) == (
        4,
        "GET",
        200,
        "admin",
    )
    assert next(r for r in lines if str(r["msg"]).startswith("scrape cycle"))["v"] == 2
    assert SERVER_TOKEN not in server.running.log()


def test_v0_is_quiet_at_steady_state(
    tmp_path: Path, files: Files, agents: dict[str, Agent]
) -> None:
    with start_server(tmp_path, files, agents, "-v=0") as server:
        wait_for(lambda: len(server.node_names()) == 2, what="both nodes served")
        settled = ticks(server)
        before = log_lines(server)
        # Three more scrape cycles (2 s each), and requests served meanwhile.
        wait_for(lambda: ticks(server) >= settled + 3 and server.node_names(), timeout=30)
        assert log_lines(server) == before


def test_vmodule_raises_the_verbosity_of_matching_files_only(
    tmp_path: Path, files: Files, agents: dict[str, Agent]
) -> None:
    with start_server(tmp_path, files, agents, "--vmodule=manage*=4") as server:
        wait_for(lambda: len(server.node_names()) == 2, what="both nodes served")
        wait_for(lambda: "scraped node node-b in" in server.running.log(), what="scrape lines")
        assert " HTTP GET " not in server.running.log()  # httplog.py stays at -v=0
