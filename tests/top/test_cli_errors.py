"""Bad input to `kubepulse top` gets one readable line on stderr and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import KUBECTL, KUBEPULSE, free_port
from tests.top.conftest import Cluster


def top(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KUBEPULSE, "top", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unknown_resource(cluster: Cluster) -> None:
    line = one_line_error(top("deployments", "--kubeconfig", str(cluster.kubeconfig)))
    assert line == 'error: unknown resource "deployments": top shows node or pod'


def test_no_kubeconfig(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    line = one_line_error(top("nodes", env={"KUBECONFIG": str(missing), "HOME": str(tmp_path)}))
    assert line.startswith("error: no kubeconfig found")
    assert str(missing) in line


def test_unreachable_server(tmp_path: Path, cluster: Cluster) -> None:
    port = free_port()  # nothing listens here
    config = tmp_path / "kubeconfig"
    config.write_text(cluster.kubeconfig.read_text().replace(f":{cluster.port}", f":{port}"))
    line = one_line_error(top("pods", "--kubeconfig", str(config)))
    assert line == (
        f"The connection to the server 127.0.0.1:{port} was refused - "
        "did you specify the right host or port?"
    )


def test_kubeconfig_that_is_not_yaml(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text("clusters: [\n")
    line = one_line_error(top("nodes", "--kubeconfig", str(config)))
    assert line == f"error: kubeconfig {config} is not valid YAML"


def test_unknown_context(cluster: Cluster) -> None:
    line = one_line_error(top("nodes", "--kubeconfig", str(cluster.kubeconfig), "--context", "x"))
    assert line == 'error: context "x" does not exist'


def test_an_exec_section_without_interactive_mode_is_refused_as_kubectl_refuses_it(
    tmp_path: Path, cluster: Cluster
) -> None:
    text = cluster.kubeconfig.read_text()
    token_line = next(line for line in text.splitlines() if "token:" in line)
    config = tmp_path / "kubeconfig"
    config.write_text(
        text.replace(
            token_line, "    exec: {apiVersion: client.authentication.k8s.io/v1, command: aws}"
        )
    )
    line = one_line_error(top("nodes", "--kubeconfig", str(config)))
    assert line == (
        "error: interactiveMode must be specified for kubepulse-admin to use exec "
        "authentication plugin"
    )
    kubectl = subprocess.run(
        [KUBECTL, "--kubeconfig", str(config), "top", "nodes"], capture_output=True, text=True
    )
    assert (kubectl.returncode, kubectl.stderr) == (1, line + "\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pods", "--sort-by=name"], "error: --sort-by accepts only cpu or memory"),
        (["pods", "--bogus"], "error: unknown flag: --bogus"),
        (["pods", "-l", "a=b=c"], "error: found '=', expected: ',' or 'end of string'"),
        (["nodes", "--interval", "0"], "error: --interval must be greater than 0"),
        (
            ["pods", "-o", "xml"],
            'error: unable to match a printer suitable for the output format "xml",'
            " allowed formats are: json,yaml,wide",
        ),
    ],
)
def test_bad_flags(cluster: Cluster, args: list[str], message: str) -> None:
    line = one_line_error(top(*args, "--kubeconfig", str(cluster.kubeconfig)))
    assert line == message


@pytest.mark.parametrize("command", ["top", "recommend"])
def test_help_names_the_output_formats_in_words(command: str) -> None:
    done = subprocess.run(
        [*KUBEPULSE, command, "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    # argparse's own list of choices showed the empty default as "{,json,yaml,wide}".
    assert "{," not in done.stdout
    assert "-o FORMAT, --output FORMAT" in done.stdout
    assert "json, yaml" in " ".join(done.stdout.split())
