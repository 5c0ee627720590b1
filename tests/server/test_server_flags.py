"""`kubepulse server` takes metrics-server's whole command line.

data/metrics_server_flags.txt is metrics-server's docs/command-line-flags.txt
(kubernetes-sigs/metrics-server at 5ed5d3a2): its --help, by group.
"""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import pytest

from kubepulse import __version__
from kubepulse.cli import server
from kubepulse.cli.main import build_parser
from kubepulse.cli.server_flags import IGNORED_REASONS
from tests.support import KUBEPULSE

UPSTREAM = Path(__file__).parent / "data" / "metrics_server_flags.txt"
FLAG_LINE = re.compile(r"^  (?:-\w, |    )(--[\w-]+)(?: (\S+))?(?:\s{2,}|$)")
GROUP_LINE = re.compile(r"^(\S.* flags):$")

# A typical value for each of pflag's value types, and for the flags that want more.
TYPICAL = {
    "string": "x",
    "strings": "a,b",
    "duration": "30s",
    "int": "5",
    "float": "0.01",
    "float32": "10",
    "ip": "127.0.0.1",
    "Level": "4",
    "pattern=N,...": "manager=4,client*=2",
    "namedCertKey": "a.crt,a.key:example.com,*.example.com",
    "int32Slice": "23,29",
    "colonSeparatedMultimapStringString": "kube:SomeGate=true",
    "quantity": "1Ki",
}
SPECIFIC = {
    "--tls-min-version": "VersionTLS13",
    "--tls-cipher-suites": "TLS_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "--logging-format": "json",
    "--kubelet-preferred-address-types": "InternalIP,Hostname",
    "--node-selector": "pool=blue",
}


def upstream_flags() -> list[tuple[str, str, str]]:
    """(group, flag, pflag type; "bool" without one) of every flag in the data file."""
    found: list[tuple[str, str, str]] = []
    group = ""
    for line in UPSTREAM.read_text().splitlines():
        if match := GROUP_LINE.match(line):
            group = match.group(1)
        elif match := FLAG_LINE.match(line):
            found.append((group, match.group(1), match.group(2) or "bool"))
    return found


def help_groups(text: str) -> dict[str, str]:
    """flag -> the group it is listed in, from `--help` output."""
    groups: dict[str, str] = {}
    group = ""
    for line in text.splitlines():
        if match := GROUP_LINE.match(line):
            group = match.group(1)
        elif match := FLAG_LINE.match(line):
            groups[match.group(1)] = group
    return groups


def parse(*argv: str) -> server.ServerConfig:
    args = build_parser("server").parse_args(["server", *argv])
    return server.config(args)


def test_the_data_file_holds_metrics_servers_whole_list() -> None:
    flags = upstream_flags()
    assert len(flags) > 100
    assert {g for g, _, _ in flags} >= {"Metrics server flags", "Logging flags"}
    assert ("Logging flags", "--v", "Level") in flags


@pytest.mark.parametrize(
    ("flag", "value_type"),
    [(f, t) for _, f, t in upstream_flags() if f != "--version"],
    ids=lambda x: x,
)
def test_every_metrics_server_flag_parses_with_a_typical_value(flag: str, value_type: str) -> None:
    if value_type == "bool":
        for form in ([flag], [f"{flag}=true"], [f"{flag}=false"]):
            parse(*form)
        return
    value = SPECIFIC.get(flag, TYPICAL[value_type])
    parse(flag, value)
    parse(f"{flag}={value}")


def test_help_lists_every_flag_in_metrics_servers_group() -> None:
    out = subprocess.run(
        [*KUBEPULSE, "server", "--help"], capture_output=True, text=True, check=True
    ).stdout
    listed = help_groups(out)
    missing = [(f, g) for g, f, _ in upstream_flags() if listed.get(f) != g]
    assert not missing, missing
    assert "  -v, --v Level" in out and "  -l, --node-selector string" in out
    # pflag's order: groups as metrics-server prints them, each sorted by name.
    titles = re.findall(r"^(\S.* flags):$", out, re.M)
    upstream_titles = list(dict.fromkeys(g for g, _, _ in upstream_flags()))
    assert titles[: len(upstream_titles)] == upstream_titles


def help_defaults(text: str) -> dict[str, str]:
    """flag -> its default as --help prints it ("(default 1m0s)"); "" for none. pflag's
    zero values ("[default=false]", "[]") count as none."""
    found: dict[str, str] = {}
    flag = ""
    for line in text.splitlines():
        if match := FLAG_LINE.match(line):
            flag = match.group(1)
            found[flag] = ""
        if flag and (default := re.search(r"\(default (.*)\)$", line.rstrip())):
            found[flag] = "" if default.group(1) in ("[]", "false") else default.group(1)
    return found


def test_the_readme_lists_every_default_that_differs_from_metrics_servers() -> None:
    out = subprocess.run(
        [*KUBEPULSE, "server", "--help"], capture_output=True, text=True, check=True
    ).stdout
    ours, theirs = help_defaults(out), help_defaults(UPSTREAM.read_text())
    # Header names are case-insensitive: X-Remote-User is x-remote-user.
    differ = {flag for flag, value in theirs.items() if value.lower() != ours[flag].lower()}
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme.split("Defaults that differ from metrics-server's binary", 1)[1]
    rows = re.findall(r"^\| `(--[\w-]+)` \| `([^`]*)` \| `([^`]*)` \|", table, re.M)
    assert {flag for flag, _, _ in rows} == differ
    for flag, upstream, kubepulse in rows:
        assert theirs[flag] in (upstream, f"[{upstream}]")
        assert ours[flag] in (kubepulse, f"[{kubepulse}]")


def test_version_prints_the_version_and_exits() -> None:
    done = subprocess.run([*KUBEPULSE, "server", "--version"], capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.strip() == f"kubepulse {__version__}"


def test_a_flag_that_means_nothing_here_logs_one_warning_saying_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse("--profiling", "--max-requests-inflight=10", "--goaway-chance", "0.01")
    with caplog.at_level(logging.WARNING):
        config.complete()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 3, warned
    assert any(m.startswith("--profiling ") and "pprof" in m for m in warned)
    assert any(m.startswith("--max-requests-inflight ") for m in warned)
    given = ("--profiling", "--max-requests-inflight", "--goaway-chance")
    assert all(flag in IGNORED_REASONS for flag in given)


def test_flags_left_at_their_defaults_or_turned_off_log_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse("--profiling=false", "--disable-http2-serving", "-v=2")
    with caplog.at_level(logging.WARNING):
        config.complete()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_boolean_that_defaults_to_true_is_turned_off_by_its_false_spelling() -> None:
    def throttled(*argv: str) -> bool:
        return parse(*argv).audit.webhook_batch.throttle_enable

    assert throttled()  # upstream's default for the webhook
    assert not throttled("--audit-webhook-batch-throttle-enable=false")
    assert not throttled(
        "--audit-webhook-batch-throttle-enable", "--audit-webhook-batch-throttle-enable=0"
    )
    assert throttled(
        "--audit-webhook-batch-throttle-enable=false", "--audit-webhook-batch-throttle-enable"
    )


def test_list_flags_repeat_and_add_up_as_pflag_string_slices() -> None:
    config = parse(
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-preferred-address-types", "Hostname,ExternalIP",
    )  # fmt: skip
    assert config.kubelet.preferred_address_types == ("InternalIP", "Hostname", "ExternalIP")
    assert parse().kubelet.preferred_address_types == ("InternalIP", "ExternalIP", "Hostname")


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--bind-address", "localhost"], 'failed to parse IP: "localhost"'),
        (["--kubelet-port", "many"], "--kubelet-port"),
        (["--tls-sni-cert-key", "only-a-cert.crt"], "certificate and key file paths"),
        (["--vmodule", "manager"], "filename=N"),
        (["--profiling=maybe"], 'strconv.ParseBool: parsing "maybe"'),
        (["--kubelet-insecure"], "unknown flag: --kubelet-insecure"),
    ],
)
def test_a_bad_value_is_one_error_line(argv: list[str], error: str) -> None:
    done = subprocess.run([*KUBEPULSE, "server", *argv], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and error in done.stderr, done.stderr
