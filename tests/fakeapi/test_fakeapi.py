"""The fake kube-apiserver is real enough: kubectl 1.32 uses it, and every answer has the
shape, status code and Status body kube-apiserver gives."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubepulse import pki
from tests.fakeapi import objects
from tests.fakeapi.fixtures import kubectl, until
from tests.fakeapi.server import CSR_PREFIX, FakeKubeAPI

PROTOBUF_FIRST = "application/vnd.kubernetes.protobuf,application/json"


def csr_request_pem(common_name: str = "system:node:worker-1") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


# ----- kubectl


@pytest.mark.parametrize(
    ("args", "expected_lines"),
    [
        (
            ["get", "nodes"],
            [
                ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
                ["control-plane", "Ready", "control-plane", "*", objects.KUBELET_VERSION],
                ["worker-1", "Ready", "<none>", "*", objects.KUBELET_VERSION],
            ],
        ),
        (
            ["get", "pods", "-A"],
            [
                ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
                ["default", "web-1", "1/1", "Running", "0", "*"],
                ["kube-system", "coredns-7db6d8ff4d-x2x9p", "1/1", "Running", "0", "*"],
                ["kube-system", "etcd-control-plane", "1/1", "Running", "0", "*"],
            ],
        ),
        (
            ["get", "pods", "-A", "--field-selector", "spec.nodeName=worker-1", "-l", "app=web"],
            [
                ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
                ["default", "web-1", "1/1", "Running", "0", "*"],
            ],
        ),
        (
            ["get", "nodes", "--field-selector", "metadata.name=worker-1", "--no-headers"],
            [["worker-1", "Ready", "<none>", "*", objects.KUBELET_VERSION]],
        ),
    ],
)
def test_kubectl_get_prints_the_server_tables(
    fake_cluster: FakeKubeAPI,
    fake_kubeconfig: Path,
    args: list[str],
    expected_lines: list[list[str]],
) -> None:
    result = kubectl(fake_kubeconfig, *args)
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert len(lines) == len(expected_lines)
    for got, want in zip(lines, expected_lines, strict=True):
        assert [g if w != "*" else "*" for g, w in zip(got, want, strict=True)] == want


def test_kubectl_get_nodes_json_is_a_node_list(
    fake_cluster: FakeKubeAPI, fake_kubeconfig: Path
) -> None:
    result = kubectl(fake_kubeconfig, "get", "nodes", "-o", "json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["kind"] == "List"
    worker = next(n for n in listed["items"] if n["metadata"]["name"] == "worker-1")
    assert worker["kind"] == "Node"
    assert worker["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    assert {"type": "InternalIP", "address": "10.0.0.11"} in worker["status"]["addresses"]
    assert worker["metadata"]["resourceVersion"].isdigit()


def test_kubectl_get_csr_shows_pending_then_approved(
    fake_api: FakeKubeAPI, fake_kubeconfig: Path
) -> None:
    assert "No resources found" in kubectl(fake_kubeconfig, "get", "csr").stderr
    fake_api.put("certificatesigningrequests", objects.csr("csr-abcde", csr_request_pem()))
    assert kubectl(fake_kubeconfig, "get", "csr", "--no-headers").stdout.split()[-1] == "Pending"
    approved = kubectl(fake_kubeconfig, "certificate", "approve", "csr-abcde")
    assert approved.returncode == 0, approved.stderr
    assert "approved" in approved.stdout
    # kubectl wrote the approval as protobuf; the fake read its condition from it.
    condition = fake_api.get("certificatesigningrequests", "csr-abcde")["status"]["conditions"][0]
    assert (condition["type"], condition["reason"]) == ("Approved", "KubectlApprove")
    assert condition["message"] == "This CSR was approved by kubectl certificate approve."
    assert kubectl(fake_kubeconfig, "get", "csr", "--no-headers").stdout.split()[-1] == "Approved"


def test_kubectl_authenticates_with_a_client_certificate(
    fake_cluster: FakeKubeAPI, tmp_path: Path
) -> None:
    client = fake_cluster.client_certificate("jane", ("developers",))
    config = fake_cluster.write_kubeconfig(tmp_path / "kubeconfig", client=client)
    result = kubectl(config, "get", "nodes", "-o", "name")
    assert result.stdout.split() == ["node/control-plane", "node/worker-1"]


@pytest.mark.parametrize("credential", ["bad-token", "other-ca-certificate"])
def test_kubectl_is_refused_without_good_credentials(
    fake_cluster: FakeKubeAPI, tmp_path: Path, credential: str
) -> None:
    if credential == "bad-token":
        config = fake_cluster.write_kubeconfig(tmp_path / "kubeconfig", token="bad-token")
    else:
        stranger = pki.issue(pki.new_ca("other"), "jane", client=True)
        config = fake_cluster.write_kubeconfig(tmp_path / "kubeconfig", client=stranger)
    result = kubectl(config, "get", "nodes")
    assert result.returncode == 1
    if credential == "bad-token":
        assert "You must be logged in to the server" in result.stderr
    else:
        # The fake verifies client certificates in the handshake (kubepulse.tlsauth,
        # which Python's ssl allows), so a stranger's never gets as far as a 401:
        # kubectl says it could not connect ("EOF", "connection reset by peer").
        assert result.stdout == ""
        assert "You must be logged in" not in result.stderr
        assert any(
            word in result.stderr for word in ("Unable to connect", "EOF", "reset by peer")
        ), result.stderr


# ----- raw HTTP


@pytest.fixture
async def http(fake_cluster: FakeKubeAPI) -> AsyncIterator[Client]:
    ctx = ssl.create_default_context(cadata=fake_cluster.ca.cert_pem().decode())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        yield Client(session, fake_cluster)


class Client:
    def __init__(self, session: aiohttp.ClientSession, fake: FakeKubeAPI) -> None:
        self.session, self.fake = session, fake

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        accept: str = "application/json",
        token: str | None = "admin",
        **query: str,
    ) -> tuple[int, str, Any]:
        headers = {"Accept": accept}
        if token:
            headers["Authorization"] = (
                f"Bearer {self.fake.admin_token if token == 'admin' else token}"
            )
        async with self.session.request(
            method, self.fake.url + path, json=body, headers=headers, params=query
        ) as resp:
            return (
                resp.status,
                resp.headers.get("Content-Type", ""),
                await resp.json(content_type=None),
            )

    async def watch(self, path: str, count: int, **query: str) -> list[dict[str, Any]]:
        """The first count events of a watch."""
        headers = {"Authorization": f"Bearer {self.fake.admin_token}"}
        params = {"watch": "1", **query}
        events: list[dict[str, Any]] = []
        async with self.session.get(self.fake.url + path, headers=headers, params=params) as resp:
            assert resp.status == 200
            while len(events) < count:
                line = await resp.content.readline()
                if not line:
                    break
                events.append(json.loads(line))
        return events


def assert_status(answer: tuple[int, str, Any], code: int, reason: str) -> None:
    status, content_type, body = answer
    assert (status, body["kind"], body["code"], body["reason"]) == (code, "Status", code, reason)
    assert body["status"] == "Failure"
    assert content_type.startswith("application/json")


async def test_protobuf_first_accept_is_answered_with_json(http: Client) -> None:
    status, content_type, body = await http.call("GET", "/api/v1/nodes", accept=PROTOBUF_FIRST)
    assert (status, content_type) == (200, "application/json")
    assert body["kind"] == "NodeList"
    assert "kind" not in body["items"][0]  # typed list items carry no kind
    assert int(body["metadata"]["resourceVersion"]) == http.fake.resource_version


async def test_protobuf_only_accept_is_not_acceptable(http: Client) -> None:
    answer = await http.call("GET", "/api/v1/nodes", accept="application/vnd.kubernetes.protobuf")
    assert_status(answer, 406, "NotAcceptable")


@pytest.mark.parametrize(
    ("method", "path", "token", "code", "reason"),
    [
        ("GET", "/api/v1/nodes", None, 401, "Unauthorized"),
        ("GET", "/api/v1/nodes", "wrong", 401, "Unauthorized"),
        ("GET", "/api/v1/nodes/nope", "admin", 404, "NotFound"),
        ("GET", "/api/v1/namespaces/default/pods/nope", "admin", 404, "NotFound"),
        ("GET", "/api/v1/namespaces/default/configmaps/nope", "admin", 404, "NotFound"),
        ("GET", "/api/v1/nodes?labelSelector=a%20in", "admin", 400, "BadRequest"),
        ("GET", "/api/v1/nodes?fieldSelector=spec.nope=1", "admin", 400, "BadRequest"),
        ("DELETE", "/api/v1/nodes", "admin", 405, "MethodNotAllowed"),
        ("GET", "/apis/nope.example.com", "admin", 404, "NotFound"),
        ("GET", "/api/v1/nodes?continue=garbage&limit=1", "admin", 400, "BadRequest"),
    ],
)
async def test_errors_are_status_objects_with_the_right_code(
    http: Client, method: str, path: str, token: str | None, code: int, reason: str
) -> None:
    path, _, query = path.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&")) if query else {}
    params = {k: v.replace("%20", " ") for k, v in params.items()}
    assert_status(await http.call(method, path, token=token, **params), code, reason)


async def test_not_found_names_the_object_as_kube_apiserver_does(http: Client) -> None:
    _, _, body = await http.call("GET", CSR_PREFIX + "/csr-nope")
    assert body["message"] == 'certificatesigningrequests.certificates.k8s.io "csr-nope" not found'
    assert body["details"] == {
        "name": "csr-nope",
        "group": "certificates.k8s.io",
        "kind": "certificatesigningrequests",
    }


async def test_discovery_documents(http: Client) -> None:
    _, _, core = await http.call("GET", "/api/v1")
    nodes = next(r for r in core["resources"] if r["name"] == "nodes")
    assert (core["kind"], nodes["kind"], nodes["namespaced"]) == ("APIResourceList", "Node", False)
    assert "watch" in nodes["verbs"]
    _, _, groups = await http.call("GET", "/apis")
    assert [g["name"] for g in groups["groups"]] == [
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "certificates.k8s.io",
    ]
    for group_version in ("authentication.k8s.io/v1", "authorization.k8s.io/v1"):
        _, _, listed = await http.call("GET", f"/apis/{group_version}")
        assert all(r["verbs"] == ["create"] for r in listed["resources"])
    _, _, certificates = await http.call("GET", "/apis/certificates.k8s.io/v1")
    assert certificates["resources"][0]["shortNames"] == ["csr"]
    _, _, version = await http.call("GET", "/version")
    assert (version["major"], version["minor"]) == ("1", "32")


async def test_aggregated_discovery_when_asked_for(http: Client) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    status, content_type, body = await http.call("GET", "/apis", accept=accept)
    assert status == 200
    assert "as=APIGroupDiscoveryList" in content_type
    assert body["kind"] == "APIGroupDiscoveryList"
    csr = body["items"][-1]["versions"][0]["resources"][0]
    assert (csr["resource"], csr["scope"], "watch" in csr["verbs"]) == (
        "certificatesigningrequests",
        "Cluster",
        True,
    )
    _, _, core = await http.call("GET", "/api", accept=accept)
    assert core["items"][0]["metadata"]["name"] == ""


async def test_lists_page_with_limit_and_continue(http: Client) -> None:
    names: list[str] = []
    query: dict[str, str] = {"limit": "2"}
    versions = set()
    while True:
        _, _, page = await http.call("GET", "/api/v1/pods", **query)
        names += [p["metadata"]["name"] for p in page["items"]]
        versions.add(page["metadata"]["resourceVersion"])
        if not page["metadata"].get("continue"):
            break
        assert page["metadata"]["remainingItemCount"] == 1
        query["continue"] = page["metadata"]["continue"]
    assert names == ["web-1", "coredns-7db6d8ff4d-x2x9p", "etcd-control-plane"]
    assert len(versions) == 1  # every page speaks of the first page's resourceVersion


async def test_namespaced_lists_and_gets(http: Client) -> None:
    _, _, listed = await http.call("GET", "/api/v1/namespaces/kube-system/pods")
    assert len(listed["items"]) == 2
    _, _, one = await http.call("GET", "/api/v1/namespaces/default/pods/web-1")
    assert (one["kind"], one["status"]["phase"]) == ("Pod", "Running")
    assert one["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "100m",
        "memory": "128Mi",
    }


# ----- watch


async def test_a_watch_without_resource_version_starts_with_the_current_objects(
    http: Client,
) -> None:
    events = await http.watch("/api/v1/nodes", 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "control-plane"),
        ("ADDED", "worker-1"),
    ]
    assert events[0]["object"]["kind"] == "Node"  # watch events carry kind and apiVersion


async def test_a_watch_from_a_resource_version_replays_what_came_after(http: Client) -> None:
    fake = http.fake
    since = str(fake.resource_version)
    fake.add_node(objects.node("worker-2", "10.0.0.12"))
    fake.update("nodes", "worker-2", lambda n: n["metadata"]["labels"].update(zone="b"))
    fake.add_pod(objects.pod("default", "web-2", "worker-2"))  # another resource: not seen
    fake.delete_node("worker-2")
    events = await http.watch("/api/v1/nodes", 3, resourceVersion=since)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[-1] == fake.resource_version


async def test_selectors_turn_changes_into_added_and_deleted(http: Client) -> None:
    fake = http.fake
    since = str(fake.resource_version)
    fake.update("pods", "web-1", lambda p: p["status"].update(phase="Succeeded"), "default")
    fake.update("pods", "web-1", lambda p: p["status"].update(phase="Running"), "default")
    events = await http.watch(
        "/api/v1/namespaces/default/pods",
        2,
        resourceVersion=since,
        fieldSelector="status.phase=Running",
    )
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]


async def test_a_compacted_resource_version_gets_410_expired(http: Client) -> None:
    since = str(http.fake.resource_version)
    http.fake.add_node(objects.node("worker-2", "10.0.0.12"))
    http.fake.compact()
    events = await http.watch("/api/v1/nodes", 2, resourceVersion=since)
    assert len(events) == 1  # and the stream ends
    assert events[0]["type"] == "ERROR"
    error = events[0]["object"]
    assert (error["kind"], error["code"], error["reason"]) == ("Status", 410, "Expired")
    assert error["message"].startswith(f"too old resource version: {since} (")


async def test_bookmarks_only_when_allowed(http: Client) -> None:
    fake = http.fake
    since = str(fake.resource_version)
    with_bookmarks = http.watch(
        "/api/v1/nodes", 1, resourceVersion=since, allowWatchBookmarks="true"
    )
    task = asyncio.create_task(with_bookmarks)
    plain = asyncio.create_task(http.watch("/api/v1/nodes", 1, resourceVersion=since))
    await until(lambda: fake.open_watches("nodes") == 2, "two watches")
    fake.add_pod(objects.pod("default", "web-2", "worker-1"))
    fake.send_bookmarks()
    (bookmark,) = await asyncio.wait_for(task, 10)
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["kind"] == "Node"
    assert bookmark["object"]["metadata"]["resourceVersion"] == str(fake.resource_version)
    assert not plain.done()
    fake.add_node(objects.node("worker-2", "10.0.0.12"))
    (first,) = await asyncio.wait_for(plain, 10)
    assert first["type"] == "ADDED"


async def test_a_broken_watch_ends_without_a_clean_close(http: Client) -> None:
    fake = http.fake
    headers = {"Authorization": f"Bearer {fake.admin_token}"}
    params = {"watch": "1", "resourceVersion": str(fake.resource_version)}
    async with http.session.get(fake.url + "/api/v1/nodes", headers=headers, params=params) as resp:
        await until(lambda: fake.open_watches("nodes") == 1, "the watch")
        assert fake.break_watches() == 1
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(resp.content.read(), 10)
    assert fake.open_watches("nodes") == 0


async def test_a_watch_ends_cleanly_after_timeout_seconds(http: Client) -> None:
    events = await http.watch("/api/v1/nodes", 10, resourceVersion="1000000", timeoutSeconds="1")
    assert events == []


# ----- reviews, the authentication ConfigMap, CSRs


async def test_token_reviews_answer_from_the_table_and_are_counted(http: Client) -> None:
    http.fake.add_token(
        "t-123", "system:serviceaccount:kube-system:hpa", ("system:serviceaccounts",), "u-1"
    )
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
    path = "/apis/authentication.k8s.io/v1/tokenreviews"
    status, _, good = await http.call("POST", path, {**review, "spec": {"token": "t-123"}})
    assert status == 201
    assert good["status"]["authenticated"] is True
    assert good["status"]["user"] == {
        "username": "system:serviceaccount:kube-system:hpa",
        "uid": "u-1",
        "groups": ["system:serviceaccounts", "system:authenticated"],
    }
    _, _, bad = await http.call("POST", path, {**review, "spec": {"token": "nope"}})
    assert "authenticated" not in bad["status"]
    assert bad["status"]["error"]
    assert [r["token"] for r in http.fake.token_reviews] == ["t-123", "nope"]


SAR_CASES = [
    ("jane", [], {"verb": "get", "resource": "nodes", "subresource": "metrics"}, True),
    ("jane", [], {"verb": "list", "resource": "nodes", "subresource": "metrics"}, False),
    ("bob", ["readers"], {"verb": "list", "group": "metrics.k8s.io", "resource": "pods"}, True),
    ("bob", [], {"verb": "list", "group": "metrics.k8s.io", "resource": "pods"}, False),
    ("root", [], {"verb": "delete", "resource": "pods"}, True),
]


@pytest.mark.parametrize(("user", "groups", "attributes", "allowed"), SAR_CASES)
async def test_subject_access_reviews_answer_from_the_grants(
    http: Client, user: str, groups: list[str], attributes: Mapping[str, str], allowed: bool
) -> None:
    http.fake.allow("jane", "get", "nodes/metrics")
    http.fake.allow("readers", "list", "pods.metrics.k8s.io")
    http.fake.allow("root", "*", "*")
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups, "resourceAttributes": attributes},
    }
    status, _, answer = await http.call(
        "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body
    )
    assert status == 201
    assert answer["status"]["allowed"] is allowed
    assert len(http.fake.access_reviews) == 1


async def test_non_resource_access_reviews_and_invalid_ones(http: Client) -> None:
    http.fake.allow("prometheus", "get", "/metrics")
    path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    spec = {"user": "prometheus", "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    _, _, answer = await http.call("POST", path, body)
    assert answer["status"]["allowed"] is True
    assert_status(await http.call("POST", path, {**body, "spec": {"user": "x"}}), 422, "Invalid")
    assert_status(await http.call("POST", path, {"kind": "Pod"}), 400, "BadRequest")


async def test_the_extension_apiserver_authentication_configmap(http: Client) -> None:
    path = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
    _, _, configmap = await http.call("GET", path)
    data = configmap["data"]
    assert data["client-ca-file"] == http.fake.ca.cert_pem().decode()
    assert data["requestheader-client-ca-file"] == http.fake.front_proxy_ca.cert_pem().decode()
    assert json.loads(data["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert json.loads(data["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(data["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(data["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]


def csr_body(name: str = "", generate: str = "") -> dict[str, Any]:
    body = objects.csr(name, csr_request_pem())
    if generate:
        body["metadata"] = {"generateName": generate}
    return body


async def test_a_created_csr_records_who_asked(http: Client) -> None:
    http.fake.add_token("node-token", "system:node:worker-1", ("system:nodes",))
    body = csr_body(generate="csr-")
    body["spec"]["username"] = "someone-else"  # the server overrides what the body claims
    status, _, created = await http.call("POST", CSR_PREFIX, body, token="node-token")
    assert status == 201
    assert created["metadata"]["name"].startswith("csr-")
    assert created["spec"]["username"] == "system:node:worker-1"
    assert created["spec"]["groups"] == ["system:nodes", "system:authenticated"]
    assert created["status"] == {}
    _, _, listed = await http.call(
        "GET", CSR_PREFIX, fieldSelector="spec.signerName=kubernetes.io/kubelet-serving"
    )
    assert [c["metadata"]["name"] for c in listed["items"]] == [created["metadata"]["name"]]


async def test_csr_create_errors(http: Client) -> None:
    assert (await http.call("POST", CSR_PREFIX, csr_body("csr-1")))[0] == 201
    assert_status(await http.call("POST", CSR_PREFIX, csr_body("csr-1")), 409, "AlreadyExists")
    broken = csr_body("csr-2")
    broken["spec"]["request"] = base64.b64encode(b"not a request").decode()
    assert_status(await http.call("POST", CSR_PREFIX, broken), 422, "Invalid")


async def test_csr_approval_sets_the_condition_and_checks_the_resource_version(
    http: Client,
) -> None:
    _, _, created = await http.call("POST", CSR_PREFIX, csr_body("csr-1"))
    approval = CSR_PREFIX + "/csr-1/approval"
    stale = {**created, "metadata": {**created["metadata"], "resourceVersion": "1"}}
    assert_status(await http.call("PUT", approval, stale), 409, "Conflict")
    created["status"] = {"conditions": [{"type": "Approved", "reason": "Checked", "message": "ok"}]}
    status, _, approved = await http.call("PUT", approval, created)
    assert status == 200
    condition = approved["status"]["conditions"][0]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Approved",
        "True",
        "Checked",
    )
    assert int(approved["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"]
    )
    created["status"] = {"conditions": [{"type": "Approved"}, {"type": "Denied"}]}
    created["metadata"].pop("resourceVersion")
    assert_status(await http.call("PUT", approval, created), 422, "Invalid")
    assert_status(
        await http.call(
            "PUT", CSR_PREFIX + "/nope/approval", {**created, "metadata": {"name": "nope"}}
        ),
        404,
        "NotFound",
    )


async def test_csr_watch_sees_creation_and_approval(http: Client) -> None:
    since = str(http.fake.resource_version)
    _, _, created = await http.call("POST", CSR_PREFIX, csr_body("csr-1"))
    created["status"] = {"conditions": [{"type": "Denied", "reason": "Bad"}]}
    await http.call("PUT", CSR_PREFIX + "/csr-1/approval", created)
    events = await http.watch(CSR_PREFIX, 2, resourceVersion=since)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]
    assert events[1]["object"]["status"]["conditions"][0]["type"] == "Denied"
