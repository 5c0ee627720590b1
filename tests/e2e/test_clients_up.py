"""Clients beyond kubectl get and top, against `kubepulse up`: those that list and then
watch (kubectl get -w, the Kubernetes service discovery of a Prometheus-style scraper,
Debian's victoria-metrics) and those that read the OpenAPI schemas (kubectl explain)."""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from tests.e2e import host_process
from tests.e2e.test_kubectl_up import Up, start_up
from tests.support import KUBECTL, free_port, wait_for


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("up")
    yield from start_up(tmp / "state", tmp / "up.log")


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """Each line of a child's output as it comes, read on a thread of its own."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def line_with(lines: queue.Queue[str], text: str, timeout: float = 20.0) -> str:
    seen: list[str] = []

    def found() -> str | None:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            return None
        seen.append(line)
        return line if text in line else None

    return wait_for(found, timeout=timeout, what=f"a line with {text!r} in {seen}")


def test_kubectl_get_pods_watch_shows_a_new_host_pod(up: Up) -> None:
    args = [KUBECTL, "--kubeconfig", str(up.kubeconfig), "get", "pods", "-A", "-w"]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as kc:
        try:
            assert kc.stdout is not None
            lines = lines_of(kc.stdout)
            assert line_with(lines, "NAMESPACE").split()[:3] == ["NAMESPACE", "NAME", "READY"]
            with host_process.host_process("kubectl-watched") as pid:
                row = line_with(lines, f"kubectl-watched-{pid}").split()
                assert row[0] == "host" and row[3] == "Running"
        finally:
            kc.terminate()
            _, stderr = kc.communicate(timeout=10)
    assert "error" not in stderr.lower(), stderr


def scrape_config(up: Up, tmp: Path) -> Path:
    """Roles node and pod, the server and credentials taken from up's kubeconfig."""
    kubeconfig = yaml.safe_load(up.kubeconfig.read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    ca = tmp / "ca.crt"
    ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    token = tmp / "token"
    token.write_text(kubeconfig["users"][0]["user"]["token"])
    token.chmod(0o600)

    def sd(role: str) -> dict[str, Any]:
        return {
            "role": role,
            "api_server": cluster["server"],
            "tls_config": {"ca_file": str(ca)},
            "bearer_token_file": str(token),
        }

    name = "__meta_kubernetes_pod_name"
    config = {
        "scrape_configs": [
            {"job_name": "nodes", "scrape_interval": "1h", "kubernetes_sd_configs": [sd("node")]},
            {
                "job_name": "pods",
                "scrape_interval": "1h",
                "kubernetes_sd_configs": [sd("pod")],
                "relabel_configs": [
                    {"source_labels": [name], "regex": "vm-watched-.*", "action": "keep"},
                    {"source_labels": [name], "target_label": "pod"},
                ],
            },
        ]
    }
    path = tmp / "scrape.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def targets(port: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as r:
        body = json.load(r)
    active: list[dict[str, Any]] = body["data"]["activeTargets"]
    return active


def test_victoria_metrics_kubernetes_sd_sees_a_pod_that_starts_later(
    up: Up, tmp_path: Path
) -> None:
    port = free_port()
    args = [
        "/usr/bin/victoria-metrics",
        f"-promscrape.config={scrape_config(up, tmp_path)}",
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={tmp_path / 'data'}",
        "-loggerLevel=WARN",
        # How often the discovered targets are taken up; they come from one list and a
        # watch (a full list again only every -promscrape.kubernetes.apiServerTimeout).
        "-promscrape.kubernetesSDCheckInterval=1s",
    ]
    log = (tmp_path / "vm.log").open("w")
    with subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT) as vm:
        try:

            def node_target() -> list[dict[str, Any]] | None:
                assert vm.poll() is None, (tmp_path / "vm.log").read_text()
                try:
                    found = targets(port)
                except OSError:
                    return None
                return [t for t in found if t["labels"].get("job") == "nodes"] or None

            wait_for(node_target, timeout=30, what="the node as a target")
            assert not [t for t in targets(port) if t["labels"].get("job") == "pods"]
            with host_process.host_process("vm-watched") as pid:

                def pod_target() -> dict[str, Any] | None:
                    return next(
                        (t for t in targets(port) if t["labels"].get("pod") == f"vm-watched-{pid}"),
                        None,
                    )

                wait_for(pod_target, timeout=30, what=f"pod vm-watched-{pid} as a target")
        finally:
            vm.terminate()
            vm.wait(timeout=20)
            log.close()


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("nodes", ["KIND:       Node", "VERSION:    v1", "status\t<NodeStatus>"]),
        ("pods.spec.containers", ["FIELD: containers <[]Container>", "resources\t<"]),
        ("nodemetrics", ["GROUP:      metrics.k8s.io", "KIND:       NodeMetrics", "usage\t<"]),
    ],
)
def test_kubectl_explain_reads_the_openapi_schemas(up: Up, what: str, expected: list[str]) -> None:
    out = up.kubectl("explain", what).stdout
    assert all(line in out for line in expected), out


def test_kubectl_get_raw_openapi_v3_lists_the_group_versions(up: Up) -> None:
    paths = json.loads(up.kubectl("get", "--raw", "/openapi/v3").stdout)["paths"]
    assert sorted(paths) == ["api/v1", "apis/metrics.k8s.io/v1beta1"]
    document = json.loads(up.kubectl("get", "--raw", paths["api/v1"]["serverRelativeURL"]).stdout)
    assert document["openapi"].startswith("3.")
    assert "io.k8s.api.core.v1.Pod" in document["components"]["schemas"]
