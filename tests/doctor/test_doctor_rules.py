"""The pure rules of doctor: APIService conditions, clock skew, /readyz lines, missing
metrics, certificate names."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

import pytest

from kubepulse import pki
from kubepulse.doctor import cluster, report
from kubepulse.doctor.findings import Finding, fail, ok, warn
from kubepulse.doctor.kubelets import (
    Answer,
    KubeletTLS,
    certificate_findings,
    clock_finding,
    skew_bounds,
)
from kubepulse.kube.objects import node_from_object, pod_from_object
from tests.fakeapi import objects

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def apiservice(available: dict[str, str] | None) -> dict[str, Any]:
    return {
        "spec": {"service": {"namespace": "kube-system", "name": "metrics-server", "port": 443}},
        "status": {"conditions": [{"type": "Available", **available}] if available else []},
    }


@pytest.mark.parametrize(
    ("condition", "status", "words", "fix"),
    [
        ({"status": "True", "reason": "Passed"}, "ok", "is Available", ""),
        (
            {
                "status": "False",
                "reason": "FailedDiscoveryCheck",
                "message": "failing or missing response from https://10.96.0.5:443/apis/"
                "metrics.k8s.io/v1beta1: context deadline exceeded",
            },
            "fail",
            "could not get a good answer",
            "must reach the metrics server's pod IP",
        ),
        (
            {"status": "False", "reason": "MissingEndpoints"},
            "fail",
            "no metrics server pod is Ready",
            "two good scrapes",
        ),
        ({"status": "False", "reason": "ServiceNotFound"}, "fail", "does not exist", "Service"),
        ({"status": "False", "reason": "Odd"}, "fail", "Odd", "logs"),
        (None, "warn", "no Available condition", "wait"),
    ],
)
def test_apiservice_conditions_are_explained(
    condition: dict[str, str] | None, status: str, words: str, fix: str
) -> None:
    (found,) = cluster.apiservice_findings(apiservice(condition))
    assert found.status == status
    assert words in found.what and "kube-system/metrics-server:443" in found.what
    assert fix in found.fix


def answer(remote: dt.datetime, sent: float, received: float) -> Answer:
    return Answer(None, remote, sent, received)


@pytest.mark.parametrize(
    ("offset", "status"),
    [(0.0, "ok"), (1.5, "ok"), (-1.5, "ok"), (4.0, "warn"), (-4.0, "warn"), (400.0, "fail")],
)
def test_clock_skew_thresholds(offset: float, status: str) -> None:
    """The Date header is whole seconds: only a skew certainly above 2 s warns."""
    local = NOW.timestamp()
    remote = dt.datetime.fromtimestamp(int(local + offset), dt.UTC)
    bounds = skew_bounds(answer(remote, local - 0.01, local + 0.01))
    assert bounds is not None
    node = node_from_object(objects.node("n1", "127.0.0.2"))
    assert clock_finding(node, bounds).status == status


def test_readyz_lines_name_failing_nodes() -> None:
    text = (
        "[+]ping ok\n[-]metric-storage-ready failed: reason withheld\n"
        '[!]scrape node/worker-1: dns: Get "https://worker-1:10250/metrics/resource": dial tcp: '
        "lookup worker-1: no such host\nreadyz check failed\n"
    )
    found, nodes = cluster.readyz_findings(text)
    assert nodes == {"worker-1"}
    assert [(f.subject, f.status) for f in found] == [
        ("metrics.k8s.io", "warn"),
        ("node/worker-1", "fail"),
    ]
    assert "no such host" in found[1].what


def test_missing_metrics_young_pods_are_expected_old_ones_warn() -> None:
    nodes = [node_from_object(objects.node(n, "127.0.0.2")) for n in ("a", "b")]
    young = objects.pod("default", "new", "a")
    young["status"]["startTime"] = (NOW - dt.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = objects.pod("default", "old", "a")
    old["status"]["startTime"] = (NOW - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    pods = [pod_from_object(young), pod_from_object(old)]
    found = cluster.metrics_findings(nodes, [{"metadata": {"name": "a"}}], pods, [], 15.0, NOW)
    by_check = {f.check: f for f in found if f.status != "ok"}
    assert "1 of 2 node(s) have no metrics: b" in by_check["metrics"].what
    assert "default/old" in by_check["pod-metrics"].what
    assert "default/new" not in by_check["pod-metrics"].what
    assert any(f.status == "ok" and "default/new" in f.what for f in found)


def test_a_hostname_address_must_be_a_dns_san() -> None:
    ca = pki.new_ca("ca")
    pair = pki.issue(ca, "n1", dns_names=["n1.lan"], ips=[ipaddress.ip_address("127.0.0.2")])
    node = node_from_object(objects.node("n1", "127.0.0.2"))
    tls = KubeletTLS(ca.cert_pem(), "ca")
    now = dt.datetime.now(dt.UTC)
    (found,) = certificate_findings(node, "Hostname", "n1", pair.cert, tls, None, now)
    assert found.status == "fail"
    assert "x509: certificate is valid for n1.lan, not n1" in found.what
    # --kubelet-insecure-tls: the same fault is only a warning.
    insecure = KubeletTLS(insecure=True)
    (lenient,) = certificate_findings(node, "Hostname", "n1", pair.cert, insecure, None, now)
    assert lenient.status == "warn" and "--kubelet-insecure-tls" in lenient.what


def test_report_groups_by_subject_with_the_fix_indented() -> None:
    findings: list[Finding] = [
        ok("api", "cluster", "fine"),
        fail("port", "node/a", "refused", "start it"),
        warn("clock", "node/a", "late", "sync"),
    ]
    assert report.text(findings, unicode=False) == (
        "cluster\n  OK api: fine\n\nnode/a\n  FAIL port: refused\n      fix: start it\n"
        "  WARN clock: late\n      fix: sync\n\n1 ok, 1 warning(s), 1 failure(s)\n"
    )
