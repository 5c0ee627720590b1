"""The audit log of a real `kubepulse server`: kubectl's `top` and `get --raw` requests
recorded as kube-apiserver records them, at the levels of a policy with several rules,
to a file and to a webhook receiver on loopback; no token in any event."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from kubepulse import pki
from kubepulse.cli.up import kubeconfig
from tests.fakeapi import objects
from tests.fakeapi.kubelets import FakeKubelets
from tests.server.fleet import SERVER_TOKEN, M, node, server_args
from tests.support import KUBECTL, KUBEPULSE, free_port, run_kubepulse, wait_for, wait_serving

KUBELET_TOKEN = "kubelet-token-77aa"
WEBHOOK_TOKEN = "webhook-token-3b9e"
BAD = "not-a-token-5d2c"
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "rules": [
        {"level": "None", "nonResourceURLs": ["/livez", "/readyz*", "/healthz*"]},
        {
            "level": "RequestResponse",
            "users": ["admin"],
            "verbs": ["list"],
            "resources": [{"group": "metrics.k8s.io", "resources": ["pods"]}],
        },
        {
            "level": "Metadata",
            "resources": [{"group": "metrics.k8s.io", "resources": ["nodes", "nodes/*"]}],
            "omitStages": ["RequestReceived"],
        },
        {"level": "Request", "userGroups": ["system:masters"], "nonResourceURLs": ["/api*"]},
    ],
}


@contextmanager
def audited_server(tmp: Path, *audit: str) -> Iterator[tuple[int, Path]]:
    """A server scraping one kubelet with one pod, its audit policy POLICY; yields its
    port and a kubeconfig for kubectl with the admin's token."""
    tmp.mkdir(exist_ok=True)
    ca = pki.new_ca("kubelet-ca")
    with FakeKubelets(ca, KUBELET_TOKEN) as kubelets:
        kubelet_port = kubelets.add("node-a", "127.0.0.2", pods=[("default", "web-1")])
        items = [
            node("node-a", "127.0.0.2", kubelet_port),
            objects.pod("default", "web-1", "node-a"),
        ]
        (tmp / "targets.yaml").write_text(yaml.safe_dump({"kind": "List", "items": items}))
        (tmp / "kubelet-ca.crt").write_bytes(ca.cert_pem())
        (tmp / "kubelet-token").write_text(KUBELET_TOKEN)
        (tmp / "policy.yaml").write_text(yaml.safe_dump(POLICY))
        port = free_port()
        args = [
            *server_args(tmp, port),
            "--kubelet-certificate-authority", str(tmp / "kubelet-ca.crt"),
            "--kubelet-token-file", str(tmp / "kubelet-token"),
            "--kubelet-use-node-status-port",
            "--metric-resolution", "2s", "--kubelet-request-timeout", "1s",
            "--audit-policy-file", str(tmp / "policy.yaml"),
            *audit,
        ]  # fmt: skip
        with run_kubepulse(args, tmp / "server.log") as running:
            wait_serving(running, port)
            config = tmp / "admin.kubeconfig"
            url = f"https://127.0.0.1:{port}"
            config.write_text(kubeconfig(url, (tmp / "pki" / "ca.crt").read_bytes(), SERVER_TOKEN))
            yield port, config


def kubectl(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(config), *argv], capture_output=True, text=True, timeout=60
    )


def list_nodes(config: Path, times: int) -> None:
    for _ in range(times):
        done = kubectl(config, "get", "--raw", f"{M}/nodes")
        assert done.returncode == 0, done.stderr


def top_pods(config: Path) -> str:
    def answered() -> str | None:
        done = kubectl(config, "top", "pod", "-n", "default")
        return done.stdout if done.returncode == 0 and "web-1" in done.stdout else None

    return wait_for(answered, what="kubectl top pod")


def test_kubectl_requests_are_recorded_at_the_levels_the_policy_gives(tmp_path: Path) -> None:
    log_path = tmp_path / "audit" / "audit.log"
    with audited_server(tmp_path, "--audit-log-path", str(log_path)) as (port, config):
        top_pods(config)
        raw = kubectl(config, "get", "--raw", f"{M}/nodes/node-a")
        assert raw.returncode == 0, raw.stderr
        ctx = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.crt"))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/livez", context=ctx) as resp:
            assert resp.headers["Audit-Id"]  # every answer names its audit ID
        wrong = urllib.request.Request(
            f"https://127.0.0.1:{port}{M}/nodes", headers={"Authorization": f"Bearer {BAD}"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(wrong, context=ctx)
        assert refused.value.code == 401
        lines = log_path.read_text().splitlines()
        events = [json.loads(line) for line in lines]
    text = log_path.read_text()
    assert SERVER_TOKEN not in text and BAD not in text and "Authorization" not in text
    # A failed authentication is recorded without a user, with the Status it got.
    (unauthorized,) = [e for e in events if e.get("responseStatus", {}).get("code") == 401]
    assert unauthorized["user"] == {} and unauthorized["level"] == "Metadata"
    assert unauthorized["responseStatus"]["reason"] == "Unauthorized"
    events = [e for e in events if e is not unauthorized]
    assert log_path.stat().st_mode & 0o777 == 0o600
    assert not [e for e in events if e["requestURI"].startswith("/livez")]  # level None
    for e in events:
        assert (e["kind"], e["apiVersion"]) == ("Event", "audit.k8s.io/v1")
        groups = ["system:masters", "system:authenticated"]
        assert e["user"] == {"username": "admin", "uid": "1", "groups": groups}
        assert e["sourceIPs"] == ["127.0.0.1"] and e["userAgent"].startswith("kubectl")
        assert MICRO_TIME.match(e["requestReceivedTimestamp"])
        assert MICRO_TIME.match(e["stageTimestamp"])
    by_id: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_id.setdefault(e["auditID"], []).append(e)

    pods = [e for e in events if e["requestURI"].startswith(f"{M}/namespaces/default/pods")]
    listed = by_id[pods[-1]["auditID"]]
    assert [e["stage"] for e in listed] == ["RequestReceived", "ResponseComplete"]
    received, complete = listed
    assert received["level"] == complete["level"] == "RequestResponse"
    assert complete["verb"] == "list"
    assert complete["objectRef"] == {
        "resource": "pods",
        "namespace": "default",
        "apiGroup": "metrics.k8s.io",
        "apiVersion": "v1beta1",
    }
    assert complete["responseStatus"] == {"metadata": {}, "code": 200}
    assert complete["responseObject"]["kind"] == "PodMetricsList"
    assert [p["metadata"]["name"] for p in complete["responseObject"]["items"]] == ["web-1"]
    assert "responseStatus" not in received and "responseObject" not in received

    nodes = [e for e in events if e["requestURI"] == f"{M}/nodes/node-a"]
    assert [(e["stage"], e["level"], e["verb"]) for e in nodes] == [
        ("ResponseComplete", "Metadata", "get")
    ]
    assert nodes[0]["objectRef"]["name"] == "node-a" and "responseObject" not in nodes[0]

    discovery = [e for e in events if e["requestURI"] in ("/api", "/apis", "/api?timeout=32s")]
    assert discovery and all(e["level"] == "Request" and e["verb"] == "get" for e in discovery)
    assert all("objectRef" not in e for e in discovery)


def test_the_legacy_format_is_one_line_per_stage(tmp_path: Path) -> None:
    log_path = tmp_path / "audit.log"
    with audited_server(
        tmp_path, "--audit-log-path", str(log_path), "--audit-log-format", "legacy"
    ) as (_, config):
        assert kubectl(config, "get", "--raw", f"{M}/nodes").returncode == 0
        lines = log_path.read_text().splitlines()
    line = next(line for line in lines if f'uri="{M}/nodes"' in line)
    assert re.match(
        r'^\S+Z AUDIT: id="[0-9a-f-]{36}" stage="ResponseComplete" ip="127.0.0.1" '
        r'method="list" user="admin" groups="\\"system:masters\\",\\"system:authenticated\\"" '
        r'as="<self>" '
        r'asgroups="<lookup>" user-agent="kubectl[^"]*" namespace="<none>" '
        rf'uri="{M}/nodes" response="200"$',
        line,
    ), line


@dataclass
class Receiver:
    kubeconfig: Path
    batches: list[Any]
    """The EventLists it took."""
    authorizations: list[str]
    """The Authorization header of every POST."""
    arrivals: list[float]
    """When each POST came (time.monotonic())."""


@contextmanager
def webhook_receiver(tmp: Path, fail_first: int) -> Iterator[Receiver]:
    """An HTTPS receiver on loopback; its first fail_first POSTs get a 503."""
    ca = pki.new_ca("webhook-ca")
    serving = pki.issue(ca, "127.0.0.1", ips=[ip_address("127.0.0.1")])
    serving.write(tmp / "webhook.crt", tmp / "webhook.key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "webhook.crt", tmp / "webhook.key")
    batches: list[Any] = []
    authorizations: list[str] = []
    arrivals: list[float] = []
    posts = [0]

    async def take(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        authorizations.append(request.headers.get("Authorization", ""))
        posts[0] += 1
        if posts[0] <= fail_first:
            return web.Response(status=503)
        batches.append(await request.json())
        return web.Response(status=200)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app = web.Application()
    app.router.add_post("/audit", take)
    runner = web.AppRunner(app)
    port = free_port()

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(20)
    config = tmp / "webhook.kubeconfig"
    config.write_text(kubeconfig(f"https://127.0.0.1:{port}/audit", ca.cert_pem(), WEBHOOK_TOKEN))
    try:
        yield Receiver(config, batches, authorizations, arrivals)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_a_webhook_gets_the_events_in_batches_after_a_backoff(tmp_path: Path) -> None:
    with webhook_receiver(tmp_path, fail_first=1) as receiver:
        hook, batches, authorizations = (
            receiver.kubeconfig,
            receiver.batches,
            receiver.authorizations,
        )
        batching = ("--audit-webhook-batch-max-size=3", "--audit-webhook-batch-max-wait=500ms")
        with audited_server(
            tmp_path, *batching, "--audit-webhook-config-file", str(hook),
            "--audit-webhook-initial-backoff", "200ms",
        ) as (_, config):  # fmt: skip
            list_nodes(config, 4)

            def delivered() -> list[dict[str, Any]] | None:
                items = [e for b in batches for e in b["items"]]
                found = [e for e in items if e["requestURI"] == f"{M}/nodes"]
                return items if len(found) == 4 else None

            items = wait_for(delivered, what="four list events at the webhook")
        assert all(
            (b["kind"], b["apiVersion"]) == ("EventList", "audit.k8s.io/v1") for b in batches
        )
        assert all(1 <= len(b["items"]) <= 3 for b in batches)
        assert len(batches) >= 2
        # The first POST was refused and the same batch came again.
        assert len(authorizations) == len(batches) + 1
        assert set(authorizations) == {f"Bearer {WEBHOOK_TOKEN}"}
        assert len({e["auditID"] for e in items}) == len(items)
        assert SERVER_TOKEN not in json.dumps(batches)


def test_a_bad_policy_or_mode_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "targets.yaml").write_text(
        yaml.safe_dump({"kind": "List", "items": [node("a", "127.0.0.9", 1)]})
    )
    (tmp_path / "policy.yaml").write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n")
    base = [*server_args(tmp_path, free_port()), "--audit-log-path", "-"]
    for extra, said in (
        (["--audit-policy-file", str(tmp_path / "policy.yaml")], "the policy has no rules"),
        (["--audit-log-mode", "sometimes"], "--audit-log-mode: unknown mode 'sometimes'"),
        (["--audit-log-version", "audit.k8s.io/v1beta1"], "only audit.k8s.io/v1 is known"),
    ):
        done = subprocess.run(
            [*KUBEPULSE, *base, *extra], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1
        assert done.stderr.startswith("error: ") and said in done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr


def test_dash_writes_the_events_to_standard_output(tmp_path: Path) -> None:
    with audited_server(tmp_path, "--audit-log-path", "-") as (_, config):
        assert kubectl(config, "get", "--raw", f"{M}/nodes").returncode == 0
        log = tmp_path / "server.log"

        def event_line() -> str | None:
            lines = [line for line in log.read_text().splitlines() if '"kind":"Event"' in line]
            return lines[0] if lines else None

        assert json.loads(wait_for(event_line, what="an event on stdout"))["verb"] == "list"


def test_blocking_strict_fails_a_request_whose_events_cannot_be_sent(tmp_path: Path) -> None:
    with webhook_receiver(tmp_path, fail_first=1000) as receiver:
        hook, batches, authorizations = (
            receiver.kubeconfig,
            receiver.batches,
            receiver.authorizations,
        )
        for mode, code in (("blocking", 0), ("blocking-strict", 1)):
            with audited_server(
                tmp_path / mode,
                "--audit-webhook-config-file", str(hook),
                "--audit-webhook-mode", mode,
                "--audit-webhook-initial-backoff", "10ms",
            ) as (_, config):  # fmt: skip
                done = kubectl(config, "get", "--raw", f"{M}/nodes")
                assert done.returncode == code, done.stderr
                if code:
                    assert "Internal error occurred: audit webhook" in done.stderr
        assert batches == [] and len(authorizations) >= 10  # five tries per request


def test_throttled_batches_go_out_at_most_qps_a_second(tmp_path: Path) -> None:
    throttled = ("--audit-webhook-batch-throttle-qps=4", "--audit-webhook-batch-throttle-burst=1")
    with webhook_receiver(tmp_path, fail_first=0) as receiver, audited_server(
        tmp_path, *throttled, "--audit-webhook-config-file", str(receiver.kubeconfig),
        "--audit-webhook-batch-max-size=1", "--audit-webhook-batch-max-wait=0s",
    ) as (_, config):  # fmt: skip
        list_nodes(config, 4)
        wait_for(lambda: len(receiver.batches) >= 4, what="four batches")
    gaps = [b - a for a, b in zip(receiver.arrivals, receiver.arrivals[1:], strict=False)]
    assert all(len(b["items"]) == 1 for b in receiver.batches)
    # One batch at once (burst 1), then one every 1/4 s: never two within 0.2 s once the
    # connection is up (the first batch also waited for the TLS handshake).
    assert len(gaps) >= 3 and min(gaps[1:]) >= 0.2, gaps
