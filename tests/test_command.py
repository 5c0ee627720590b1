"""The installed `kubepulse` console script: the entry point pyproject declares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kubepulse import __version__

SCRIPT = Path(sys.executable).with_name("kubepulse")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_console_script_is_installed_beside_the_interpreter() -> None:
    assert SCRIPT.exists(), "pip install -e . installs bin/kubepulse"
    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"kubepulse {__version__}\n")


@pytest.mark.parametrize(
    "command", ["agent", "server", "top", "up", "dashboard", "doctor", "manifests", "csr-approver"]
)
def test_every_subcommand_answers_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    if command == "server":  # laid out as the Kubernetes component it replaces
        assert f"\nUsage:\n  kubepulse {command} [flags]\n" in result.stdout
    else:
        assert result.stdout.startswith(f"usage: kubepulse {command}")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["nonsense"], "error: argument COMMAND: invalid choice: 'nonsense'"),
        ([], "error: the following arguments are required: COMMAND"),
    ],
)
def test_bad_command_lines_get_one_line_and_exit_one(args: list[str], line: str) -> None:
    result = run(*args)
    assert result.returncode == 1
    assert result.stderr.startswith(line) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_a_command_imports_only_its_own_module() -> None:
    """`kubepulse top` answers without loading the server, dashboard or agent."""
    code = (
        "import sys\n"
        "from kubepulse.cli.main import main\n"
        "main(['top', 'nodes', '--kubeconfig', '/nonexistent'])\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('kubepulse.cli.'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    loaded = set(result.stdout.split())
    assert "kubepulse.cli.top" in loaded, result.stderr
    others = {"agent", "csr_approver", "dashboard", "doctor", "manifests", "server", "up"}
    assert not loaded & {f"kubepulse.cli.{name}" for name in others}


@pytest.mark.parametrize(
    ("argv", "insecure"),
    [
        (["--kubelet-insecure-tls"], True),
        (["--kubelet-insecure-tls=true"], True),
        (["--kubelet-insecure-tls=false"], False),
        ([], False),
    ],
)
def test_boolean_flags_take_values_as_metrics_servers_flags_do(
    argv: list[str], insecure: bool
) -> None:
    """metrics-server's manifests say --kubelet-insecure-tls=true; pflag takes both."""
    from kubepulse.cli.main import build_parser

    args = build_parser("server").parse_args(["server", *argv])
    assert args.kubelet_insecure_tls is insecure


@pytest.mark.parametrize(
    ("argv", "max_size"),
    [
        ([], "default"),
        (["--history-max-size", "0"], None),
        (["--history-max-size", "3Gi"], 3 << 30),
    ],
)
def test_history_is_capped_by_default_and_zero_means_no_cap(
    argv: list[str], max_size: int | str | None
) -> None:
    from kubepulse.cli.main import build_parser
    from kubepulse.cli.server import history_options
    from kubepulse.server.config import DEFAULT_MAX_SIZE

    args = build_parser("server").parse_args(["server", *argv])
    expected = DEFAULT_MAX_SIZE if max_size == "default" else max_size
    assert history_options(args).max_size == expected
