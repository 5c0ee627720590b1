"""--kubelet-certificate-authority-text and --deprecated-kubelet-completely-insecure,
against kubelets on loopback (tests/fakeapi/kubelets.py)."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from kubepulse import pki
from tests.fakeapi.kubelets import FakeKubelets
from tests.server.fleet import SERVER_TOKEN, M, node, server_args
from tests.support import KUBEPULSE, Running, free_port, run_kubepulse, wait_for, wait_serving

KUBELET_TOKEN = "kubelet-token-5c1f"


@contextmanager
def server(
    tmp: Path, nodes: list[dict[str, object]], *extra: str
) -> Iterator[tuple[Running, Callable[[], list[str]]]]:
    """A server scraping nodes; yields it and what its metrics API serves."""
    (tmp / "targets.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": nodes})
    )
    port = free_port()
    args = [
        *server_args(tmp, port),
        "--kubelet-use-node-status-port",
        "--metric-resolution", "2s",
        "--kubelet-request-timeout", "1s",
        *extra,
    ]  # fmt: skip
    with run_kubepulse(args, tmp / "server.log") as running:
        wait_serving(running, port)
        ctx = ssl.create_default_context(cafile=str(tmp / "pki" / "ca.crt"))

        def served() -> list[str]:
            request = urllib.request.Request(
                f"https://127.0.0.1:{port}{M}/nodes",
                headers={"Authorization": f"Bearer {SERVER_TOKEN}"},
            )
            with urllib.request.urlopen(request, context=ctx, timeout=10) as resp:
                return [i["metadata"]["name"] for i in json.load(resp)["items"]]

        yield running, served


def test_the_kubelet_ca_can_be_given_as_text(tmp_path: Path) -> None:
    ca = pki.new_ca("kubelet-ca")
    with FakeKubelets(ca, KUBELET_TOKEN) as kubelets:
        port = kubelets.add("node-a", "127.0.0.2")
        (tmp_path / "kubelet-token").write_text(KUBELET_TOKEN)
        ca_text = ca.cert_pem().decode()
        with server(
            tmp_path,
            [node("node-a", "127.0.0.2", port)],
            "--kubelet-certificate-authority-text", ca_text,
            "--kubelet-token-file", str(tmp_path / "kubelet-token"),
        ) as (_, served):  # fmt: skip
            wait_for(lambda: served() == ["node-a"], what="node-a served")
        assert kubelets.nodes["node-a"].authorizations[0] == f"Bearer {KUBELET_TOKEN}"


def test_another_ca_as_text_does_not_verify_the_kubelet(tmp_path: Path) -> None:
    ca = pki.new_ca("kubelet-ca")
    with FakeKubelets(ca, KUBELET_TOKEN) as kubelets:
        port = kubelets.add("node-a", "127.0.0.2")
        other = pki.new_ca("someone-else").cert_pem().decode()
        with server(
            tmp_path,
            [node("node-a", "127.0.0.2", port)],
            "--kubelet-certificate-authority-text", other,
        ) as (running, served):  # fmt: skip
            wait_for(lambda: "certificate signed by unknown authority" in running.log())
            assert served() == []


def test_completely_insecure_scrapes_over_http_without_credentials(tmp_path: Path) -> None:
    with FakeKubelets(pki.new_ca("unused"), KUBELET_TOKEN) as kubelets:
        port = kubelets.add("node-a", "127.0.0.2", plain=True)
        with server(
            tmp_path,
            [node("node-a", "127.0.0.2", port)],
            "--deprecated-kubelet-completely-insecure",
        ) as (running, served):
            wait_for(lambda: served() == ["node-a"], what="node-a served")
            log = running.log()
        kubelet = kubelets.nodes["node-a"]
        assert kubelet.requests > 0 and kubelet.authorizations == []
        warned = [line for line in log.splitlines() if "completely-insecure" in line]
        assert len(warned) == 1 and " WARNING " in warned[0] and "plain HTTP" in warned[0]


def refusal(tmp: Path, *flags: str) -> str:
    """What `kubepulse server` says on stderr when it refuses flags; it must exit 1."""
    (tmp / "targets.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [node("a", "127.0.0.2", 1)]})
    )
    done = subprocess.run(
        [*KUBEPULSE, *server_args(tmp, free_port()), *flags],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    return done.stderr


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("--kubelet-certificate-authority", "--kubelet-certificate-authority-text"),
        ("--kubelet-certificate-authority-text", "--kubelet-insecure-tls"),
        ("--kubelet-token-file", "--deprecated-kubelet-completely-insecure"),
        ("--kubelet-certificate-authority-text", "--deprecated-kubelet-completely-insecure"),
        ("--kubelet-insecure-tls", "--deprecated-kubelet-completely-insecure"),
    ],
)
def test_kubelet_flags_that_contradict_are_refused_as_metrics_server_refuses_them(
    tmp_path: Path, first: str, second: str
) -> None:
    ca = pki.new_ca("kubelet-ca")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem())
    (tmp_path / "token").write_text(KUBELET_TOKEN)
    values = {
        "--kubelet-certificate-authority": [str(tmp_path / "ca.crt")],
        "--kubelet-certificate-authority-text": [ca.cert_pem().decode()],
        "--kubelet-token-file": [str(tmp_path / "token")],
    }
    flags = [first, *values.get(first, []), second, *values.get(second, [])]
    assert refusal(tmp_path, *flags) == f"error: cannot use both {first} and {second}\n"


def test_a_kubelet_ca_text_that_holds_no_certificate_is_one_line(tmp_path: Path) -> None:
    said = refusal(tmp_path, "--kubelet-certificate-authority-text", "not a certificate")
    assert said.startswith("error: cannot load the kubelet CA text: ")
    assert said.count("\n") == 1 and "_ssl.c" not in said
