"""Who is asking: bearer tokens and client certificates.

Tokens come from a file in kube-apiserver's static token format
(token,user,uid,"group1,group2"; --token-auth-file), or a file that holds one bare
token. Client certificates must be signed by the configured CA; the user is the CN
and the groups the O fields, as in kube-apiserver.
"""

from __future__ import annotations

import csv
import hmac
import io
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509

from kubepulse import tlsauth


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)


ANONYMOUS = User("system:anonymous", groups=("system:unauthenticated",))


class TokenFileError(ValueError):
    pass


def load_tokens(path: Path) -> dict[str, User]:
    """Parse a static token file. Raises TokenFileError naming the line, never the token."""
    try:
        text = path.read_text()
    except OSError as err:
        raise TokenFileError(f"cannot read token file {path}: {err.strerror}") from err
    tokens: dict[str, User] = {}
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) == 1 and "," not in lines[0]:
        return {lines[0].strip(): User("kubepulse:token", groups=("system:authenticated",))}
    for number, row in enumerate(csv.reader(io.StringIO("\n".join(lines))), start=1):
        if len(row) < 3 or not row[0] or not row[1]:
            raise TokenFileError(f'{path}: line {number}: want token,user,uid[,"groups"]')
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        tokens[row[0]] = User(row[1], row[2], (*groups, "system:authenticated"))
    return tokens


class AuthConfigError(ValueError):
    """The configured token file or client CA cannot be used."""


class NoAuthentication(AuthConfigError):
    """Neither tokens nor a client CA were given, and skipping was not asked for."""


def from_files(
    token_file: Path | None, client_ca_file: Path | None, skip: bool = False
) -> Authenticator:
    """An Authenticator from the usual flags; refuses to authenticate nobody by accident."""
    tokens = load_tokens(token_file) if token_file is not None else None
    authorities = None
    if client_ca_file is not None:
        try:
            authorities = tlsauth.load_authorities(client_ca_file.read_bytes())
        except (OSError, ValueError) as err:
            raise AuthConfigError(f"cannot load client CA file {client_ca_file}: {err}") from err
    if not tokens and not authorities and not skip:
        raise NoAuthentication("no authentication configured")
    return Authenticator(tokens, authorities, skip=skip)


class Authenticator:
    def __init__(
        self,
        tokens: dict[str, User] | None = None,
        client_authorities: list[x509.Certificate] | None = None,
        skip: bool = False,
    ) -> None:
        self.tokens = tokens or {}
        self.client_authorities = client_authorities or []
        self.skip = skip

    def authenticate(self, request: web.Request) -> User | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self._token(token.strip())
        if self.client_authorities and request.transport is not None:
            cert = tlsauth.peer_certificate(request.transport.get_extra_info("ssl_object"))
            if cert is not None:
                who = tlsauth.verify_client(cert, self.client_authorities)
                if who is not None:
                    return User(who[0], groups=(*who[1], "system:authenticated"))
                return None
        return ANONYMOUS if self.skip else None

    def _token(self, presented: str) -> User | None:
        # Compare in constant time so that response timing does not reveal token prefixes.
        found: User | None = None
        for token, user in self.tokens.items():
            if hmac.compare_digest(token.encode(), presented.encode()):
                found = user
        return found
