"""audit.k8s.io/v1 Event objects, and kube-apiserver's one-line "legacy" form of them
(k8s.io/apiserver/pkg/audit/format.go). Request headers are never copied into an event:
the bearer token stays out of the audit log."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from kubepulse.api.authz import Attributes

API_VERSION = "audit.k8s.io/v1"


def micro_time(t: float) -> str:
    """metav1.MicroTime as JSON: RFC 3339 with microseconds, in UTC."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_nano(micro: str) -> str:
    """A micro_time() as Go's time.RFC3339Nano writes it: trailing zeros dropped."""
    head, _, fraction = micro.removesuffix("Z").partition(".")
    fraction = fraction.rstrip("0")
    return head + (f".{fraction}" if fraction else "") + "Z"


@dataclass
class Record:
    """One request, as the audit filter sees it, from its arrival on."""

    audit_id: str
    received: float
    level: str
    omit_stages: frozenset[str]
    attributes: Attributes
    uri: str
    source_ips: list[str]
    user_agent: str
    user: dict[str, Any] = field(default_factory=dict)
    request_object: Any = None

    def event(
        self,
        stage: str,
        now: float,
        response_status: dict[str, Any] | None = None,
        response_object: Any = None,
    ) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": API_VERSION,
            "level": self.level,
            "auditID": self.audit_id,
            "stage": stage,
            "requestURI": self.uri,
            "verb": self.attributes.verb,
            "user": self.user,
            "sourceIPs": self.source_ips,
        }
        if self.user_agent:
            ev["userAgent"] = self.user_agent
        if self.attributes.resource_request:
            ev["objectRef"] = object_ref(self.attributes)
        if response_status is not None:
            ev["responseStatus"] = response_status
        if self.level in ("Request", "RequestResponse") and self.request_object is not None:
            ev["requestObject"] = self.request_object
        if self.level == "RequestResponse" and response_object is not None:
            ev["responseObject"] = response_object
        ev["requestReceivedTimestamp"] = micro_time(self.received)
        ev["stageTimestamp"] = micro_time(now)
        return ev


def object_ref(a: Attributes) -> dict[str, str]:
    ref = {
        "resource": a.resource,
        "namespace": a.namespace,
        "name": a.name,
        "apiGroup": a.api_group,
        "apiVersion": a.api_version,
        "subresource": a.subresource,
    }
    return {k: v for k, v in ref.items() if v}  # omitempty, as every field of ObjectReference


def response_status(code: int, body: Any) -> dict[str, Any]:
    """The event's responseStatus: the code, and the bounded fields of a Status answer
    (audit.LogResponseObject copies status, message, reason, details and code)."""
    found: dict[str, Any] = {"metadata": {}, "code": code}
    if isinstance(body, dict) and body.get("kind") == "Status":
        for key in ("status", "message", "reason", "details"):
            if body.get(key):
                found[key] = body[key]
    return found


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # Go's %q for what a request carries


def legacy_line(ev: dict[str, Any]) -> str:
    """--audit-log-format=legacy: format.go's EventString."""
    user = ev.get("user") or {}
    username, groups = "<none>", "<none>"
    if user.get("username"):
        username = user["username"]
        if user.get("groups"):
            groups = ",".join(_quoted(g) for g in user["groups"])
    namespace = (ev.get("objectRef") or {}).get("namespace") or "<none>"
    status = ev.get("responseStatus")
    response = str(status["code"]) if status is not None else "<deferred>"
    ips = ev.get("sourceIPs") or ["<unknown>"]
    fields = [
        ("id", ev["auditID"]),
        ("stage", ev["stage"]),
        ("ip", ips[0]),
        ("method", ev["verb"]),
        ("user", username),
        ("groups", groups),
        ("as", "<self>"),
        ("asgroups", "<lookup>"),
        ("user-agent", ev.get("userAgent", "")),
        ("namespace", namespace),
        ("uri", ev["requestURI"]),
    ]
    stamp = rfc3339_nano(ev["requestReceivedTimestamp"])
    text = " ".join(f"{key}={_quoted(value)}" for key, value in fields)
    return f'{stamp} AUDIT: {text} response="{response}"'
