"""Label and field selectors read and match as apimachinery's do."""

from __future__ import annotations

import pytest

from kubepulse.api.selectors import SelectorError, parse_field_selector, parse_label_selector

WEB = {"app": "web", "tier": "frontend", "kubernetes.io/os": "linux"}
DB = {"app": "db", "tier": "backend"}
BARE: dict[str, str] = {}
OBJECTS = {"web": WEB, "db": DB, "bare": BARE}


@pytest.mark.parametrize(
    ("selector", "matching"),
    [
        pytest.param("", {"web", "db", "bare"}, id="empty-matches-everything"),
        pytest.param("   ", {"web", "db", "bare"}, id="blank-matches-everything"),
        pytest.param("app=web", {"web"}, id="equals"),
        pytest.param("app==web", {"web"}, id="double-equals"),
        pytest.param("app = web", {"web"}, id="spaces-around-operator"),
        pytest.param("app!=web", {"db", "bare"}, id="not-equals-includes-missing-key"),
        pytest.param("app in (web,db)", {"web", "db"}, id="in"),
        pytest.param("app in ( web , nothing )", {"web"}, id="in-with-spaces"),
        pytest.param("app notin (web)", {"db", "bare"}, id="notin-includes-missing-key"),
        pytest.param("tier", {"web", "db"}, id="exists"),
        pytest.param("!tier", {"bare"}, id="does-not-exist"),
        pytest.param("kubernetes.io/os=linux", {"web"}, id="prefixed-key"),
        pytest.param("app=", set(), id="equals-empty-value"),
        pytest.param("app=web,tier=frontend", {"web"}, id="all-requirements-must-hold"),
        pytest.param("app=web,tier=backend", set(), id="conflicting-requirements"),
        pytest.param("tier,app notin (db)", {"web"}, id="exists-and-notin"),
        pytest.param("app in (web,db),tier!=backend", {"web"}, id="comma-inside-parentheses"),
        pytest.param("app=Web", set(), id="values-are-case-sensitive"),
    ],
)
def test_label_selector_matches(selector: str, matching: set[str]) -> None:
    matches = parse_label_selector(selector)
    assert {name for name, labels in OBJECTS.items() if matches(labels)} == matching


@pytest.mark.parametrize(
    "selector",
    [
        pytest.param("=web", id="missing-key"),
        pytest.param("app=web=x", id="two-operators"),
        pytest.param("app in (web", id="unclosed-set"),
        pytest.param("app in ()", id="empty-set"),
        pytest.param("app in web", id="set-without-parentheses"),
        pytest.param("app>web", id="unknown-operator"),
        pytest.param("app=web,", id="trailing-comma"),
        pytest.param("-app=web", id="key-starts-with-dash"),
        pytest.param("app=we b", id="space-in-value"),
        pytest.param("app=web!", id="bad-character-in-value"),
        pytest.param("a/b/c=x", id="two-slashes-in-key"),
    ],
)
def test_bad_label_selector_is_an_error(selector: str) -> None:
    with pytest.raises(SelectorError, match="unable to parse requirement"):
        parse_label_selector(selector)


FIELDS = ("metadata.name", "metadata.namespace")
PODS = {
    "web": {"metadata.name": "web", "metadata.namespace": "default"},
    "dns": {"metadata.name": "coredns", "metadata.namespace": "kube-system"},
}


@pytest.mark.parametrize(
    ("selector", "matching"),
    [
        pytest.param("", {"web", "dns"}, id="empty"),
        pytest.param("metadata.name=web", {"web"}, id="equals"),
        pytest.param("metadata.name==coredns", {"dns"}, id="double-equals"),
        pytest.param("metadata.name!=web", {"dns"}, id="not-equals"),
        pytest.param("metadata.namespace=kube-system", {"dns"}, id="namespace"),
        pytest.param("metadata.namespace=default,metadata.name=web", {"web"}, id="all-must-hold"),
        pytest.param("metadata.namespace=default,metadata.name=coredns", set(), id="none-hold"),
        pytest.param("metadata.name=", set(), id="empty-value"),
    ],
)
def test_field_selector_matches_supported_fields(selector: str, matching: set[str]) -> None:
    matches = parse_field_selector(selector, FIELDS)
    assert {name for name, fields in PODS.items() if matches(fields)} == matching


@pytest.mark.parametrize(
    ("selector", "supported", "field"),
    [
        pytest.param("spec.nodeName=node-a", FIELDS, "spec.nodeName", id="pod-field-on-metrics"),
        pytest.param(
            "metadata.namespace=default",
            ("metadata.name",),
            "metadata.namespace",
            id="namespace-on-nodes",
        ),
        pytest.param(
            "metadata.name=x,status.phase=Running", FIELDS, "status.phase", id="second-requirement"
        ),
        pytest.param("metadata.labels=x", FIELDS, "metadata.labels", id="labels-are-no-field"),
    ],
)
def test_unknown_field_is_an_error(selector: str, supported: tuple[str, ...], field: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(selector, supported)
    assert str(caught.value) == f"field label not supported: {field}"


@pytest.mark.parametrize(
    "selector",
    [
        pytest.param("metadata.name", id="no-operator"),
        pytest.param("=web", id="no-field"),
        pytest.param("metadata.name in (web)", id="set-syntax"),
    ],
)
def test_bad_field_selector_is_an_error(selector: str) -> None:
    with pytest.raises(SelectorError):
        parse_field_selector(selector, FIELDS)
