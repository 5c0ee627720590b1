"""The official Python client (`kubernetes` on PyPI) against `kubepulse up`."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator

import pytest
from kubernetes import client, config, watch
from urllib3.exceptions import ProtocolError

from tests.e2e import host_process
from tests.e2e.test_kubectl_up import HOST, Up, start_up


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("up")
    yield from start_up(tmp / "state", tmp / "up.log")


@pytest.fixture(scope="module")
def api(up: Up) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(str(up.kubeconfig)) as api_client:
        yield api_client


def test_discovery_with_trailing_slashes_answers(api: client.ApiClient) -> None:
    # The client asks /version/, /api/, /apis/ and /api/v1/ with the slash.
    assert client.VersionApi(api).get_code().major == "1"
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = client.ApisApi(api).get_api_versions().groups
    assert [g.name for g in groups] == ["metrics.k8s.io"]
    resources = client.CoreV1Api(api).get_api_resources().resources
    assert {r.name for r in resources} >= {"nodes", "pods", "namespaces"}


def test_list_node_and_pods_for_all_namespaces(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    nodes = core.list_node()
    assert [n.metadata.name for n in nodes.items] == [HOST]
    assert nodes.metadata.resource_version
    pods = core.list_pod_for_all_namespaces()
    assert pods.items and all(p.spec.node_name == HOST for p in pods.items)
    assert {p.metadata.namespace for p in pods.items} >= {"host"}


def test_custom_objects_reads_both_metrics_kinds(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    nodes = custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
    assert nodes["kind"] == "NodeMetricsList"
    assert [n["metadata"]["name"] for n in nodes["items"]] == [HOST]
    assert nodes["items"][0]["usage"]["memory"].endswith("Ki")
    pods = custom.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", "host", "pods")
    assert pods["kind"] == "PodMetricsList"
    assert pods["items"] and all(p["metadata"]["namespace"] == "host" for p in pods["items"])
    one = pods["items"][0]["metadata"]["name"]
    got = custom.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", "host", "pods", one)
    assert got["kind"] == "PodMetrics" and got["containers"]


def test_a_pod_watch_sees_a_host_process_start_and_end(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    events: queue.Queue[tuple[str, str]] = queue.Queue()
    stream = watch.Watch()

    def consume() -> None:
        with contextlib.suppress(ProtocolError):  # `up` stops at the module's end
            for event in stream.stream(core.list_namespaced_pod, "host", timeout_seconds=60):
                events.put((event["type"], event["object"].metadata.name))

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    try:
        with host_process.host_process("py-watched") as pid:
            pod = f"py-watched-{pid}"
            expect(events, ("ADDED", pod))
        expect(events, ("DELETED", pod))
    finally:
        stream.stop()


def expect(events: queue.Queue[tuple[str, str]], wanted: tuple[str, str]) -> None:
    deadline = time.monotonic() + 20
    while (left := deadline - time.monotonic()) > 0:
        try:
            if events.get(timeout=left) == wanted:
                return
        except queue.Empty:
            break
    raise AssertionError(f"no {wanted} event within 20 s")
