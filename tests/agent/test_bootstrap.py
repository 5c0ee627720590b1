"""`kubepulse agent --bootstrap`: the serving certificate from a kubelet-serving CSR, as
the kubelet's serverTLSBootstrap gets it, approved by the real csr-approver against the
fake kube-apiserver, signed by the test, served over real TLS and renewed in place."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import os
import socket
import ssl
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from kubepulse import pki
from kubepulse.agent import bootstrap
from kubepulse.agent.config import AgentConfig, AgentError
from kubepulse.agent.run import RunningAgent, start_agent
from kubepulse.cli.main import main
from kubepulse.kube.client import KubeClient
from kubepulse.kube.csr import KUBELET_SERVING, ApproverConfig, ip_prefixes, parse_request
from kubepulse.kube.csr_approver import Approver
from tests.fakeapi import objects
from tests.fakeapi.fixtures import fake_api
from tests.fakeapi.server import FakeKubeAPI
from tests.support import KUBEPULSE, free_port, run_kubepulse, wait_for

__all__ = ["fake_api"]  # the fixture
NODE, NODE_IP = "worker-1", "127.0.0.1"
CSRS = bootstrap.CSRS


@pytest.fixture
def cluster(fake_api: FakeKubeAPI) -> FakeKubeAPI:
    fake_api.add_node(objects.node(NODE, NODE_IP))
    return fake_api


def node_kubeconfig(fake: FakeKubeAPI, tmp: Path) -> Path:
    """The node's own credentials: a client certificate for system:node:NAME."""
    client = fake.client_certificate(f"system:node:{NODE}", ("system:nodes",))
    return fake.write_kubeconfig(tmp / "node.conf", client=client)


def agent_args(tmp: Path, port: int = 0, **overrides: Any) -> AgentConfig:
    (tmp / "token").write_text("agent-token\n")
    return AgentConfig(
        address="127.0.0.1",
        port=port,
        cert_dir=tmp / "pki",
        token_file=tmp / "token",
        hostname_override=NODE,
        housekeeping_interval=3600.0,
        **overrides,
    )


async def within(condition: Callable[[], Awaitable[Any]], what: str, timeout: float = 15.0) -> Any:
    """Poll an async condition until it is truthy, failing after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await condition():
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def csrs(admin: KubeClient) -> list[dict[str, Any]]:
    body = await admin.get(CSRS)
    items: list[dict[str, Any]] = body.get("items") or []
    return sorted(items, key=lambda i: int(i["metadata"]["resourceVersion"]))


async def nth_csr(admin: KubeClient, n: int) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        items = await csrs(admin)
        return items[n - 1] if len(items) >= n else None

    result: dict[str, Any] = await within(found, f"CSR number {n}")
    return result


def sign(
    fake: FakeKubeAPI, ca: pki.KeyPair, csr: dict[str, Any], lifetime: float
) -> x509.Certificate:
    """Issue the certificate, as kube-controller-manager's signer does after approval."""
    cert = bootstrap.sign_request(ca, parse_request(csr), csr["spec"]["usages"], lifetime)
    pem = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()

    def issue(obj: dict[str, Any]) -> None:
        obj.setdefault("status", {})["certificate"] = pem

    fake.update("certificatesigningrequests", csr["metadata"]["name"], issue)
    return cert


async def approve_all(admin: KubeClient) -> None:
    await Approver(admin, ApproverConfig()).pending()


async def served(port: int, ca: pki.KeyPair, hostname: str = NODE_IP) -> x509.Certificate:
    """The certificate a client that trusts only ca sees in a new handshake."""
    ctx = ssl.create_default_context(cadata=ca.cert_pem().decode())
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=hostname)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der)


async def healthz(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One keep-alive GET /healthz on an open connection; the body."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


async def test_the_agent_serves_the_certificate_its_approved_csr_was_issued(
    cluster: FakeKubeAPI, tmp_path: Path
) -> None:
    ca = pki.new_ca("kubernetes-signer")
    port = free_port()
    args = agent_args(
        tmp_path, port, bootstrap=True, kubeconfig=str(node_kubeconfig(cluster, tmp_path))
    )
    starting = asyncio.create_task(start_agent(args))
    try:
        async with KubeClient(cluster.credentials()) as admin:
            csr = await nth_csr(admin, 1)
            spec = csr["spec"]
            assert spec["signerName"] == KUBELET_SERVING
            assert spec["usages"] == ["digital signature", "server auth"]
            assert spec["username"] == f"system:node:{NODE}"
            request = parse_request(csr)
            assert request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
                f"system:node:{NODE}"
            )
            assert [
                a.value for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
            ] == ["system:nodes"]
            san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert san.get_values_for_type(x509.DNSName) == [NODE]
            assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(NODE_IP)]
            key = request.public_key()
            assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
            # Waiting, like the kubelet: listening, but no handshake succeeds without a cert.
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await served(port, ca)
            await approve_all(admin)
            approved = await admin.get(f"{CSRS}/{csr['metadata']['name']}")
            assert approved["status"]["conditions"][0]["type"] == "Approved"
            issued = sign(cluster, ca, approved, 3600)
        agent = await asyncio.wait_for(starting, 15)
    finally:
        if not starting.done():
            starting.cancel()
    try:
        assert agent.port == port
        assert (await served(port, ca)).serial_number == issued.serial_number
        assert (await served(port, ca, hostname=NODE)).serial_number == issued.serial_number
        stored = tmp_path / "pki" / bootstrap.CERT_FILE
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        assert b"PRIVATE KEY" in stored.read_bytes()
    finally:
        await agent.stop()


async def test_the_certificate_is_renewed_at_70_to_90_percent_without_a_restart(
    cluster: FakeKubeAPI, tmp_path: Path
) -> None:
    ca = pki.new_ca("kubernetes-signer")
    lifetime = 4.0
    args = agent_args(tmp_path, bootstrap=True, kubeconfig=str(node_kubeconfig(cluster, tmp_path)))
    starting = asyncio.create_task(start_agent(args))
    async with KubeClient(cluster.credentials()) as admin:
        try:
            await approve_all_when_there(admin, 1)
            first = sign(cluster, ca, await nth_csr(admin, 1), lifetime)
            agent: RunningAgent = await asyncio.wait_for(starting, 15)
        finally:
            if not starting.done():
                starting.cancel()
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                agent.port,
                ssl=ssl.create_default_context(cadata=ca.cert_pem().decode()),
                server_hostname=NODE_IP,
            )
            assert await healthz(reader, writer) == b"ok"
            assert (await served(agent.port, ca)).serial_number == first.serial_number
            second = await nth_csr(admin, 2)
            seen = time.time()
            start = first.not_valid_before_utc.timestamp()
            # client-go's jittered deadline: not before 70% of the lifetime (a poll late
            # at most, so a request made early would be seen early).
            assert seen >= start + 0.7 * lifetime, seen - start
            assert seen <= start + 0.9 * lifetime + 2.0, seen - start
            # The current certificate is served while the new request waits.
            assert (await served(agent.port, ca)).serial_number == first.serial_number
            await approve_all(admin)
            renewed = sign(
                cluster, ca, await admin.get(f"{CSRS}/{second['metadata']['name']}"), 3600
            )
            certificates = agent.certificates
            assert certificates is not None
            await within(_async(lambda: certificates.renewals >= 1), "the renewal")
            assert (await served(agent.port, ca)).serial_number == renewed.serial_number
            assert renewed.public_key() != first.public_key()  # a new key, as client-go's
            # The connection made before the renewal is still served: nothing restarted.
            assert await healthz(reader, writer) == b"ok"
            writer.close()
        finally:
            await agent.stop()


def _async(condition: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def check() -> Any:
        return condition()

    return check


async def approve_all_when_there(admin: KubeClient, n: int) -> None:
    await nth_csr(admin, n)
    await approve_all(admin)


async def test_a_denied_request_ends_the_agent_with_one_error_line(
    cluster: FakeKubeAPI, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("agent-token\n")
    config = node_kubeconfig(cluster, tmp_path)
    proc = await asyncio.create_subprocess_exec(
        *KUBEPULSE,
        "agent",
        "--bootstrap",
        "--kubeconfig",
        str(config),
        "--address",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--hostname-override",
        NODE,
        "--cert-dir",
        str(tmp_path / "pki"),
        "--token-file",
        str(tmp_path / "token"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        async with KubeClient(cluster.credentials()) as admin:
            await nth_csr(admin, 1)
            # The approver denies it: 127.0.0.1 is outside the allowed prefixes.
            await Approver(
                admin, ApproverConfig(provider_ip_prefixes=ip_prefixes("10.0.0.0/8"))
            ).pending()
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [lines[-1]], lines
    assert "denied" in errors[0] and "kubelet-serving cert denied" in errors[0], errors
    assert "Traceback" not in err.decode()


async def test_a_request_nobody_approves_times_out_with_the_command_to_approve_it(
    cluster: FakeKubeAPI, tmp_path: Path
) -> None:
    config = node_kubeconfig(cluster, tmp_path)
    args = agent_args(tmp_path, bootstrap=True, kubeconfig=str(config), bootstrap_timeout=0.5)
    with pytest.raises(AgentError, match=r"was not approved and issued within 0.5s"):
        await start_agent(args)
    async with KubeClient(cluster.credentials()) as admin:
        (pending,) = await csrs(admin)
    assert "conditions" not in pending.get("status", {})


async def test_local_mode_is_signed_by_ups_ca_and_renewed(tmp_path: Path) -> None:
    pki_dir = tmp_path / "pki"
    ca = pki.ensure_ca(pki_dir, "kubepulse-ca")
    args = agent_args(tmp_path, bootstrap_ca_dir=pki_dir, bootstrap_cert_lifetime=2.0)
    agent = await start_agent(args)
    try:
        first = await served(agent.port, ca)
        first.verify_directly_issued_by(ca.cert)
        assert first.subject.rfc4514_string() == f"CN=system:node:{NODE},O=system:nodes"
        lifetime = first.not_valid_after_utc - first.not_valid_before_utc
        assert lifetime == dt.timedelta(seconds=2)
        certificates = agent.certificates
        assert certificates is not None
        await within(_async(lambda: certificates.renewals >= 1), "the renewal", timeout=10)
        second = await served(agent.port, ca)
        assert second.serial_number != first.serial_number
        second.verify_directly_issued_by(ca.cert)
    finally:
        await agent.stop()


async def test_a_restarted_agent_keeps_its_certificate_instead_of_asking_again(
    tmp_path: Path,
) -> None:
    pki_dir = tmp_path / "pki"
    ca = pki.ensure_ca(pki_dir, "kubepulse-ca")
    args = agent_args(tmp_path, bootstrap_ca_dir=pki_dir)
    agent = await start_agent(args)
    try:
        before = await served(agent.port, ca)
    finally:
        await agent.stop()
    agent = await start_agent(args)
    try:
        assert (await served(agent.port, ca)).serial_number == before.serial_number
    finally:
        await agent.stop()
    # Another node IP no longer fits the kept certificate: a new one is made at once.
    agent = await start_agent(agent_args(tmp_path, bootstrap_ca_dir=pki_dir, node_ip="127.0.0.2"))
    try:
        fresh = await served(agent.port, ca, hostname="127.0.0.2")
        assert fresh.serial_number != before.serial_number
    finally:
        await agent.stop()


async def test_renewal_deadlines_are_jittered_between_70_and_90_percent(tmp_path: Path) -> None:
    signer = bootstrap.LocalSigner(pki.new_ca("ca"), lifetime=1000)
    template = bootstrap.Template(NODE, (ipaddress.ip_address(NODE_IP),))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    manager = bootstrap.ServingCertificate(signer, template, tmp_path, ctx)
    fractions = []
    for _ in range(40):
        await manager.renew()
        assert manager.current is not None
        start = manager.current.not_valid_before_utc.timestamp()
        fractions.append((manager.deadline - start) / 1000)
    assert min(fractions) >= 0.7 and max(fractions) <= 0.9
    assert max(fractions) - min(fractions) > 0.05  # jittered, not one fixed point


def test_only_rsa_keys_ask_for_key_encipherment() -> None:
    assert bootstrap.usages(ec.generate_private_key(ec.SECP256R1())) == [
        "digital signature",
        "server auth",
    ]
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "key encipherment" in bootstrap.usages(rsa_key)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--tls-cert-file", "a.crt", "--tls-private-key-file", "a.key"], "exclude each other"),
        (["--bootstrap-cert-lifetime", "1m"], "at least 10m"),
        (["--bootstrap-ca-dir", "/nonexistent", "--kubeconfig", "x"], "exclude each other"),
        (["--bootstrap-ca-dir", "/nonexistent"], "cannot load the CA"),
    ],
    ids=["with-cert-files", "short-lifetime", "ca-dir-and-kubeconfig", "no-ca"],
)
def test_bad_bootstrap_flags_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], words: str
) -> None:
    (tmp_path / "token").write_text("t\n")
    argv = ["agent", "--bootstrap", "--token-file", str(tmp_path / "token"), *extra]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err


def test_up_with_agent_bootstrap_serves_the_agent_with_a_node_certificate(
    tmp_path: Path,
) -> None:
    agent_port = free_port()
    args = [
        "up",
        "--state-dir",
        str(tmp_path),
        "--port",
        str(free_port()),
        "--agent-port",
        str(agent_port),
        "--agent-bootstrap",
    ]
    with run_kubepulse(args, tmp_path / "up.log") as running:

        def agent_cert() -> x509.Certificate | None:
            if running.proc.poll() is not None:
                raise AssertionError(f"up exited: {running.log()}")
            if not (tmp_path / "kubeconfig").exists():
                return None
            ctx = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.crt"))
            with (
                socket.create_connection(("127.0.0.1", agent_port), timeout=5) as sock,
                ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
            ):
                der = tls.getpeercert(binary_form=True)
            return x509.load_der_x509_certificate(der) if der else None

        cert = wait_for(agent_cert, timeout=30, what="the agent's bootstrapped certificate")
    expected = f"CN=system:node:{socket.gethostname()},O=system:nodes"
    assert cert.subject.rfc4514_string() == expected
    assert (tmp_path / "pki" / bootstrap.CERT_FILE).exists()
