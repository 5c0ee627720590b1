"""audit.k8s.io/v1 Policy: at what level, and at which stages, a request is recorded.

The rules are checked in order and the first that matches gives the level; no match is
level None (k8s.io/apiserver/pkg/audit/policy/checker.go).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubepulse.api.authz import Attributes

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
API_VERSIONS = ("audit.k8s.io/v1", "audit.k8s.io/v1beta1")


class PolicyError(ValueError):
    """An audit policy file that cannot be used."""


@dataclass(frozen=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()

    def matches(self, a: Attributes) -> bool:
        if self.group != a.api_group:
            return False
        if not self.resources:
            return True
        if self.resource_names and a.name not in self.resource_names:
            return False
        combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        for res in self.resources:
            if res in (combined, "*"):
                return True
            if a.subresource and res.startswith("*/") and a.subresource == res[2:]:
                return True
            if res.endswith("/*") and a.resource == res[:-2]:
                return True
        return False


@dataclass(frozen=True)
class Rule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()

    def matches(self, user: str, groups: Sequence[str], a: Attributes) -> bool:
        if self.users and user not in self.users:
            return False
        if self.user_groups and not set(groups) & set(self.user_groups):
            return False
        if self.verbs and a.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            if not a.resource_request:
                return False
            # A cluster-scoped resource has the namespace "".
            if self.namespaces and a.namespace not in self.namespaces:
                return False
            return not self.resources or any(gr.matches(a) for gr in self.resources)
        if self.non_resource_urls:
            return not a.resource_request and any(
                _path_matches(a.path, spec) for spec in self.non_resource_urls
            )
        return True


def _path_matches(path: str, spec: str) -> bool:
    return spec in ("*", path) or (spec.endswith("*") and path.startswith(spec.rstrip("*")))


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    omit_stages: frozenset[str] = frozenset()

    def decide(self, user: str, groups: Sequence[str], a: Attributes) -> tuple[str, frozenset[str]]:
        """The level of a request and the stages it is not recorded at."""
        for rule in self.rules:
            if rule.matches(user, groups, a):
                return rule.level, self.omit_stages | rule.omit_stages
        return "None", self.omit_stages


def load(path: Path) -> Policy:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise PolicyError(f"cannot read audit policy {path}: {err}") from err
    if not isinstance(doc, Mapping) or doc.get("kind") != "Policy":
        raise PolicyError(f"{path}: not an audit Policy (kind: Policy)")
    if doc.get("apiVersion") not in API_VERSIONS:
        raise PolicyError(f"{path}: apiVersion must be one of {', '.join(API_VERSIONS)}")
    rules = tuple(_rule(r, i) for i, r in enumerate(_list(doc, "rules")))
    if not rules:
        raise PolicyError(f"{path}: the policy has no rules: nothing would be recorded")
    return Policy(rules, _stages(doc, "policy"))


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise PolicyError(f"{key} must be a list")
    return value


def _strings(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(str(v) for v in _list(doc, key))


def _stages(doc: Mapping[str, Any], where: str) -> frozenset[str]:
    stages = _strings(doc, "omitStages")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise PolicyError(f"{where}: unknown omitStages {', '.join(unknown)}")
    return frozenset(stages)


def _rule(doc: Any, index: int) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(doc, Mapping):
        raise PolicyError(f"{where} must be a mapping")
    level = doc.get("level")
    if level not in LEVELS:
        raise PolicyError(f"{where}: level must be one of {', '.join(LEVELS)}")
    resources = tuple(
        GroupResources(
            str(gr.get("group", "")),
            _strings(gr, "resources"),
            _strings(gr, "resourceNames"),
        )
        for gr in _list(doc, "resources")
        if isinstance(gr, Mapping)
    )
    urls = _strings(doc, "nonResourceURLs")
    if urls and (resources or doc.get("namespaces")):
        raise PolicyError(f"{where}: rules cannot apply to both resources and nonResourceURLs")
    return Rule(
        level=str(level),
        users=_strings(doc, "users"),
        user_groups=_strings(doc, "userGroups"),
        verbs=_strings(doc, "verbs"),
        resources=resources,
        namespaces=_strings(doc, "namespaces"),
        non_resource_urls=urls,
        omit_stages=_stages(doc, where),
    )
