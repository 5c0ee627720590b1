"""Which REST path serves a kind: API discovery, as kubectl's RESTMapper finds it.

An object names its apiVersion and kind; the API serves resources. Each group version's
APIResourceList (`/api/v1`, `/apis/{group}/{version}`) lists its resources with their
kind, scope and verbs, and its subresources as `resource/sub` entries (`deployments/scale`,
`pods/log`). The lists are fetched with the user's own token and kept for a few minutes:
what the API serves does not depend on who asks (system:discovery lets every
authenticated user read them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubepulse.kube.client import ApiError, KubeClient

CACHE_SECONDS = 300.0
# apimachinery's rules: a DNS-1123 subdomain group, a version like v1, v2beta1.
API_VERSION = re.compile(r"(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?")
KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")


class UnknownKind(Exception):
    """The API serves no such kind; the message says so in kubectl's words."""


@dataclass(frozen=True, slots=True)
class APIResource:
    group: str
    version: str
    name: str
    kind: str
    namespaced: bool
    subresources: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        """The collection (no name) or the object; names are escaped whole."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.name}"
        if name:
            base += "/" + quote(name, safe="")
        if subresource:
            base += "/" + subresource
        return base


def resources(api_version: str, listed: Mapping[str, Any]) -> dict[str, APIResource]:
    """kind -> APIResource from an APIResourceList; subresources go to their resource."""
    group, _, version = api_version.rpartition("/")
    entries = [e for e in listed.get("resources") or [] if isinstance(e, dict)]
    subs: dict[str, set[str]] = {}
    for entry in entries:
        parent, _, sub = str(entry.get("name", "")).partition("/")
        if sub:
            subs.setdefault(parent, set()).add(sub)
    found: dict[str, APIResource] = {}
    for entry in entries:
        name = str(entry.get("name", ""))
        if "/" in name or not name:
            continue
        kind = str(entry.get("kind", ""))
        found.setdefault(
            kind,
            APIResource(
                group,
                version,
                name,
                kind,
                bool(entry.get("namespaced")),
                frozenset(subs.get(name, ())),
            ),
        )
    return found


class Kinds:
    def __init__(
        self, ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self.clock = ttl, clock
        self._lists: dict[str, tuple[float, dict[str, APIResource]]] = {}

    async def resource(self, client: KubeClient, api_version: str, kind: str) -> APIResource:
        """The resource serving kind in api_version; raises UnknownKind, ApiError or
        Unreachable."""
        if not API_VERSION.fullmatch(api_version) or not KIND.fullmatch(kind):
            raise UnknownKind(f'"{api_version}" "{kind}" is not an apiVersion and a kind')
        found = (await self._listed(client, api_version) or {}).get(kind)
        if found is None:
            raise UnknownKind(f'no matches for kind "{kind}" in version "{api_version}"')
        return found

    async def _listed(self, client: KubeClient, api_version: str) -> dict[str, APIResource] | None:
        """The group version's kinds; None when the API does not serve it at all."""
        now = self.clock()
        cached = self._lists.get(api_version)
        if cached is not None and cached[0] > now:
            return cached[1]
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            listed = await client.get(path)
        except ApiError as err:
            if err.code == 404:
                return None
            raise
        found = resources(api_version, listed if isinstance(listed, dict) else {})
        self._lists[api_version] = (now + self.ttl, found)
        return found
