"""--audit-log-path's rotation (lumberjack's rules), the legacy line format, and the
--audit-*-truncate-* rules."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import time
from pathlib import Path
from typing import Any

from kubepulse.audit.backends import TruncateOptions, truncating
from kubepulse.audit.event import legacy_line
from kubepulse.audit.logfile import LogFile

LINE = "x" * 1023 + "\n"  # 1 KiB


def test_a_full_file_is_rotated_and_only_the_newest_backups_are_kept(tmp_path: Path) -> None:
    log = LogFile(str(tmp_path / "audit.log"), max_size_mb=1, max_backups=2)
    for _ in range(4):  # four files' worth: three rotations
        log.write(LINE * 1024)
    log.write(LINE)
    log.close()
    backups = log.backups()
    assert len(backups) == 2
    assert all(b.stat().st_size == 1024 * 1024 for b in backups)
    assert (tmp_path / "audit.log").stat().st_size == 1024
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in tmp_path.iterdir())


def test_compressed_backups_are_gzip_and_owner_only(tmp_path: Path) -> None:
    log = LogFile(str(tmp_path / "audit.log"), max_size_mb=1, compress=True)
    log.write(LINE * 1024)
    log.write(LINE)
    log.close()
    (backup,) = log.backups()
    assert backup.name.endswith(".log.gz")
    assert gzip.decompress(backup.read_bytes()) == (LINE * 1024).encode()
    assert backup.stat().st_mode & 0o777 == 0o600


def test_backups_older_than_maxage_by_their_names_time_go(tmp_path: Path) -> None:
    old = tmp_path / "audit-2020-01-01T00-00-00.000000.log"
    old.write_text("old\n")
    os.utime(old)  # a fresh mtime: the name's time is what counts
    log = LogFile(str(tmp_path / "audit.log"), max_size_mb=1, max_age_days=30)
    log.write(LINE * 1024)
    log.write(LINE)
    log.close()
    assert not old.exists()
    assert len(log.backups()) == 1
    assert time.time() - log.backups()[0].stat().st_mtime < 3600


def test_the_legacy_line_is_the_apiservers_event_string() -> None:
    event = {
        "auditID": "2b6a0c4e-0000-4000-8000-000000000001",
        "stage": "ResponseComplete",
        "sourceIPs": ["127.0.0.1"],
        "verb": "list",
        "user": {"username": "ann", "groups": ["ops", "system:authenticated"]},
        "userAgent": "kubectl/v1.32.0",
        "objectRef": {"resource": "pods", "namespace": "kube-system"},
        "requestURI": "/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods",
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-12-07T12:00:00.120000Z",
    }
    assert legacy_line(event) == (
        '2026-12-07T12:00:00.12Z AUDIT: id="2b6a0c4e-0000-4000-8000-000000000001" '
        'stage="ResponseComplete" ip="127.0.0.1" method="list" user="ann" '
        'groups="\\"ops\\",\\"system:authenticated\\"" as="<self>" asgroups="<lookup>" '
        'user-agent="kubectl/v1.32.0" namespace="kube-system" '
        'uri="/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods" response="200"'
    )
    received = {**event, "stage": "RequestReceived"}
    del received["responseStatus"]
    assert legacy_line(received).endswith('response="<deferred>"')


def test_truncation_slims_big_events_drops_huge_ones_and_splits_batches() -> None:
    sent: list[list[dict[str, Any]]] = []

    async def deliver(events: list[dict[str, Any]]) -> None:
        sent.append(events)

    def event(n: int, body: str = "", uri: str = "/x") -> dict[str, Any]:
        return {"auditID": str(n), "requestURI": uri, "responseObject": {"b": body}}

    options = TruncateOptions(enabled=True, max_event_size=200, max_batch_size=150)
    events = [event(1), event(2, "y" * 500), event(3, uri="/" + "z" * 300), event(4)]
    asyncio.run(truncating(deliver, "log", options)(events))
    delivered = [e for batch in sent for e in batch]
    assert [e["auditID"] for e in delivered] == ["1", "2", "4"]  # 3 is too big even slim
    assert delivered[1] == {
        "auditID": "2",
        "requestURI": "/x",
        "annotations": {"audit.k8s.io/truncated": "true"},
    }
    assert "annotations" not in delivered[0] and "annotations" not in delivered[2]
    assert len(sent) >= 2 and all(len(json.dumps(b)) <= 150 + 10 for b in sent)
