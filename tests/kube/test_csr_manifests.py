"""`kubepulse manifests --csr-approver`: valid objects with least-privilege RBAC."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiClient

from kubepulse.cli.main import main
from kubepulse.kube import manifests
from kubepulse.kube.manifests import Options
from tests.kube.test_manifests import MODELS, api, round_trip

__all__ = ["api"]  # the fixture


def emitted(capsys: pytest.CaptureFixture[str], *flags: str) -> list[dict[str, Any]]:
    assert main(["manifests", "-o", "json", *flags]) == 0
    return list(json.loads(capsys.readouterr().out)["items"])


def test_the_flag_adds_the_approver_and_nothing_else(capsys: pytest.CaptureFixture[str]) -> None:
    plain = emitted(capsys)
    with_approver = emitted(capsys, "--csr-approver")
    assert with_approver[: len(plain)] == plain
    added = [(o["kind"], o["metadata"]["name"]) for o in with_approver[len(plain) :]]
    assert added == [
        ("ServiceAccount", "kubepulse-csr-approver"),
        ("ClusterRole", "kubepulse-csr-approver"),
        ("ClusterRoleBinding", "kubepulse-csr-approver"),
        ("Deployment", "kubepulse-csr-approver"),
    ]


def test_rbac_is_least_privilege() -> None:
    role = next(o for o in manifests.csr_approver(Options()) if o["kind"] == "ClusterRole")
    granted = {
        (group, resource, name, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames", ["*"])
        for verb in rule["verbs"]
    }
    c = "certificates.k8s.io"
    assert granted == {
        (c, "certificatesigningrequests", "*", "get"),
        (c, "certificatesigningrequests", "*", "list"),
        (c, "certificatesigningrequests", "*", "watch"),
        (c, "certificatesigningrequests/approval", "*", "update"),
        (c, "signers", "kubernetes.io/kubelet-serving", "approve"),
        ("", "nodes", "*", "get"),
        ("", "nodes", "*", "list"),
    }


def test_objects_are_valid_for_the_api_and_run_the_approver(api: ApiClient) -> None:
    objects = manifests.csr_approver(Options(namespace="monitoring"))
    for obj in objects:
        model = MODELS[(obj["apiVersion"], obj["kind"])]
        assert round_trip(api, obj) == obj, model
    deployment = objects[-1]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kubepulse-csr-approver"
    assert pod["containers"][0]["args"] == ["csr-approver"]
    binding = objects[2]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubepulse-csr-approver", "namespace": "monitoring"}
    ]
