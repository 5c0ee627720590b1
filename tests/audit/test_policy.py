"""audit.k8s.io/v1 Policy rules, matched as k8s.io/apiserver's policy checker does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubepulse.api.authz import request_attributes
from kubepulse.audit.policy import Policy, PolicyError, load


def policy(tmp_path: Path, rules: list[dict[str, object]], **more: object) -> Policy:
    doc = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": rules, **more}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(doc))
    return load(tmp_path / "policy.yaml")


def level(p: Policy, path: str, user: str = "ann", groups: tuple[str, ...] = ()) -> str:
    return p.decide(user, groups, request_attributes("GET", path, {}))[0]


M = "/apis/metrics.k8s.io/v1beta1"


@pytest.mark.parametrize(
    ("rule", "path", "user", "groups", "matched"),
    [
        ({"users": ["ann"]}, f"{M}/nodes", "ann", (), True),
        ({"users": ["ann"]}, f"{M}/nodes", "bob", (), False),
        ({"userGroups": ["ops"]}, f"{M}/nodes", "bob", ("dev", "ops"), True),
        ({"userGroups": ["ops"]}, f"{M}/nodes", "bob", ("dev",), False),
        ({"verbs": ["list"]}, f"{M}/nodes", "ann", (), True),
        ({"verbs": ["list"]}, f"{M}/nodes/n1", "ann", (), False),
        ({"resources": [{"group": "metrics.k8s.io"}]}, f"{M}/pods", "ann", (), True),
        ({"resources": [{"group": ""}]}, f"{M}/pods", "ann", (), False),
        (
            {"resources": [{"group": "metrics.k8s.io", "resources": ["pods"]}]},
            f"{M}/namespaces/a/pods",
            "ann",
            (),
            True,
        ),
        (
            {
                "resources": [
                    {"group": "metrics.k8s.io", "resources": ["nodes"], "resourceNames": ["n1"]}
                ]
            },
            f"{M}/nodes/n2",
            "ann",
            (),
            False,
        ),
        (
            {"resources": [{"group": "", "resources": ["pods/*"]}]},
            "/api/v1/namespaces/a/pods/p/log",
            "ann",
            (),
            True,
        ),
        (
            {"resources": [{"group": "", "resources": ["*/log"]}]},
            "/api/v1/namespaces/a/pods/p/log",
            "ann",
            (),
            True,
        ),
        (
            {"resources": [{"group": "", "resources": ["pods"]}]},
            "/api/v1/namespaces/a/pods/p/log",
            "ann",
            (),
            False,
        ),
        ({"namespaces": ["a"]}, f"{M}/namespaces/a/pods", "ann", (), True),
        ({"namespaces": ["a"]}, f"{M}/pods", "ann", (), False),
        ({"namespaces": [""]}, f"{M}/nodes", "ann", (), True),  # cluster-scoped
        ({"namespaces": ["a"]}, "/healthz", "ann", (), False),
        ({"nonResourceURLs": ["/healthz*"]}, "/healthz/ping", "ann", (), True),
        ({"nonResourceURLs": ["/healthz"]}, "/healthz/ping", "ann", (), False),
        ({"nonResourceURLs": ["*"]}, f"{M}/nodes", "ann", (), False),  # a resource request
    ],
)
def test_a_rule_matches_as_the_apiservers_checker(
    tmp_path: Path,
    rule: dict[str, object],
    path: str,
    user: str,
    groups: tuple[str, ...],
    matched: bool,
) -> None:
    p = policy(tmp_path, [{"level": "Request", **rule}])
    assert level(p, path, user, groups) == ("Request" if matched else "None")


def test_the_first_matching_rule_wins_and_omit_stages_add_up(tmp_path: Path) -> None:
    p = policy(
        tmp_path,
        [
            {"level": "None", "users": ["system:kube-proxy"]},
            {"level": "Metadata", "verbs": ["get"], "omitStages": ["ResponseComplete"]},
            {"level": "RequestResponse"},
        ],
        omitStages=["RequestReceived"],
    )
    get = request_attributes("GET", f"{M}/nodes/n1", {})
    assert p.decide("system:kube-proxy", (), get) == ("None", frozenset({"RequestReceived"}))
    assert p.decide("ann", (), get) == (
        "Metadata",
        frozenset({"RequestReceived", "ResponseComplete"}),
    )
    assert level(p, f"{M}/nodes") == "RequestResponse"


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ({"apiVersion": "v1", "kind": "Policy", "rules": [{"level": "None"}]}, "apiVersion"),
        ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": []}, "no rules"),
        ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "All"}]}, "level"),
        (
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "None", "omitStages": ["Done"]}],
            },
            "omitStages",
        ),
        (
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [
                    {"level": "None", "nonResourceURLs": ["/x"], "resources": [{"group": ""}]}
                ],
            },
            "both",
        ),
    ],
)
def test_a_policy_that_cannot_be_used_is_refused(
    tmp_path: Path, doc: dict[str, object], error: str
) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyError, match=error):
        load(tmp_path / "p.yaml")
