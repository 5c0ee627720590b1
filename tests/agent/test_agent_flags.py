"""The `kubepulse agent` flags: the kubelet's defaults and the forms of their values."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from kubepulse.cli.main import build_parser
from kubepulse.model import Resources

MI, GI = 1024**2, 1024**3


def parse(*argv: str) -> argparse.Namespace:
    """The agent's own subcommand parser, as `kubepulse agent ARGV` builds it (no port bound)."""
    parser = build_parser("agent")
    return parser.parse_args(["agent", *argv])


@pytest.mark.parametrize(
    ("flag", "default"),
    [
        pytest.param("port", 10250, id="port-is-the-kubelets-10250"),
        pytest.param("address", "0.0.0.0", id="address-is-every-interface"),
        pytest.param("housekeeping_interval", 10.0, id="housekeeping-is-cadvisors-10s"),
        pytest.param("system_reserved", Resources(), id="nothing-reserved"),
        pytest.param("hostname_override", None, id="node-name-is-the-hostname"),
    ],
)
def test_agent_flag_defaults(flag: str, default: Any) -> None:
    assert getattr(parse(), flag) == default


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            "cpu=500m,memory=1Gi",
            Resources(cpu_millicores=500, memory_bytes=GI),
            id="millicores-and-binary-suffix",
        ),
        pytest.param("cpu=1.5", Resources(cpu_millicores=1500), id="fractional-cores"),
        pytest.param("memory=100M", Resources(memory_bytes=100_000_000), id="decimal-suffix"),
        pytest.param(
            " memory=512Mi , cpu=2 ",
            Resources(cpu_millicores=2000, memory_bytes=512 * MI),
            id="any-order-and-spaces",
        ),
    ],
)
def test_system_reserved_takes_kubelet_quantities(value: str, expected: Resources) -> None:
    assert parse("--system-reserved", value).system_reserved == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("disk=1Gi", id="unknown-resource"),
        pytest.param("cpu", id="no-value"),
        pytest.param("memory=lots", id="not-a-quantity"),
    ],
)
def test_system_reserved_refuses_what_the_kubelet_refuses(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse("--system-reserved", value)
    assert "--system-reserved" in capsys.readouterr().err
