"""kubepulse csr-approver's machinery: each kubelet-serving CSR decided as it comes.

The checks are kube/csr.py's (postfinance/kubelet-csr-approver's and kube-apiserver's
kubelet-serving rules); CSRs are listed and watched by the same reflector as nodes and
pods (kube/reflector.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kubepulse.kube.client import ApiError, KubeClient
from kubepulse.kube.csr import (
    KUBELET_SERVING,
    NODE_PREFIX,
    ApproverConfig,
    Decision,
    approval,
    decide,
    is_decided,
)
from kubepulse.kube.reflector import DEFAULT_BACKOFF, Backoff, Reflector

log = logging.getLogger("kubepulse.csr_approver")

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
SELECTOR = {"fieldSelector": f"spec.signerName={KUBELET_SERVING}"}
WATCH_SECONDS = 300


class Approver:
    """Decides CSRs one at a time; the decisions, for callers that want them."""

    def __init__(self, client: KubeClient, config: ApproverConfig, skip_deny: bool = False) -> None:
        self.client, self.config, self.skip_deny = client, config, skip_deny
        self.decisions: dict[str, Decision] = {}

    async def _node(self, csr: Mapping[str, Any]) -> Mapping[str, Any] | None:
        username = str((csr.get("spec") or {}).get("username") or "")
        if not username.startswith(NODE_PREFIX):
            return None
        try:
            node = await self.client.get(f"/api/v1/nodes/{username.removeprefix(NODE_PREFIX)}")
        except ApiError as err:
            if err.code == 404:
                return None
            raise
        return node if isinstance(node, dict) else None

    async def handle(self, csr: Mapping[str, Any]) -> Decision:
        name = str((csr.get("metadata") or {}).get("name"))
        for _attempt in range(3):
            spec = csr.get("spec") or {}
            if spec.get("signerName") != KUBELET_SERVING or is_decided(csr):
                return decide(csr, None, self.config)  # ignored, without a node lookup
            decision = decide(csr, await self._node(csr), self.config)
            if decision.action == "ignore" or (decision.action == "deny" and self.skip_deny):
                log.info("leaving CSR %s pending: %s", name, decision.reason)
                return decision
            try:
                await self.client.put(f"{CSRS}/{name}/approval", approval(csr, decision))
            except ApiError as err:
                if err.code == 404:
                    return Decision("ignore", "gone", "the CSR was deleted")
                if err.code != 409:
                    raise
                # Changed since we read it: read it again and decide again (upstream requeues).
                csr = await self.client.get(f"{CSRS}/{name}")
                continue
            user = spec.get("username")
            if decision.action == "approve":
                log.info("approved CSR %s for %s", name, user)
            else:
                log.info("denied CSR %s for %s: %s", name, user, decision.reason)
            self.decisions[name] = decision
            return decision
        raise ApiError(409, "Conflict", f"CSR {name} kept changing while being decided")

    def reflector(self, backoff: Backoff = DEFAULT_BACKOFF) -> Reflector[Mapping[str, Any]]:
        """The kubelet-serving CSRs, listed and watched as client-go's reflector does,
        each one handed to handle() as it is listed, added or modified."""
        return Reflector(
            self.client,
            CSRS,
            lambda obj, _keep: obj,
            lambda obj: ("", str((obj.get("metadata") or {}).get("name"))),
            field_selector=SELECTOR["fieldSelector"],
            backoff=backoff,
            watch_timeout=WATCH_SECONDS,
            on_object=self._decide,
        )

    async def _decide(self, csr: Mapping[str, Any]) -> None:
        await self.handle(csr)

    async def pending(self) -> None:
        """Decide every CSR there is now, once."""
        await self.reflector().list_once()

    async def watch(self) -> None:
        """Decide every CSR as it comes, until cancelled: list, then watch; list again
        after a 410, an error or a refused decision (kube/reflector.py)."""
        await self.reflector().run()
