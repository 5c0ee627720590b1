"""Hypothesis against what clients and kubelets send: request lines, headers, selectors
and kubelet answers. Whatever comes, no 500, no traceback in the log, and the server
keeps answering."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubepulse import pki
from kubepulse.agent.resource_metrics import render
from kubepulse.api.app import ServerParts, make_app
from kubepulse.api.authn import Authenticator, User
from kubepulse.api.pod_list import RenderedPods
from kubepulse.model import ContainerSample, NodeSample, NodeStats, PodSample, Usage
from kubepulse.scrape.bounds import MAX_BYTES, MAX_CPU_SECONDS
from kubepulse.scrape.decode import DecodeError, decode_resource_metrics, decode_summary
from kubepulse.server import serving
from kubepulse.server.connections import Limits
from tests.api.conftest import TOKEN, FakeScraping, inventory, self_metrics
from tests.api.test_golden import fleet

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.found.append(f"{record.name}: {record.getMessage()}")


class Served:
    """The API over real TLS on loopback, on its own event loop in a thread."""

    def __init__(self, tmp: Path) -> None:
        ca = pki.new_ca("fuzz")
        pki.issue(ca, "localhost", ips=[__import__("ipaddress").ip_address("127.0.0.1")]).write(
            tmp / "tls.crt", tmp / "tls.key"
        )
        self.server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_ctx.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
        self.client_ctx = ssl.create_default_context(cadata=ca.cert_pem().decode())
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> int:
        _, store = fleet()
        parts = ServerParts(
            store=store,
            inventory=inventory(),
            scraping=FakeScraping(),
            authenticator=Authenticator({TOKEN: User("admin", "1", ("system:masters",))}),
            registry=self_metrics(store).registry,
            serve_core_api=True,
            pod_list=RenderedPods(store),
        )
        self.runner, port = await serving.start(
            make_app(parts), "127.0.0.1", 0, self.server_ctx, Limits(header_timeout=2.0)
        )
        return port

    def send(self, raw: bytes) -> bytes:
        """What the server answers until it closes, or until it has said a whole head
        and then nothing for a moment (a request it still waits to see the end of)."""
        with self.client_ctx.wrap_socket(
            socket.create_connection(("127.0.0.1", self.port), timeout=3),
            server_hostname="localhost",
        ) as s:
            s.sendall(raw)
            answer = b""
            try:
                while chunk := s.recv(65536):
                    answer += chunk
            except (ConnectionResetError, ssl.SSLError, TimeoutError, OSError):
                pass
            return answer

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Tracebacks]]:
    watcher = Tracebacks()
    logging.getLogger().addHandler(watcher)
    server = Served(tmp_path_factory.mktemp("fuzz"))
    try:
        yield server, watcher
    finally:
        server.stop()
        logging.getLogger().removeHandler(watcher)


def status_of(answer: bytes) -> int | None:
    """The status code of an answer; None when the server closed without one."""
    if not answer:
        return None
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1


def still_answers(server: Served) -> None:
    answer = server.send(
        b"GET /apis/metrics.k8s.io/v1beta1/nodes HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\nConnection: close\r\n\r\n"
    )
    assert status_of(answer) == 200


PATHS = st.sampled_from(
    [
        "/apis/metrics.k8s.io/v1beta1/pods",
        "/apis/metrics.k8s.io/v1beta1/nodes/node-03",
        "/api/v1/namespaces/team-1/pods",
        "/readyz",
        "/apis",
        "/metrics",
    ]
)
TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=80)


@SETTINGS
@given(
    method=st.one_of(
        st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
        st.binary(max_size=12),
    ),
    path=st.one_of(PATHS, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))),
    version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", ""]),
    headers=st.lists(st.tuples(st.binary(max_size=30), st.binary(max_size=200)), max_size=6),
    body=st.binary(max_size=300),
)
def test_any_request_line_and_headers(
    served: tuple[Served, Tracebacks],
    method: str | bytes,
    path: str,
    version: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    server, watcher = served
    head = (method.encode("latin-1") if isinstance(method, str) else method) + b" "
    head += path.encode("latin-1", "replace") + b" " + version.encode() + b"\r\nHost: x\r\n"
    head += b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
    for name, value in headers:
        head += name + b": " + value + b"\r\n"
    answer = server.send(head + b"Connection: close\r\n\r\n" + body)
    status = status_of(answer)
    assert status is None or status == -1 or status < 500, answer[:200]
    assert watcher.found == []


@SETTINGS
@given(
    label=TEXT,
    field=TEXT,
    path=PATHS,
    accept=st.sampled_from(
        [
            "application/json",
            "application/json;as=Table;v=v1;g=meta.k8s.io",
            "application/vnd.kubernetes.protobuf",
            "*/*",
            "text/html;q=0.1, application/*;q=0.9",
        ]
    ),
)
def test_any_selector_and_accept(
    served: tuple[Served, Tracebacks], label: str, field: str, path: str, accept: str
) -> None:
    server, watcher = served
    query = f"?labelSelector={quote(label)}&fieldSelector={quote(field)}"
    answer = server.send(
        f"GET {path}{query} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n".encode()
        + b"Authorization: Bearer "
        + TOKEN.encode()
        + b"\r\nConnection: close\r\n\r\n"
    )
    status = status_of(answer)
    assert status in (200, 400, 404, 406), answer[:300]
    assert watcher.found == []


def test_after_all_that_the_server_answers(served: tuple[Served, Tracebacks]) -> None:
    server, watcher = served
    still_answers(server)
    assert watcher.found == []


# -- kubelet answers -----------------------------------------------------------------------

T = 1_700_000_000.0


def kubelet_body(values: list[float]) -> bytes:
    pods = tuple(
        PodSample(
            "ns",
            f"p{i}",
            "u",
            T - 60,
            (ContainerSample("c", T - 60, Usage(T, 10**9 * (i + 1), 2**20 * (i + 1))),),
        )
        for i in range(3)
    )
    text = render(NodeStats(NodeSample("n", T - 600, Usage(T, 10**11, 2**30)), pods))
    for i, value in enumerate(values):
        # The i-th container's working set, as the kubelet's %g-like rendering wrote it.
        old = f'pod="p{i}"}} '
        at = text.index(old, text.index("container_memory_working_set_bytes")) + len(old)
        end = text.index(" ", at)
        text = text[:at] + repr(value) + text[end:]
    return text.encode()


def assert_real(result: tuple[Any, Any]) -> None:
    node, pods = result
    samples = [node] if node is not None else []
    samples += [c for p in pods for c in p.containers]
    for s in samples:
        assert 0 < s.usage.working_set_bytes < MAX_BYTES
        assert 0 < s.usage.cpu_usage_core_nanoseconds < MAX_CPU_SECONDS * 1e9
        assert math.isfinite(s.usage.timestamp)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_as_a_kubelet_answer(body: bytes) -> None:
    for decode in (
        lambda b: decode_resource_metrics(b, "n", T, []),
        lambda b: decode_summary(b, "n", []),
    ):
        with contextlib.suppress(DecodeError):
            assert_real(decode(body))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(-(2**70), 2**70).map(float),
        ),
        min_size=1,
        max_size=3,
    ),
    st.integers(0, 2000),
    st.binary(max_size=20),
)
def test_a_kubelet_answer_with_any_values_or_a_splice(
    values: list[float], at: int, splice: bytes
) -> None:
    body = kubelet_body(values)
    for candidate in (body, body[:at] + splice + body[at:]):
        rejected: list[str] = []
        try:
            assert_real(decode_resource_metrics(candidate, "n", T, rejected))
        except DecodeError:
            continue
        assert all(isinstance(line, str) and line for line in rejected)
