"""The audit filter of the API, from --audit-* (server/config.py AuditOptions): its
backends, opened at start and flushed and closed at stop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp.typedefs import Middleware

from kubepulse.audit.backends import Backend, backend, log_deliver, truncating
from kubepulse.audit.logfile import LogFile
from kubepulse.audit.middleware import audit
from kubepulse.audit.policy import Policy
from kubepulse.audit.webhook import Webhook
from kubepulse.kube import kubeconfig
from kubepulse.server.config import AuditOptions, ConfigError

Closer = Callable[[], Awaitable[None]]


def audit_filter(
    options: AuditOptions, policy: Policy | None, closers: list[Closer]
) -> Middleware | None:
    """None without a policy; each backend's closer goes on closers (the last written
    batch before the file or the session is closed)."""
    if policy is None:
        return None
    backends: list[Backend] = []
    if options.log_path:
        file = LogFile(
            options.log_path,
            options.log_max_size_mb,
            options.log_max_backups,
            options.log_max_age_days,
            options.log_compress,
        )
        try:
            file.open()
        except OSError as err:
            raise ConfigError(f"cannot open --audit-log-path {options.log_path}: {err}") from err
        deliver = truncating(
            log_deliver(file, legacy=options.log_format == "legacy"), "log", options.log_truncate
        )
        backends.append(backend(deliver, "log", options.log_mode, options.log_batch))

        async def close_file() -> None:
            file.close()

        closers.append(close_file)
    if options.webhook_config_file is not None:
        try:
            creds = kubeconfig.load(str(options.webhook_config_file))
        except kubeconfig.KubeconfigError as err:
            raise ConfigError(f"--audit-webhook-config-file: {err}") from err
        webhook = Webhook(creds, options.webhook_initial_backoff)
        backends.append(
            backend(
                truncating(webhook.deliver, "webhook", options.webhook_truncate),
                "webhook",
                options.webhook_mode,
                options.webhook_batch,
            )
        )
        closers.append(webhook.close)
    # Flushed first (closers run last to first), then the file and the session closed.
    closers.extend(b.close for b in backends)
    return audit(policy, backends)
