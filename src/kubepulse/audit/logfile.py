"""--audit-log-path with lumberjack's rotation, as kube-apiserver uses it: a file grown
past --audit-log-maxsize megabytes is renamed NAME-<UTC time>.EXT and a new one begun;
beyond --audit-log-maxbackup backups, or older than --audit-log-maxage days, the oldest
go; --audit-log-compress gzips them. "-" is standard output. Files are owner-only."""

from __future__ import annotations

import datetime
import gzip
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

BACKUP_TIME = "%Y-%m-%dT%H-%M-%S.%f"  # lumberjack's "2006-01-02T15-04-05.000", to the μs


class LogFile:
    def __init__(
        self,
        path: str,
        max_size_mb: int = 0,
        max_backups: int = 0,
        max_age_days: int = 0,
        compress: bool = False,
    ) -> None:
        self.path = Path(path) if path != "-" else None
        self.max_bytes = max_size_mb * 1024 * 1024
        self.max_backups, self.max_age_days, self.compress = max_backups, max_age_days, compress
        self._file: TextIO | None = None
        self._size = 0

    def open(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._size = self.path.stat().st_size

    def write(self, text: str) -> None:
        """Whole lines; the file is rotated before a write that would pass the limit."""
        if self.path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        size = len(text.encode())
        if self._file is None:
            self.open()
        if self.max_bytes and self._size and self._size + size > self.max_bytes:
            self._rotate()
        assert self._file is not None
        self._file.write(text)
        self._file.flush()
        self._size += size

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rotate(self) -> None:
        assert self.path is not None
        self.close()
        stamp = datetime.datetime.now(datetime.UTC).strftime(BACKUP_TIME)
        backup = self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}")
        self.path.rename(backup)
        if self.compress:
            with backup.open("rb") as src, gzip.open(f"{backup}.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.chmod(f"{backup}.gz", 0o600)
            backup.unlink()
        self._remove_old()
        self.open()

    def backups(self) -> list[Path]:
        """The rotated files, newest first."""
        assert self.path is not None
        prefix = f"{self.path.stem}-"
        found = [
            p
            for p in self.path.parent.iterdir()
            if p.name.startswith(prefix)
            and p != self.path
            and (not self.path.suffix or self.path.suffix in p.suffixes)
        ]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def _remove_old(self) -> None:
        backups = self.backups()
        doomed = set(backups[self.max_backups :]) if self.max_backups else set()
        if self.max_age_days:
            # By the time in the name, as lumberjack does, not the file's mtime.
            cutoff = time.time() - self.max_age_days * 86400
            doomed |= {p for p in backups if self._rotated_at(p) < cutoff}
        for path in doomed:
            path.unlink(missing_ok=True)

    def _rotated_at(self, backup: Path) -> float:
        assert self.path is not None
        stamp = backup.name[len(self.path.stem) + 1 :].split(self.path.suffix or ".gz")[0]
        try:
            at = datetime.datetime.strptime(stamp, BACKUP_TIME).replace(tzinfo=datetime.UTC)
        except ValueError:
            return time.time()  # not one of ours: kept
        return at.timestamp()
