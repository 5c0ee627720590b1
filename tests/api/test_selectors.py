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


NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


# The messages are kubectl 1.32's own for the same selectors (labels.Parse).
@pytest.mark.parametrize(
    ("selector", "message"),
    [
        pytest.param(
            "=web", "found '=', expected: !, identifier, or 'end of string'", id="missing-key"
        ),
        pytest.param(
            "app=web=x", "found '=', expected: ',' or 'end of string'", id="two-operators"
        ),
        pytest.param(
            "app in (web",
            "unable to parse requirement: found '', expected: ',' or ')'",
            id="unclosed-set",
        ),
        pytest.param(
            "app in web",
            "unable to parse requirement: found 'web' expected: '('",
            id="set-without-parentheses",
        ),
        pytest.param(
            "app>web",
            'unable to parse requirement: values[0]: Invalid value: "web": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
            id="gt-needs-an-integer",
        ),
        pytest.param("app=web,", "found '', expected: identifier after ','", id="trailing-comma"),
        pytest.param(
            "-app=web",
            f'unable to parse requirement: <nil>: Invalid value: "-app": name part {NAME_RULE}',
            id="key-starts-with-dash",
        ),
        pytest.param(
            "app=we b", "found 'b', expected: ',' or 'end of string'", id="space-in-value"
        ),
        pytest.param(
            "app=web!", "found '!', expected: ',' or 'end of string'", id="bang-after-value"
        ),
        pytest.param(
            "a/b/c=x",
            'unable to parse requirement: <nil>: Invalid value: "a/b/c": '
            f"a qualified name {NAME_RULE} with an optional DNS subdomain prefix "
            "and '/' (e.g. 'example.com/MyName')",
            id="two-slashes-in-key",
        ),
        pytest.param(
            "!app=x", "found '=', expected: ',' or 'end of string'", id="negation-with-value"
        ),
        pytest.param(
            ",app", "found ',', expected: !, identifier, or 'end of string'", id="leading-comma"
        ),
    ],
)
def test_bad_label_selector_is_an_error_worded_as_apimachinery(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_label_selector(selector)
    assert str(err.value) == message


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
