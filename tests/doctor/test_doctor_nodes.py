"""doctor against deliberately broken kubelets on loopback: real `kubepulse agent`
processes serving faulty certificates, a closed port and a name that does not resolve."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kubepulse.doctor.findings import Finding
from kubepulse.doctor.kubelets import KubeletTLS, NodeCheckConfig
from kubepulse.doctor.run import DoctorConfig, diagnose
from tests.doctor.conftest import Kubelets
from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support import KUBEPULSE, free_port

CLOSED = ("stopped", "127.0.0.7")


def add_nodes(fake: FakeKubeAPI, kubelets: Kubelets) -> None:
    for k in kubelets.nodes.values():
        fake.add_node(objects.node(k.name, k.ip, kubelet_port=k.port))
    name, ip = CLOSED
    fake.add_node(objects.node(name, ip, kubelet_port=free_port(ip)))
    unresolvable = objects.node("no-such-node.invalid", "127.0.0.8")
    fake.add_node(unresolvable)


def by_node(findings: list[Finding], name: str) -> dict[str, Finding]:
    """The node's findings by check; a check that fails twice keeps its first."""
    found: dict[str, Finding] = {}
    for f in findings:
        if f.subject == f"node/{name}":
            found.setdefault(f.check, f)
    return found


@pytest.fixture
async def findings(fake_api: FakeKubeAPI, kubelets: Kubelets) -> list[Finding]:
    add_nodes(fake_api, kubelets)
    tls = KubeletTLS(kubelets.ca_file.read_bytes(), "--kubelet-certificate-authority")
    nodes = NodeCheckConfig(timeout=3.0, tls=tls)
    return await diagnose(DoctorConfig(fake_api.credentials(), nodes, timeout=3.0))


# node -> (check, status, words in what, words in the fix)
EXPECTED = {
    "healthy-a": ("certificate", "ok", "verifies against", ""),
    "healthy-b": ("clock", "ok", "agrees", ""),
    "no-ip-san": (
        "certificate",
        "fail",
        "cannot validate certificate for 127.0.0.4 because it doesn't contain any IP SANs",
        "serverTLSBootstrap: true",
    ),
    "other-ca": (
        "certificate",
        "fail",
        "x509: certificate signed by unknown authority",
        "--kubelet-certificate-authority",
    ),
    "expired": ("certificate", "fail", "certificate has expired", "csr-approver"),
    "stopped": ("port", "fail", "connect: connection refused", "start the kubelet"),
}


@pytest.mark.parametrize("node", EXPECTED)
async def test_each_fault_is_named_with_its_fix(findings: list[Finding], node: str) -> None:
    check, status, what, fix = EXPECTED[node]
    found = by_node(findings, node)[check]
    assert found.status == status, found
    assert what in found.what, found.what
    assert fix in found.fix, found.fix


async def test_healthy_nodes_pass_every_kubelet_check(findings: list[Finding]) -> None:
    for node in ("healthy-a", "healthy-b"):
        checks = by_node(findings, node)
        assert set(checks) == {"address", "port", "certificate", "clock"}
        assert all(f.status == "ok" for f in checks.values()), checks


async def test_an_unresolvable_hostname_first_fails_with_the_dns_fix(
    fake_api: FakeKubeAPI, kubelets: Kubelets
) -> None:
    fake_api.add_node(objects.node("no-such-node.invalid", "127.0.0.8"))
    nodes = NodeCheckConfig(preferred_types=("Hostname", "InternalIP"), timeout=3.0)
    found = await diagnose(DoctorConfig(fake_api.credentials(), nodes, timeout=3.0))
    dns = by_node(found, "no-such-node.invalid")["dns"]
    assert dns.status == "fail"
    assert "lookup no-such-node.invalid" in dns.what and "no such host" in dns.what
    assert "put InternalIP first" in dns.fix
    # With InternalIP first, as the manifests have it, the name is never looked up.
    address = by_node(await diagnose(DoctorConfig(fake_api.credentials())), "no-such-node.invalid")
    assert "uses InternalIP 127.0.0.8" in address["address"].what


async def test_a_pending_kubelet_serving_csr_is_reported_for_its_node(
    fake_api: FakeKubeAPI, kubelets: Kubelets
) -> None:
    k = kubelets.nodes["healthy-a"]
    fake_api.add_node(objects.node(k.name, k.ip, kubelet_port=k.port))
    pending = objects.csr("csr-xj6zs", b"not read by doctor")
    pending["spec"]["username"] = f"system:node:{k.name}"
    fake_api.put("certificatesigningrequests", pending)
    tls = KubeletTLS(kubelets.ca_file.read_bytes(), "the CA")
    found = await diagnose(DoctorConfig(fake_api.credentials(), NodeCheckConfig(tls=tls)))
    csr = by_node(found, k.name)["csr"]
    assert csr.status == "warn" and "csr-xj6zs" in csr.what
    assert "kubepulse csr-approver" in csr.fix


async def test_without_metrics_api_registration_fails(findings: list[Finding]) -> None:
    (registration,) = [f for f in findings if f.check == "metrics-api"]
    assert registration.status == "fail"
    assert "not registered" in registration.what and "kubepulse manifests" in registration.fix


async def test_unreachable_api_server_is_one_failure(tmp_path: Path) -> None:
    from kubepulse.kube.kubeconfig import Credentials

    port = free_port()
    found = await diagnose(DoctorConfig(Credentials(f"https://127.0.0.1:{port}")))
    assert [(f.check, f.status) for f in found] == [("api", "fail")]
    assert "refused" in found[0].what


async def test_rejected_credentials_are_named(fake_api: FakeKubeAPI) -> None:
    found = await diagnose(DoctorConfig(fake_api.credentials(token="wrong")))
    assert [(f.check, f.status) for f in found] == [("api", "fail")]
    assert "401" in found[0].what


def test_the_command_names_failures_and_exits_1(
    fake_api: FakeKubeAPI, fake_kubeconfig: Path, kubelets: Kubelets
) -> None:
    add_nodes(fake_api, kubelets)
    base = [
        *KUBEPULSE,
        "doctor",
        "--kubeconfig",
        str(fake_kubeconfig),
        "--kubelet-certificate-authority",
        str(kubelets.ca_file),
        "--timeout",
        "3s",
    ]
    text = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert text.returncode == 1, text.stderr
    assert text.stderr == ""
    assert "node/no-ip-san\n" in text.stdout
    assert "✗ certificate: x509: cannot validate certificate for 127.0.0.4" in text.stdout
    assert "      fix: " in text.stdout
    assert fake_api.admin_token not in text.stdout
    machine = subprocess.run([*base, "-o", "json"], capture_output=True, text=True, timeout=60)
    assert machine.returncode == 1
    doc = json.loads(machine.stdout)
    assert doc["ok"] is False and doc["summary"]["fail"] >= 5
    failing = {(f["subject"], f["check"]) for f in doc["findings"] if f["status"] == "fail"}
    assert {
        ("node/no-ip-san", "certificate"),
        ("node/other-ca", "certificate"),
        ("node/expired", "certificate"),
        ("node/stopped", "port"),
    } <= failing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kubeconfig", "/nonexistent/kubeconfig"], "no kubeconfig found"),
        (["--state-dir", "/nonexistent/state"], "is not a `kubepulse up` state dir"),
        (["--kubelet-preferred-address-types", ","], "names no address type"),
        (["--timeout", "soon"], "invalid duration"),
    ],
)
def test_bad_input_is_one_line_on_stderr(args: list[str], message: str) -> None:
    done = subprocess.run([*KUBEPULSE, "doctor", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
