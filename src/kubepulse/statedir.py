"""`kubepulse up`'s state directory: consistent, owner-only, one user at a time, or refused.

What it holds: pki/ (a CA, the API's and the agent's serving certificates), tokens.csv
(the API's tokens), agent-token, kubeconfig, history.db. The rules:

- one `up` per directory: a second one is refused, naming the pid that holds it (an
  advisory lock on STATE/lock, released by the kernel when the process ends);
- owner-only: the directory is 0700 and every file 0600; anything others can read or
  write is made owner-only, with a warning naming it;
- a CA whose key or certificate is gone is made anew, and then every certificate is
  issued again from it (pki.ensure_serving checks the signature, not only the name) and
  the kubeconfig is rewritten, with a warning that says so; a CA or token file that
  cannot be read is refused with the file's name and what to delete;
- a secret that is empty is made anew.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import IO

from kubepulse import pki
from kubepulse.api.authn import TokenFileError, load_tokens
from kubepulse.errors import Failure

log = logging.getLogger("kubepulse.up")


class StateError(Failure):
    """A state directory that cannot be used as it is, and what to do about it."""


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.pki = path / "pki"
        self._lock: IO[str] | None = None

    # -- one user ----------------------------------------------------------------------
    def lock(self) -> None:
        """Take STATE/lock, or refuse with the pid of the `up` that has it."""
        self._make_dir(self.path)
        lock_path = self.path / "lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(fd, "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StateError(
                f"another kubepulse up (pid {holder}) is using {self.path}: stop it first, "
                "or give this one another --state-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- owner-only --------------------------------------------------------------------
    def prepare(self) -> None:
        """Make the directories, and make owner-only whatever others could read or write."""
        self._make_dir(self.path)
        self._make_dir(self.pki)
        for directory in (self.path, self.pki):
            for child in directory.iterdir():
                if child.is_file() and not child.is_symlink():
                    self._owner_only(child, 0o600)

    def _make_dir(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as err:
            raise StateError(f"cannot make {directory}: {err.strerror}") from err
        if not directory.is_dir():
            raise StateError(f"{directory} is not a directory: move it away")
        self._owner_only(directory, 0o700)

    @staticmethod
    def _owner_only(path: Path, mode: int) -> None:
        try:
            current = stat.S_IMODE(path.stat().st_mode)
            if current & 0o077:
                path.chmod(mode)
                log.warning(
                    "%s was %s to others (mode %04o): made it owner-only (%04o)",
                    path,
                    "writable" if current & 0o022 else "readable",
                    current,
                    mode,
                )
        except OSError as err:
            raise StateError(f"cannot make {path} owner-only: {err.strerror}") from err

    # -- the CA and certificates -------------------------------------------------------
    def ca(self) -> pki.KeyPair:
        cert, key = self.pki / "ca.crt", self.pki / "ca.key"
        if cert.exists() != key.exists():
            missing = key if cert.exists() else cert
            log.warning(
                "%s is missing: making a new CA; every certificate is issued again from it "
                "and %s is rewritten: give the new kubeconfig to clients that had the old one",
                missing,
                self.path / "kubeconfig",
            )
            for stale in (cert, key):
                stale.unlink(missing_ok=True)
        try:
            return pki.ensure_ca(self.pki, "kubepulse-ca")
        except (OSError, ValueError) as err:
            raise StateError(
                f"cannot load the CA in {self.pki} ({_reason(err)}): delete {cert} and {key} "
                "to make a new one (clients then need the new kubeconfig)"
            ) from err

    def serving(self, ca: pki.KeyPair, bind_address: str) -> tuple[Path, Path]:
        try:
            return pki.ensure_serving(
                self.pki, "apiserver", ca, "kubepulse-apiserver", bind_address
            )
        except OSError as err:
            raise StateError(f"cannot write {self.pki / 'apiserver.crt'}: {err}") from err

    # -- secrets -----------------------------------------------------------------------
    def secret(self, name: str) -> str:
        """A random token kept in STATE/name, made when missing or empty."""
        path = self.path / name
        try:
            value = path.read_text().strip() if path.exists() else ""
        except (OSError, UnicodeDecodeError):
            value = ""
        if not value:
            if path.exists():
                log.warning("%s was empty or unreadable: made a new one", path)
            value = secrets.token_urlsafe(32)
            write_private(path, value + "\n")
        return value

    def admin_token(self) -> str:
        """The first token of STATE/tokens.csv, the file made with an admin token when
        missing; a file that cannot be read is refused, never rewritten."""
        path = self.path / "tokens.csv"
        if not path.exists():
            token = secrets.token_urlsafe(32)
            write_private(path, f'{token},kubepulse-admin,kubepulse-admin,"system:masters"\n')
        try:
            tokens = load_tokens(path)
        except TokenFileError as err:
            raise StateError(f"{err}; fix it, or delete {path} to make a new admin token") from err
        if not tokens:
            raise StateError(f"{path} has no token: delete it to make a new admin token")
        return next(iter(tokens))


def write_private(path: Path, text: str) -> None:
    """Write a secret file owner-only from the first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def _reason(err: Exception) -> str:
    if isinstance(err, OSError):
        return err.strerror or str(err)
    return str(err).splitlines()[0] if str(err) else type(err).__name__
