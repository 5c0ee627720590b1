"""The real kubectl (v1.32) against `kubepulse up` on this host."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from kubepulse.history.file import History
from tests.e2e import host_process
from tests.support import KUBECTL, KUBEPULSE, Running, free_port, run_kubepulse, wait_for

HOST = os.environ.get("KUBEPULSE_NODE_NAME") or socket.gethostname()


@dataclass
class Up:
    state_dir: Path
    port: int
    running: Running
    started: float
    serving: float
    first_metrics: float

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result


def start_up(state_dir: Path, log: Path, *extra: str) -> Iterator[Up]:
    port = free_port()
    args = [
        "up",
        "--state-dir",
        str(state_dir),
        "--port",
        str(port),
        "--agent-port",
        str(free_port()),
        *extra,
    ]
    started = time.monotonic()
    with run_kubepulse(args, log) as running:

        def serving() -> float | None:
            if running.proc.poll() is not None:
                raise AssertionError(f"kubepulse up exited: {running.log()}")
            return time.monotonic() if "kubepulse is up" in running.log() else None

        serving_at = wait_for(serving, timeout=30, what="kubepulse up to serve")
        up = Up(state_dir, port, running, started, serving_at, 0.0)

        def metrics() -> float | None:
            raw = up.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes", check=False)
            return time.monotonic() if raw.returncode == 0 and HOST in raw.stdout else None

        up.first_metrics = wait_for(metrics, timeout=30, what="node metrics")
        yield up


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("up")
    yield from start_up(tmp / "state", tmp / "up.log")


def table(output: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in output.splitlines() if line.strip()]
    return re.split(r"\s{2,}", lines[0].strip()), [
        re.split(r"\s{2,}", x.strip()) for x in lines[1:]
    ]


def millicores(text: str) -> int:
    return int(text.removesuffix("m"))


def mebibytes(text: str) -> int:
    return int(text.removesuffix("Mi"))


def test_metrics_are_served_within_two_seconds_of_the_api(up: Up) -> None:
    assert up.first_metrics - up.serving < 2.0


def test_top_nodes_shows_this_host_with_real_usage(up: Up) -> None:
    header, rows = table(up.kubectl("top", "nodes").stdout)
    assert header == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    row = next(r for r in rows if r[0] == HOST)
    assert millicores(row[1]) > 0
    assert mebibytes(row[3]) > 0
    assert row[2].endswith("%") and row[4].endswith("%")


BURNER = "e2e-burner"


@pytest.fixture
def burner() -> Iterator[int]:
    """A busy process of its own, detached (double fork) so that it is a top-level
    process tree and so a pod of its own, whatever the tree that runs the tests does.
    It names itself (its comm) BURNER, so its pod is BURNER-<pid>."""
    burn = (
        "block = bytearray(b'\\x01' * (32 << 20))\n"
        "while True:\n"
        "    block[0] = (block[0] + 1) % 256\n"
    )
    with host_process.host_process(BURNER, burn) as pid:
        yield pid


def test_top_pods_all_namespaces_shows_the_busy_burner_pod(up: Up, burner: int) -> None:
    # A process tree's pod is named after its root's command and pid (agent/workloads.py).
    pod = f"{BURNER}-{burner}"

    def burner_row() -> list[str] | None:
        header, rows = table(up.kubectl("top", "pods", "-A").stdout)
        assert header == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
        assert all(mebibytes(r[3]) >= 0 for r in rows)
        return next((r for r in rows if r[:2] == ["host", pod] and millicores(r[2]) > 0), None)

    # The burner is measured from its second scrape on (a new pod needs two points).
    row = wait_for(burner_row, timeout=30, what=f"pod host/{pod} with CPU in use")
    assert mebibytes(row[3]) >= 32  # the 32 MiB block it holds


# A spawner under init that starts top-level trees one after another, each of which
# burns a core for 2 s in a child and ends: init reaps every one of them, so its cutime
# rises by 2 s each time.
ENDING_TREES = (
    "import os, time\n"
    "pid = os.fork()\n"
    "if pid:\n"
    "    print(pid, flush=True)\n"
    "    os._exit(0)\n"
    "os.setsid()\n"
    "null = os.open(os.devnull, os.O_RDWR)\n"
    "for fd in (0, 1, 2):\n"
    "    os.dup2(null, fd)\n"
    "while True:\n"
    "    if os.fork() == 0:\n"
    "        if os.fork():\n"
    "            os._exit(0)\n"
    "        child = os.fork()\n"
    "        if child == 0:\n"
    "            while time.process_time() < 2.0: pass\n"
    "            os._exit(0)\n"
    "        os.waitpid(child, 0)\n"
    "        os._exit(0)\n"
    "    os.wait()\n"
    "    time.sleep(2.5)  # the load's own rhythm, not a wait for anything\n"
)


@pytest.fixture
def ending_trees() -> Iterator[int]:
    out = subprocess.run(
        [sys.executable, "-c", ENDING_TREES], capture_output=True, text=True, timeout=30
    )
    pid = int(out.stdout.strip())
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)


def test_top_never_shows_a_pod_above_the_nodes_cores_on_a_busy_host(
    tmp_path: Path, burner: int, ending_trees: int
) -> None:
    gen = start_up(tmp_path / "state", tmp_path / "up.log", "--metric-resolution", "2s")
    up = next(gen)
    try:
        node = json.loads(up.kubectl("get", "node", HOST, "-o", "json").stdout)
        cores = int(node["status"]["capacity"]["cpu"])
        scrapes = 0
        last_stamp = ""
        deadline = time.monotonic() + 120
        while scrapes < 15 and time.monotonic() < deadline:
            raw = up.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/nodes/{HOST}")
            stamp = json.loads(raw.stdout)["timestamp"]
            if stamp == last_stamp:
                continue  # the same scrape as the last look
            last_stamp = stamp
            _, pods = table(up.kubectl("top", "pods", "-A").stdout)
            _, nodes = table(up.kubectl("top", "nodes").stdout)
            pod_cpu = {f"{r[0]}/{r[1]}": millicores(r[2]) for r in pods}
            node_cpu = millicores(nodes[0][1])
            assert max(pod_cpu.values()) <= cores * 1000 * 1.05, pod_cpu
            # The pods' and the node's figures are moments apart: 10% and 50m of room.
            assert sum(pod_cpu.values()) <= node_cpu * 1.1 + 50, (node_cpu, pod_cpu)
            scrapes += 1
        assert scrapes == 15, f"only {scrapes} scrapes in 120 s"
    finally:
        gen.close()


def test_top_pods_containers(up: Up) -> None:
    header, rows = table(up.kubectl("top", "pods", "-A", "--containers").stdout)
    assert header == ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert any(mebibytes(r[4]) > 0 for r in rows)


def test_get_nodes_and_pods(up: Up) -> None:
    header, rows = table(up.kubectl("get", "nodes").stdout)
    assert header == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [r[:2] for r in rows] == [[HOST, "Ready"]]
    header, rows = table(up.kubectl("get", "pods", "-A", "-o", "wide").stdout)
    assert header[:6] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert any(r[0] == "host" and r[3] == "Running" for r in rows)
    pods = json.loads(up.kubectl("get", "pods", "-A", "-o", "json").stdout)
    assert pods["kind"] == "List" or pods["kind"] == "PodList"
    assert all(p["spec"]["nodeName"] == HOST for p in pods["items"])


def test_get_raw_node_metrics(up: Up) -> None:
    body = json.loads(up.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").stdout)
    assert body["kind"] == "NodeMetricsList"
    item = next(i for i in body["items"] if i["metadata"]["name"] == HOST)
    assert re.fullmatch(r"[0-9]+[num]?", item["usage"]["cpu"])
    assert re.fullmatch(r"[0-9]+(Ki|Mi|Gi)?", item["usage"]["memory"])
    assert item["window"].endswith("s")


def test_get_node_metrics_table(up: Up) -> None:
    header, rows = table(up.kubectl("get", "nodes.metrics.k8s.io").stdout)
    assert header == ["NAME", "CPU", "MEMORY", "WINDOW"]
    assert rows[0][0] == HOST


def test_protobuf_only_client_gets_406(up: Up) -> None:
    result = up.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes", "-v=0", check=False)
    assert result.returncode == 0  # kubectl's own request carries JSON as a fallback
    import ssl
    import urllib.error
    import urllib.request

    token = (up.state_dir / "tokens.csv").read_text().split(",")[0]
    ctx = ssl.create_default_context(cafile=str(up.state_dir / "pki" / "ca.crt"))
    request = urllib.request.Request(
        f"https://127.0.0.1:{up.port}/apis/metrics.k8s.io/v1beta1/nodes",
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.kubernetes.protobuf",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, context=ctx, timeout=10)
    assert err.value.code == 406
    assert json.loads(err.value.read())["reason"] == "NotAcceptable"


def test_kubectl_auth_asks_kubepulse_who_and_what(up: Up) -> None:
    # Both reviews go out as protobuf; kubepulse reads them and answers in JSON.
    whoami = up.kubectl("auth", "whoami", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"]
    for asked in (["list", "pods", "-A"], ["get", "/metrics"]):
        can_i = up.kubectl("auth", "can-i", *asked, check=False)
        # kubepulse up's own user may do what its API serves: kubectl prints yes, exits 0.
        assert (can_i.returncode, can_i.stdout.strip()) == (0, "yes"), can_i.stderr
    # Its API is read-only: a write is "no", with why, and kubectl exits 1.
    can_i = up.kubectl("auth", "can-i", "delete", "nodes", check=False)
    assert (can_i.returncode, can_i.stdout.strip()) == (
        1,
        "no - kubepulse serves a read-only API: it cannot delete nodes",
    ), can_i.stderr


def test_wrong_token_is_refused(up: Up) -> None:
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", str(up.kubeconfig), "--token", "nope", "top", "nodes"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    # kubectl's own wording for a 401 from any API server.
    assert "You must be logged in to the server" in result.stderr


def test_sigterm_stops_cleanly_and_a_second_up_reuses_the_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    gen = start_up(state, tmp_path / "first.log")
    first = next(gen)
    ca_before = (state / "pki" / "ca.crt").read_bytes()
    token_before = (state / "tokens.csv").read_text()
    first.running.proc.send_signal(signal.SIGTERM)
    assert first.running.proc.wait(timeout=20) == 0
    assert "Traceback" not in first.running.log()
    gen.close()

    gen = start_up(state, tmp_path / "second.log")
    second = next(gen)
    try:
        assert (state / "pki" / "ca.crt").read_bytes() == ca_before
        assert (state / "tokens.csv").read_text() == token_before
        assert HOST in second.kubectl("top", "nodes").stdout
    finally:
        gen.close()


def test_sigterm_the_moment_up_says_it_is_up_is_a_clean_stop(tmp_path: Path) -> None:
    command = [*KUBEPULSE, "up", "--state-dir", str(tmp_path / "state")]
    command += ["--port", str(free_port()), "--agent-port", str(free_port())]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()  # blocks until up prints, or exits
        if first.startswith("kubepulse is up"):
            proc.send_signal(signal.SIGTERM)  # no delay: as a script waiting for it would
        try:
            code = proc.wait(timeout=30)
        finally:
            proc.kill()
        stderr = proc.stderr.read()
    assert first.startswith("kubepulse is up"), stderr
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_usage_series_are_served_for_prometheus(up: Up) -> None:
    def node_line() -> str | None:
        text = up.kubectl("get", "--raw", "/metrics/usage").stdout
        return next(
            (x for x in text.splitlines() if x.startswith("kubepulse_node_cpu_usage_nanocores{")),
            None,
        )

    line = wait_for(node_line, timeout=30, what="the node's CPU series")
    assert f'node="{HOST}"' in line and float(line.rsplit(" ", 1)[1]) > 0


def test_history_is_recorded_and_kept_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    gen = start_up(state, tmp_path / "first.log")
    first = next(gen)
    started = time.time()
    # Two points make a rate; the history records the rates the API serves.
    assert (state / "history.db").exists()
    first.running.proc.send_signal(signal.SIGTERM)
    assert first.running.proc.wait(timeout=20) == 0
    gen.close()

    history = History(state / "history.db")  # up has stopped: this is the only writer
    try:
        points = history.query("node", "", HOST, "", started - 60, time.time() + 1, 1)
        assert points, "no history of this host after kubepulse up served it"
        assert all(p.cpu_nanocores > 0 and p.memory_bytes > 0 for p in points)
    finally:
        history.close()


def test_the_dashboard_signs_in_with_the_kubeconfigs_token(up: Up) -> None:
    config = yaml.safe_load(up.kubeconfig.read_text())
    token = config["users"][0]["user"]["token"]
    base = config["clusters"][0]["cluster"]["server"]
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    context = ssl.create_default_context(cadata=ca.decode())

    async def visit() -> tuple[int, int, int, dict[str, Any], str]:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.get(f"{base}/dashboard/api/overview", ssl=context) as before:
                unauthenticated = before.status
            async with session.post(
                f"{base}/dashboard/login",
                data={"token": "not-the-token"},
                headers={"Origin": base},
                ssl=context,
            ) as refused:
                wrong = refused.status
            async with session.post(
                f"{base}/dashboard/login",
                data={"token": token},
                headers={"Origin": base},
                ssl=context,
                allow_redirects=False,
            ) as login:
                signed_in = login.status
            async with session.get(f"{base}/dashboard/api/overview", ssl=context) as after:
                hsts = after.headers.get("Strict-Transport-Security", "")
                found = await after.json()
            # The page's live updates: an EventSource asks for text/event-stream only, and
            # gets an event as each of up's scrape cycles is ready.
            async with session.get(
                f"{base}/dashboard/api/cycles",
                headers={"Accept": "text/event-stream"},
                ssl=context,
                timeout=aiohttp.ClientTimeout(total=60),
            ) as events:
                assert events.status == 200, await events.text()
                assert events.content_type == "text/event-stream"
                async with asyncio.timeout(60):
                    while (line := await events.content.readline()) != b"event: cycle\n":
                        assert line, "the stream ended before a cycle"
            return unauthenticated, wrong, signed_in, found, hsts

    unauthenticated, wrong, signed_in, overview, hsts = asyncio.run(visit())
    assert hsts == "max-age=31536000"  # served over HTTPS: browsers keep to it
    assert unauthenticated == 401
    assert wrong == 401
    assert signed_in in (302, 303)
    assert HOST in json.dumps(overview)
