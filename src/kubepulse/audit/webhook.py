"""--audit-webhook-config-file: batches of events POSTed as an audit.k8s.io/v1 EventList
to the server the kubeconfig names, with its CA and credentials. A failed send is tried
again after --audit-webhook-initial-backoff, then 1.5 times longer each time, five tries
in all (k8s.io/apiserver's webhook backoff)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from kubepulse.audit.event import API_VERSION
from kubepulse.kube.client import ssl_context
from kubepulse.kube.kubeconfig import Credentials

log = logging.getLogger("kubepulse.audit")

TRIES = 5
FACTOR = 1.5


class WebhookError(Exception):
    """The webhook did not take a batch."""


class Webhook:
    def __init__(self, creds: Credentials, initial_backoff: float, timeout: float = 30.0) -> None:
        self.creds, self.initial_backoff, self.timeout = creds, initial_backoff, timeout
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=ssl_context(self.creds))
            headers = {"Content-Type": "application/json"}
            if self.creds.token:
                headers["Authorization"] = f"Bearer {self.creds.token}"
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def deliver(self, events: list[dict[str, Any]]) -> None:
        body = json.dumps(
            {"kind": "EventList", "apiVersion": API_VERSION, "metadata": {}, "items": events}
        )
        wait = self.initial_backoff
        for attempt in range(1, TRIES + 1):
            try:
                await self._post(body)
                return
            except WebhookError as err:
                if attempt == TRIES:
                    raise
                log.warning("audit webhook: %s; trying again in %gs", err, wait)
            await asyncio.sleep(wait)  # the backoff itself, not a synchronisation
            wait *= FACTOR

    async def _post(self, body: str) -> None:
        try:
            async with self._open().post(self.creds.server, data=body) as resp:
                if resp.status >= 300:
                    raise WebhookError(f"{self.creds.server} answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise WebhookError(f"cannot reach {self.creds.server}: {err}") from err

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
