"""Time as Kubernetes writes it on the wire."""

from __future__ import annotations

import time


def rfc3339(epoch_seconds: float) -> str:
    """metav1.Time: RFC 3339 in UTC, whole seconds (apimachinery meta/v1/time.go)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))
