"""`kubepulse csr-approver` against the fake kube-apiserver: real x509 requests, decided
through the /approval subresource, checked in the fake's stored objects."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubepulse.cli.main import main
from kubepulse.kube.client import KubeClient
from kubepulse.kube.csr import (
    APPROVED_REASON,
    DENIED_PREFIX,
    DENIED_REASON,
    ApproverConfig,
    decide,
    ip_prefixes,
)
from kubepulse.kube.csr_approver import Approver
from tests.fakeapi import objects
from tests.fakeapi.fixtures import fake_api, until
from tests.fakeapi.server import FakeKubeAPI
from tests.kube.test_exec_long_running import exec_kubeconfig

NODE, NODE_IP = "worker-1", "127.0.0.11"
__all__ = ["fake_api"]  # the fixture
_KEY = ec.generate_private_key(ec.SECP256R1())


def request_pem(
    cn: str = f"system:node:{NODE}",
    org: Sequence[str] = ("system:nodes",),
    dns: Sequence[str] = (NODE,),
    ips: Sequence[str] = (NODE_IP,),
    emails: Sequence[str] = (),
) -> bytes:
    """A PKCS#10 request as a kubelet with serverTLSBootstrap makes it."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in org]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    sans += [x509.RFC822Name(e) for e in emails]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def csr_object(
    name: str,
    pem: bytes,
    *,
    username: str = f"system:node:{NODE}",
    signer: str = "kubernetes.io/kubelet-serving",
    usages: Sequence[str] = ("digital signature", "server auth"),
    expiration: int | None = None,
) -> dict[str, Any]:
    obj = objects.csr(name, pem, signer)
    obj["spec"].update(
        username=username, groups=["system:nodes", "system:authenticated"], usages=list(usages)
    )
    if expiration is not None:
        obj["spec"]["expirationSeconds"] = expiration
    return obj


# name -> (CSR, expected action, the check that decides, words in the Denied message)
CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "valid": (csr_object("valid", request_pem()), "approve", ""),
    "valid-ip-only": (csr_object("valid-ip-only", request_pem(dns=())), "approve", ""),
    "rsa-usages": (
        csr_object(
            "rsa-usages",
            request_pem(),
            usages=("digital signature", "key encipherment", "server auth"),
        ),
        "approve",
        "",
    ),
    "forged-dns-san": (
        csr_object("forged-dns-san", request_pem(dns=("auth.company.com",))),
        "deny",
        "not prefixed by the node name",
    ),
    "two-dns-sans": (
        csr_object("two-dns-sans", request_pem(dns=(NODE, f"{NODE}.cluster.local"))),
        "deny",
        "more than 1 DNS name",
    ),
    "cn-differs": (
        csr_object("cn-differs", request_pem(cn="system:node:worker-2")),
        "deny",
        "does not match the parsed x509 certificate request commonname",
    ),
    "not-a-node": (
        csr_object("not-a-node", request_pem(cn="alice"), username="alice"),
        "deny",
        "not prefixed with system:node:",
    ),
    "no-san": (
        csr_object("no-san", request_pem(dns=(), ips=())),
        "deny",
        "neither an IP address nor a DNS name",
    ),
    "ip-not-the-nodes": (
        csr_object("ip-not-the-nodes", request_pem(ips=("127.0.0.99",))),
        "deny",
        "127.0.0.99, is not among the addresses of node worker-1",
    ),
    "too-long-expiry": (
        csr_object("too-long-expiry", request_pem(), expiration=368 * 24 * 3600),
        "deny",
        "expirationSeconds is longer than the maximum",
    ),
    "wrong-organization": (
        csr_object("wrong-organization", request_pem(org=("system:masters",))),
        "deny",
        "organization is not [system:nodes]",
    ),
    "client-usages": (
        csr_object("client-usages", request_pem(), usages=("digital signature", "client auth")),
        "deny",
        "not those of a kubelet serving certificate",
    ),
    "email-san": (
        csr_object("email-san", request_pem(emails=("root@worker-1",))),
        "deny",
        "email or URI SANs",
    ),
    "unknown-node": (
        csr_object(
            "unknown-node",
            request_pem(cn="system:node:ghost", dns=("ghost",), ips=()),
            username="system:node:ghost",
        ),
        "deny",
        "The node ghost does not exist",
    ),
    "wrong-signer": (
        csr_object("wrong-signer", request_pem(), signer="kubernetes.io/kube-apiserver-client"),
        "ignore",
        "",
    ),
}


def conditions(fake: FakeKubeAPI, name: str) -> list[dict[str, Any]]:
    stored = fake.get("certificatesigningrequests", name)
    assert stored is not None
    return list((stored.get("status") or {}).get("conditions") or [])


@pytest.fixture
def cluster(fake_api: FakeKubeAPI) -> FakeKubeAPI:
    fake_api.add_node(objects.node(NODE, NODE_IP))
    return fake_api


async def test_pending_requests_are_approved_or_denied_with_the_failing_checks_reason(
    cluster: FakeKubeAPI,
) -> None:
    for obj, _, _ in CASES.values():
        cluster.put("certificatesigningrequests", obj)
    client = KubeClient(cluster.credentials())
    async with client:
        await Approver(client, ApproverConfig()).pending()
    for name, (_, action, words) in CASES.items():
        found = conditions(cluster, name)
        if action == "ignore":
            assert found == [], name
            continue
        assert len(found) == 1, name
        (condition,) = found
        assert condition["status"] == "True", name
        if action == "approve":
            assert (condition["type"], condition["reason"]) == ("Approved", APPROVED_REASON), name
        else:
            assert (condition["type"], condition["reason"]) == ("Denied", DENIED_REASON), name
            assert condition["message"].startswith(DENIED_PREFIX), name
            assert words in condition["message"], (name, condition["message"])


async def test_a_request_created_while_watching_is_decided(cluster: FakeKubeAPI) -> None:
    client = KubeClient(cluster.credentials())
    async with client:
        watching = asyncio.create_task(Approver(client, ApproverConfig()).watch())
        try:
            await until(lambda: cluster.open_watches("certificatesigningrequests"), "the watch")
            cluster.put("certificatesigningrequests", csr_object("late", request_pem()))
            cluster.put(
                "certificatesigningrequests",
                csr_object("late-forged", request_pem(dns=("evil.example.com",))),
            )
            await until(lambda: conditions(cluster, "late"), "the approval")
            await until(lambda: conditions(cluster, "late-forged"), "the denial")
        finally:
            watching.cancel()
    assert conditions(cluster, "late")[0]["type"] == "Approved"
    assert conditions(cluster, "late-forged")[0]["type"] == "Denied"


async def test_skip_deny_step_leaves_failing_requests_pending(cluster: FakeKubeAPI) -> None:
    cluster.put("certificatesigningrequests", csr_object("forged", request_pem(dns=("x.y",))))
    cluster.put("certificatesigningrequests", csr_object("fine", request_pem()))
    client = KubeClient(cluster.credentials())
    async with client:
        await Approver(client, ApproverConfig(), skip_deny=True).pending()
    assert conditions(cluster, "forged") == []
    assert conditions(cluster, "fine")[0]["type"] == "Approved"


async def test_decided_requests_are_left_alone(cluster: FakeKubeAPI) -> None:
    obj = csr_object("done", request_pem(dns=("evil.example.com",)))
    obj["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "admin"}]}
    cluster.put("certificatesigningrequests", obj)
    client = KubeClient(cluster.credentials())
    async with client:
        await Approver(client, ApproverConfig()).pending()
    assert [c["reason"] for c in conditions(cluster, "done")] == ["admin"]


NODE_OBJ = objects.node(NODE, NODE_IP)


@pytest.mark.parametrize(
    ("config", "pem", "action", "check"),
    [
        (
            ApproverConfig(allowed_dns_names=2),
            request_pem(dns=(NODE, f"{NODE}.lan")),
            "approve",
            "all",
        ),
        (
            ApproverConfig(bypass_hostname_check=True),
            request_pem(dns=("node.lan",)),
            "approve",
            "all",
        ),
        (
            ApproverConfig(provider_regex=re.compile(r"^worker-\d+$")),
            request_pem(),
            "approve",
            "all",
        ),
        (
            ApproverConfig(provider_regex=re.compile(r"^node-\w+\.int$")),
            request_pem(),
            "deny",
            "dns-regex",
        ),
        (
            ApproverConfig(provider_ip_prefixes=ip_prefixes("10.0.0.0/8")),
            request_pem(),
            "deny",
            "ip-prefix",
        ),
        (
            ApproverConfig(provider_ip_prefixes=ip_prefixes("127.0.0.0/24")),
            request_pem(),
            "approve",
            "all",
        ),
    ],
    ids=[
        "dns-count-2",
        "bypass-hostname",
        "regex-match",
        "regex-mismatch",
        "ip-outside",
        "ip-inside",
    ],
)
def test_flags_change_the_decision(
    config: ApproverConfig, pem: bytes, action: str, check: str
) -> None:
    decision = decide(csr_object("x", pem), NODE_OBJ, config)
    assert (decision.action, decision.check) == (action, check)


def test_a_longer_maximum_expiry_than_upstreams_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="367 days"):
        ApproverConfig(max_expiration_seconds=368 * 24 * 3600)


def test_once_from_the_command_line(cluster: FakeKubeAPI, tmp_path: Path) -> None:
    cluster.put("certificatesigningrequests", csr_object("cli", request_pem()))
    config = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    assert main(["csr-approver", "--kubeconfig", str(config), "--once"]) == 0
    assert conditions(cluster, "cli")[0]["type"] == "Approved"


def test_bad_flags_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "none"
    assert main(["csr-approver", "--kubeconfig", str(config), "--provider-ip-prefixes", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: invalid IP prefix") and err.count("\n") == 1


def test_once_with_an_exec_plugin_kubeconfig(cluster: FakeKubeAPI, tmp_path: Path) -> None:
    cluster.put("certificatesigningrequests", csr_object("plugin", request_pem()))
    tokens = tmp_path / "tokens"
    tokens.write_text(cluster.admin_token + "\n")
    config = exec_kubeconfig(cluster, tmp_path, tokens)
    assert main(["csr-approver", "--kubeconfig", str(config), "--once"]) == 0
    assert conditions(cluster, "plugin")[0]["type"] == "Approved"
    assert {auth for method, _path, auth in cluster.calls if method == "PUT"} == {
        f"Bearer {cluster.admin_token}"
    }
